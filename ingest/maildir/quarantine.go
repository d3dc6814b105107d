package maildir

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/certharvest/certharvest/internal/fsutil"
)

// Poison messages. A message that crashes the process verifying it (runs
// it out of memory, or into a fatal runtime error) would crash it again at
// every restart: it stays in new/, since only a verdict moves it. The
// in-flight log tells the next start which messages were being verified
// when the process died, and how many crashes in a row each was in flight
// for; the service verifies those suspects one at a time, alone, so that a
// further crash names its culprit, and sets aside in quarantine/ a message
// in flight in several consecutive crashes.
//
// The log needs no sync: a crash of the process (an OOM kill, SIGKILL, a
// fatal error) leaves its writes in the kernel's page cache, which the next
// start reads. Only a crash of the machine can lose them, and then the
// counts start again, costing a few more restarts at worst.
const (
	// SubQuarantine holds the messages set aside as poison: never
	// verified again, never listed by a scan of the Maildir (which reads
	// cur/ and new/).
	SubQuarantine = "quarantine"
	// InFlightLog is the in-flight log's file, in the spool's folder.
	InFlightLog = "inflight"
	// maxInFlightLog is the in-flight log's size beyond which it is
	// rewritten with only what is still in flight (at about a hundred
	// bytes per message, every ten thousand messages or so).
	maxInFlightLog = 1 << 20
)

// The in-flight log is lines of text, appended; each is one of:
//
//	crashes N NAME   NAME was in flight in the last N crashes (written at start)
//	+NAME            NAME was taken for verification
//	-NAME            NAME's verification ended (verdict, retry, or cut off)
//	clean            the process stopped in order (the last line)
//
// A NAME holding a newline, or beginning with a double quote, is written
// as a Go string literal (strconv.Quote). A line that is none of these (a
// line cut by a crash of the machine) is skipped.
const (
	opTaken    = '+'
	opFinished = '-'
	lineCrash  = "crashes "
	lineClean  = "clean"
)

// Suspect is a message that was in flight when the process last crashed.
type Suspect struct {
	Name string // its name in new/
	// Crashes is the number of consecutive crashes it was in flight in:
	// a crash in which it was not in flight starts the count again.
	Crashes int
}

// InFlight is a spool's in-flight log, open for appending while the
// service runs. Its methods may be called concurrently; those of a nil
// *InFlight do nothing.
type InFlight struct {
	path string
	log  *slog.Logger

	// mu is held shared by each append, so that appends run at once
	// (O_APPEND writes do not interleave), and alone by a rewrite.
	mu      sync.RWMutex
	f       *os.File // nil once closed
	size    atomic.Int64
	compact atomic.Int64 // the size at which to rewrite the log
	failing atomic.Bool  // the last append failed (logged once)
}

// OpenInFlight reads the in-flight log the last run of the service left,
// and starts this run's. It returns the messages in flight in that run's
// crash, with the number of consecutive crashes each was in flight in,
// most first (then by name): after a clean stop, the suspects the run did
// not verify, with their counts unchanged; after a crash, the messages it
// left in flight, one more crash each (the others start again from none).
// log receives a failure to write the log, which does not stop the
// service: only the protection from poison messages is lost.
func (s *Spool) OpenInFlight(log *slog.Logger) (*InFlight, []Suspect, error) {
	path := filepath.Join(s.dir, InFlightLog)
	last, err := readInFlightLog(path)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: in-flight log: %w", err)
	}
	crashes := last.crashes
	if !last.clean {
		crashes = make(map[string]int, len(last.open))
		for name := range last.open {
			crashes[name] = last.crashes[name] + 1
		}
	}
	if err := writeInFlightLog(path, crashes, nil, false); err != nil {
		return nil, nil, fmt.Errorf("spool: in-flight log: %w", err)
	}
	f, err := openLogFile(path, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: in-flight log: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &InFlight{path: path, log: log, f: f}
	if info, err := f.Stat(); err == nil {
		l.size.Store(info.Size())
	}
	l.compact.Store(maxInFlightLog)
	suspects := make([]Suspect, 0, len(crashes))
	for name, n := range crashes {
		suspects = append(suspects, Suspect{name, n})
	}
	slices.SortFunc(suspects, func(a, b Suspect) int {
		return cmp.Or(cmp.Compare(b.Crashes, a.Crashes), strings.Compare(a.Name, b.Name))
	})
	return l, suspects, nil
}

// Taken records that the message name was taken for verification: one
// write(2), unsynced.
func (l *InFlight) Taken(name string) {
	if l == nil {
		return
	}
	var buf [512]byte // on the stack: l.f.Write keeps no reference
	l.append(appendLogName(append(buf[:0], opTaken), name))
}

// Finished records that the verification of each message of names ended,
// whatever its outcome: one write(2) for them all.
func (l *InFlight) Finished(names ...string) {
	if l == nil || len(names) == 0 {
		return
	}
	var buf [4096]byte // a batch of up to about 80 names, on the stack
	b := buf[:0]
	for _, name := range names {
		b = appendLogName(append(b, opFinished), name)
	}
	l.append(b)
	if l.size.Load() > l.compact.Load() {
		l.rewriteBig()
	}
}

// append writes line (one or more whole lines) at the log's end.
func (l *InFlight) append(line []byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.f == nil {
		return
	}
	_, err := l.f.Write(line)
	if err != nil {
		if !l.failing.Swap(true) {
			l.log.Error("writing the in-flight log failed: a message that crashes the service may not be quarantined",
				"path", l.path, "error", err)
		}
		return
	}
	l.size.Add(int64(len(line)))
	if l.failing.Load() && l.failing.Swap(false) {
		l.log.Info("writing the in-flight log works again", "path", l.path)
	}
}

// rewriteBig rewrites the log, grown past its bound, with only what it
// still needs: the suspects not verified since the start, and the messages
// in flight. Should that fail (a full disk), the next try waits until
// the log has grown by as much again.
func (l *InFlight) rewriteBig() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.size.Load() <= l.compact.Load() {
		return // closed, or rewritten by another caller meanwhile
	}
	if err := l.rewrite(false); err != nil {
		l.compact.Store(l.size.Load() + maxInFlightLog)
		l.log.Error("rewriting the in-flight log failed", "path", l.path, "error", err)
		return
	}
	l.compact.Store(maxInFlightLog)
}

// rewrite replaces the log with its current state (clean: marked as
// stopped in order) and reopens it for appending. The caller holds l.mu.
func (l *InFlight) rewrite(clean bool) error {
	st, err := readInFlightLog(l.path)
	if err != nil {
		return err
	}
	if err := writeInFlightLog(l.path, st.crashes, st.open, clean); err != nil {
		return err
	}
	f, err := openLogFile(l.path, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return err
	}
	l.f.Close()
	l.f = f
	if info, err := f.Stat(); err == nil {
		l.size.Store(info.Size())
	}
	return nil
}

// Close marks the log as left by a clean stop: the next start counts no
// crash, and keeps the counts of the suspects this run did not verify.
// The messages still marked in flight are not counted either.
func (l *InFlight) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.rewrite(true)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("spool: in-flight log: %w", err)
	}
	return nil
}

// inFlightState is what an in-flight log says.
type inFlightState struct {
	crashes map[string]int      // suspects of earlier crashes not verified since
	open    map[string]struct{} // taken and not finished
	clean   bool                // the run stopped in order
}

// readInFlightLog reads the log at path. A missing log says nothing: no
// crash to count (a first start, or a spool of an older version).
func readInFlightLog(path string) (inFlightState, error) {
	st := inFlightState{crashes: map[string]int{}, open: map[string]struct{}{}}
	f, err := openLogFile(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
		// None, or not ours (a symbolic link, say): nothing is read
		// through it, and the new log is renamed over it.
		st.clean = true
		return st, nil
	}
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<10) // a name is at most NAME_MAX (255) bytes, quoted 4 times that
	sc.Split(wholeLines)
	for sc.Scan() {
		// Most lines are a name taken, then finished a few lines below:
		// those are looked at without a string of their own.
		line := sc.Bytes()
		switch {
		case len(line) > 1 && line[0] == opFinished && line[1] != '"':
			delete(st.open, string(line[1:]))
			if len(st.crashes) > 0 {
				delete(st.crashes, string(line[1:]))
			}
		case string(line) == lineClean:
			st.clean = true
		case bytes.HasPrefix(line, []byte(lineCrash)):
			count, name, ok := strings.Cut(string(line[len(lineCrash):]), " ")
			n, err := strconv.Atoi(count)
			if name, ok2 := parseLogName(name); ok && ok2 && err == nil && n > 0 {
				st.crashes[name] = n
			}
		case len(line) > 0 && line[0] == opTaken:
			if name, ok := parseLogName(string(line[1:])); ok {
				st.open[name] = struct{}{}
			}
		case len(line) > 0 && line[0] == opFinished:
			if name, ok := parseLogName(string(line[1:])); ok {
				delete(st.open, name)
				delete(st.crashes, name)
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return st, err
	}
	return st, nil
}

// errNotRegular is the error of openLogFile for anything but a regular file.
var errNotRegular = errors.New("not a regular file")

// openLogFile opens the log file at path with flag, refusing anything but a
// regular file: a symbolic link put in the spool's folder is not followed.
// The file opened is checked to be the one looked at, so that it cannot be
// swapped in between.
func openLogFile(path string, flag int) (*os.File, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	if after, err := f.Stat(); err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("%s: %w (replaced while opened)", path, errNotRegular)
	}
	return f, nil
}

// wholeLines is a bufio.SplitFunc of the lines that end in a newline,
// without it; a last line without one, cut by a crash, is dropped.
func wholeLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF {
		return len(data), nil, nil
	}
	return 0, nil, nil
}

// writeInFlightLog replaces the log at path with the suspects crashes, the
// messages open (in flight) and, when clean, the mark of a clean stop: a
// new file renamed over the old one, unsynced (see above).
func writeInFlightLog(path string, crashes map[string]int, open map[string]struct{}, clean bool) error {
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(crashes)) {
		b = append(strconv.AppendInt(append(b, lineCrash...), int64(crashes[name]), 10), ' ')
		b = appendLogName(b, name)
	}
	for _, name := range slices.Sorted(maps.Keys(open)) {
		b = appendLogName(append(b, opTaken), name)
	}
	if clean {
		b = append(b, lineClean+"\n"...)
	}
	// Whoever can write in the spool (the MTA's group) may have put a link
	// or a file at the temporary name: it is removed (a link itself, never
	// what it points to), and the new file made with O_EXCL and no link
	// followed, so nothing outside the spool is ever truncated.
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := openNoFollow(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// appendLogName appends name and a newline, quoted when it holds a newline
// or begins with a double quote.
func appendLogName(b []byte, name string) []byte {
	if strings.IndexByte(name, '\n') >= 0 || strings.HasPrefix(name, `"`) {
		return append(strconv.AppendQuote(b, name), '\n')
	}
	return append(append(b, name...), '\n')
}

// parseLogName reads a name as appendLogName wrote it; ok is false for one
// that is no file name of new/ (a line damaged, or written by hand).
func parseLogName(s string) (string, bool) {
	if strings.HasPrefix(s, `"`) {
		name, err := strconv.Unquote(s)
		if err != nil {
			return "", false
		}
		s = name
	}
	return s, fsutil.PlainName(s)
}

// Quarantine moves the message name from new/ to quarantine/ (created if
// needed) and returns its new path. Its context stays with it (in its
// extended attribute); a context file in meta/ is removed. The move is made
// durable at once: it is rare, and a machine crash must not bring the
// message back.
func (s *Spool) Quarantine(name string) (string, error) {
	if !fsutil.PlainName(name) {
		return "", fmt.Errorf("quarantining %q: not a file name", name)
	}
	qdir := filepath.Join(s.dir, SubQuarantine)
	if err := os.Mkdir(qdir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("quarantining %s: %w", name, err)
	}
	if info, err := os.Lstat(qdir); err != nil || !info.IsDir() {
		// A symbolic link would take the message out of the spool.
		return "", fmt.Errorf("quarantining %s: %s is not a folder", name, qdir)
	}
	dst := filepath.Join(qdir, name)
	if err := os.Rename(filepath.Join(s.dir, SubNew, name), dst); err != nil {
		return "", fmt.Errorf("quarantining %s: %w", name, err)
	}
	if s.metaUsed.Load() {
		if err := os.Remove(s.metaPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return dst, fmt.Errorf("quarantining %s: %w", name, err)
		}
	}
	for _, d := range []string{qdir, filepath.Join(s.dir, SubNew)} {
		if err := syncDir(d); err != nil {
			return dst, fmt.Errorf("quarantining %s: %w", name, err)
		}
	}
	return dst, nil
}
