package maildir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/internal/tmpfile"
)

// Spool is a Maildir that live inputs deliver into before they acknowledge a
// message, and that the service processes messages from. A message is in
// exactly one of three places (https://cr.yp.to/proto/maildir.html):
//
//   - tmp/: being written; never read;
//   - new/: delivered, waiting to be processed;
//   - cur/: processed and reported (flag S, seen; and T, trashed, when
//     rejected), an archive that scan can reprocess, kept as its
//     ArchivePolicy says (archive.go).
//
// The context a message arrived with (envelope, remote address, a relay's
// ids) is kept in an extended attribute of the message's file (or, where the
// file system has none, beside it in meta/<name>.json), so that the message's
// bytes are exactly the bytes received. Messages delivered by an MTA have no
// context.
//
// Deliveries are made durable by a journal (journal/, see journal.go): each
// message is appended to it, with one sync shared by every delivery waiting,
// before its file is written into new/ unsynced. The journal's segments are
// deleted about once a second, once the files they cover are durable, and
// replayed by Open after a crash.
type Spool struct {
	dir  string
	host string
	pid  int
	seq  atomic.Uint64

	journal  *journal
	lock     *os.File // held while the spool is open
	syncReqs chan syncRequest
	noXattr  atomic.Bool // the file system refused an extended attribute
	metaUsed atomic.Bool // meta/ may hold context files: some were there at open, or written since
	unnamed  bool        // messages are written unnamed, then linked into new/ (internal/tmpfile)
	newDir   *fsutil.Dir // new/ and cur/, opened once: messages are read
	curDir   *fsutil.Dir // and archived relative to them
	archive  archive     // cur/'s retention and what it holds (archive.go)
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	closeErr error

	// authservID stamps archived messages (Options.AuthservID).
	authservID string
}

// Spool sub-folders.
const (
	SubTmp  = "tmp"
	SubNew  = "new"
	SubCur  = "cur"
	SubMeta = "meta"
)

// journalLock is the file of journal/ whose lock a Spool holds: one process
// at a time may use a spool's journal.
const journalLock = ".lock"

// Options configure a Spool; the zero value keeps every archived
// message.
type Options struct {
	// Archive is the retention policy of cur/.
	Archive ArchivePolicy
	// Logger receives the archive's sweeps and evictions; nil discards
	// them.
	Logger *slog.Logger
	// AuthservID, when set, is the authserv-id of the
	// Authentication-Results field recording its DKIM verdict that each
	// message the Queue archives gets on top (archive_stamp.go); empty:
	// messages are archived as received.
	AuthservID string
}

// Open creates the Maildir dir (tmp/, new/, cur/, meta/ and journal/) if
// needed, and replays what its journal holds from before a crash, so that
// every message acknowledged is in new/ (or, processed, in cur/). Close
// stops its background work; a process uses a spool through one Spool.
//
// dir itself may be a symbolic link (the operator names it); its folders
// may not: the spool never follows a link inside the Maildir.
func Open(dir string, opts Options) (*Spool, error) {
	return openSpool(dir, journalOptions{}, opts)
}

func openSpool(dir string, jopts journalOptions, opts Options) (*Spool, error) {
	if err := refuseForeign(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// The Maildir's folders are the MTA's too. A spool made group-writable
	// (docs/DEPLOYMENT.md: 2770, the MTA in certharvest's group) gets
	// tmp/, new/ and cur/ group-writable as well, whatever the umask (the
	// systemd unit's is 0027); otherwise they are certharvest's alone.
	maildirMode := fs.FileMode(0o700)
	if info, err := os.Stat(dir); err == nil && info.Mode().Perm()&0o070 == 0o070 {
		maildirMode = 0o770 | info.Mode()&fs.ModeSetgid // files keep the group
	}
	for _, sub := range []string{SubTmp, SubNew, SubCur} {
		if err := mkdirMode(filepath.Join(dir, sub), maildirMode); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, SubMeta), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	jdir := filepath.Join(dir, SubJournal)
	if err := os.Mkdir(jdir, 0o700); err == nil {
		// The journal's folder must outlast a crash with its segments.
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := checkFolders(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockFile(filepath.Join(jdir, journalLock))
	if err != nil {
		return nil, fmt.Errorf("spool: journal: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// Maildir: '/' and ':' in the host name are written as \057 and \072.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	s := &Spool{dir: dir, host: host, pid: os.Getpid(), lock: lock, syncReqs: make(chan syncRequest), stop: make(chan struct{}),
		authservID: opts.AuthservID}
	s.archive.init(opts)
	s.unnamed = tmpfile.Supported(filepath.Join(dir, SubTmp))
	if err := s.openDirs(); err != nil {
		s.closeDirs()
		lock.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	lastSeq, err := s.replay()
	if err != nil {
		s.closeDirs()
		lock.Close()
		return nil, err
	}
	s.journal = startJournal(jdir, lastSeq, s.syncMessages, jopts)
	s.wg.Add(2)
	go s.syncLoop()
	go s.sweepLoop()
	s.startTmpSweeper() // spool_stream.go
	return s, nil
}

// checkFolders makes sure that the Maildir's folders are folders, not
// symbolic links to folders elsewhere, which the spool would otherwise
// read, write and delete in.
func checkFolders(dir string) error {
	for _, sub := range []string{SubTmp, SubNew, SubCur, SubMeta, SubJournal} {
		path := filepath.Join(dir, sub)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			return &fs.PathError{Op: "open", Path: path, Err: fsutil.ErrNotFolder}
		}
	}
	return nil
}

// Dir returns the Maildir's folder.
func (s *Spool) Dir() string { return s.dir }

// Close stops the spool's background work and makes every delivered message
// durable in the Maildir, then empties the journal. Deliveries after Close
// fail. When Close fails, what the journal still holds is replayed by the
// next Open: no acknowledged message is lost.
func (s *Spool) Close() error {
	s.stopOnce.Do(func() {
		s.closeErr = s.journal.close()
		close(s.stop)
		s.wg.Wait()
		s.closeDirs()
		s.lock.Close()
	})
	return s.closeErr
}

// openDirs opens new/ and cur/, and finds whether meta/ holds context files
// (metaUsed): while it holds none and the spool writes none, a message
// without the context attribute has no context file either.
func (s *Spool) openDirs() error {
	var err error
	if s.newDir, err = fsutil.OpenDir(filepath.Join(s.dir, SubNew)); err != nil {
		return err
	}
	if s.curDir, err = fsutil.OpenDir(filepath.Join(s.dir, SubCur)); err != nil {
		return err
	}
	meta, err := os.Open(filepath.Join(s.dir, SubMeta))
	if err != nil {
		return err
	}
	defer meta.Close()
	names, err := meta.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	s.metaUsed.Store(len(names) > 0)
	return nil
}

// closeDirs closes the folders openDirs opened.
func (s *Spool) closeDirs() {
	for _, d := range []*fsutil.Dir{s.newDir, s.curDir} {
		if d != nil {
			d.Close()
		}
	}
}

// uniqueName returns a Maildir unique name: time, then M<microseconds>,
// P<pid> and Q<delivery counter> so that names never repeat within a
// process, then the host.
func (s *Spool) uniqueName(now time.Time) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, s.pid, s.seq.Add(1), s.host)
}

// Deliver writes msgs into new/ and returns their names once all of them are
// durable (Sink). Either every message is delivered or, on error, none is:
// files already written are removed. Concurrent deliveries share syncs
// (group commit). The messages' writers are closed.
//
// The messages are first appended to the journal, which concurrent
// deliveries share one fdatasync of; then each is written into tmp/ and
// renamed into new/, none of it synced: should the machine crash before
// the journal's segment is retired, Open restores them from it.
//
// Each message is one file: its context travels in an extended attribute
// (user.certharvest.envelope) of that file. Where the file system has no
// user extended attributes, the context goes in meta/<name>.json instead,
// renamed into meta/ before the message is renamed into new/.
func (s *Spool) Deliver(ctx context.Context, msgs ...ingest.Incoming) ([]string, error) {
	if hasWriter(msgs) {
		return s.deliverWriters(ctx, msgs) // spool_stream.go
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names := make([]string, len(msgs))
	if len(msgs) == 0 {
		return names, nil
	}
	if hasLarge(msgs) {
		names, err := s.deliverFiles(ctx, msgs, nil) // spool_stream.go
		if err != nil && fsutil.IsNoSpace(err) {
			// The disk is full: make room (the archive's rejected mail
			// gives way), and try once more. deliverFiles left nothing.
			s.MakeRoom(ctx, 2*rawSize(msgs))
			names, err = s.deliverFiles(ctx, msgs, nil)
		}
		return names, err
	}
	recs := make([]record, len(msgs))
	for i, m := range msgs {
		env, err := json.Marshal(m.Envelope)
		if err != nil {
			return nil, fmt.Errorf("spool: encoding context: %w", err)
		}
		names[i] = s.uniqueName(time.Now())
		recs[i] = record{name: names[i], env: env, raw: m.Raw}
		if err := recs[i].check(); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	release, err := s.journal.commit(ctx, recs)
	if err != nil && fsutil.IsNoSpace(err) {
		// The disk is full: make room (the archive's rejected mail gives
		// way), and try once more.
		s.MakeRoom(ctx, 2*roomFor(recs))
		release, err = s.journal.commit(ctx, recs)
	}
	if err != nil {
		return nil, err
	}
	err = s.place(recs)
	if err != nil && fsutil.IsNoSpace(err) {
		if err := s.placeShortOfRoom(ctx, names, recs, release); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		return names, nil
	}
	release()
	if err != nil {
		// The records stay in the journal until it is retired: a crash
		// before then delivers these messages, which the sender, told of
		// the failure, delivers again too. A duplicate, never a loss.
		return nil, fmt.Errorf("spool: %w", err)
	}
	return names, nil
}

// place writes recs into new/ without syncing: unnamed files linked into
// new/ where the system allows (placeUnnamed), else through tmp/
// (placeNamed). Either every message is placed or, on error, none is.
func (s *Spool) place(recs []record) error {
	if s.unnamed && !s.noXattr.Load() && len(recs) <= maxUnnamedBatch {
		if handled, err := s.placeUnnamed(recs); handled {
			return err
		}
	}
	return s.placeNamed(recs)
}

// placeNamed is place through tmp/: each message written there, its
// context in meta/ where there are no extended attributes, then renamed
// into new/, replacing any file of that name (replay repairs that way).
func (s *Spool) placeNamed(recs []record) error {
	var written []string // removed should the delivery fail
	undo := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	metaTmps := make([]string, len(recs)) // "" when the context is in an xattr
	for i, rec := range recs {
		tmp := filepath.Join(s.dir, SubTmp, rec.name)
		written = append(written, tmp)
		inXattr, err := s.writeMessage(tmp, rec.raw, rec.env)
		if err != nil {
			undo()
			return err
		}
		if !inXattr {
			metaTmps[i] = tmp + ".json"
			written = append(written, metaTmps[i])
			if err := writeFile(metaTmps[i], rec.env); err != nil {
				undo()
				return err
			}
		}
	}
	// The context first, so a message in new/ always finds it.
	for i, rec := range recs {
		if metaTmps[i] == "" {
			continue
		}
		s.metaUsed.Store(true) // before the message is in new/, for LoadFile
		metaPath := s.metaPath(rec.name)
		if err := os.Rename(metaTmps[i], metaPath); err != nil {
			undo()
			return err
		}
		written = append(written, metaPath)
	}
	for _, rec := range recs {
		newPath := filepath.Join(s.dir, SubNew, rec.name)
		if err := os.Rename(filepath.Join(s.dir, SubTmp, rec.name), newPath); err != nil {
			undo()
			return err
		}
		written = append(written, newPath)
	}
	return nil
}

// maxUnnamedBatch bounds the files placeUnnamed holds open at once; larger
// deliveries go through tmp/.
const maxUnnamedBatch = 64

// placeUnnamed writes each message to an unnamed file (internal/tmpfile)
// with its context in the extended attribute, then links them all into new/:
// one directory update per message instead of two (a name in tmp/, then the
// rename). handled is false when nothing was placed because the file system
// refused the extended attribute: the caller then uses tmp/ and meta/.
func (s *Spool) placeUnnamed(recs []record) (handled bool, err error) {
	newDir := filepath.Join(s.dir, SubNew)
	files := make([]*os.File, 0, len(recs))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, rec := range recs {
		f, err := tmpfile.Create(newDir, 0o600)
		if err != nil {
			return true, err
		}
		files = append(files, f)
		inXattr, err := s.writeContent(f, rec.raw, rec.env)
		if err != nil {
			return true, err
		}
		if !inXattr {
			return false, nil
		}
	}
	linked := make([]string, 0, len(recs))
	for i, rec := range recs {
		path := filepath.Join(newDir, rec.name)
		if err := tmpfile.Link(files[i], path); err != nil {
			for _, p := range linked {
				os.Remove(p)
			}
			return true, err
		}
		linked = append(linked, path)
	}
	return true, nil
}

// envelopeXattr is the extended attribute holding a message's context.
const envelopeXattr = "user.certharvest.envelope"

// writeMessage creates path with data and stores env in its extended
// attribute when the file system allows (inXattr). Nothing is synced.
func (s *Spool) writeMessage(path string, data, env []byte) (inXattr bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	return s.writeContent(f, data, env)
}

// writeContent writes data to f and, unless the file system refused one
// before, env to f's extended attribute (inXattr).
func (s *Spool) writeContent(f *os.File, data, env []byte) (inXattr bool, err error) {
	if _, err := f.Write(data); err != nil {
		return false, err
	}
	if s.noXattr.Load() {
		return false, nil
	}
	if err := setXattr(f, envelopeXattr, env); err != nil {
		// Not supported here (or the context is too large for one):
		// meta/ files from now on.
		s.noXattr.Store(true)
		return false, nil
	}
	return true, nil
}

func (s *Spool) metaPath(name string) string {
	return filepath.Join(s.dir, SubMeta, name+".json")
}

// writeFile creates path with data, without syncing it.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Archive moves a processed message from new/ to cur/ with the seen flag
// (Maildir info "2,S"), and the trashed flag too ("2,ST") unless it was
// accepted, and removes its context file. The flags tell the archive's
// retention policy which is which (archive.go). The move is made durable by
// the next folder sync; call Sync to force one. A message already moved is
// not an error.
func (s *Spool) Archive(name string, accepted bool) error {
	archived := name + infoRejected
	if accepted {
		archived = name + infoAccepted
	}
	var err error
	if fsutil.PlainName(name) {
		err = fsutil.RenameAt(s.newDir, name, s.curDir, archived)
	} else {
		err = os.Rename(filepath.Join(s.dir, SubNew, name), filepath.Join(s.dir, SubCur, archived))
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	if err == nil {
		s.archive.added(s.curDir, archived, accepted)
	}
	if !s.metaUsed.Load() {
		return nil // no context files
	}
	if err := os.Remove(s.metaPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	return nil
}

// Sync makes earlier Archive moves durable.
func (s *Spool) Sync() error { return s.syncDirs(false, true) }

// Room reports whether a delivery of size more bytes (0: of any message)
// could be made now (Sink): the spool's folders take new files, and, for a
// size, FreeSpace says there is room for it (a *ingest.NoRoomError when not;
// where the system cannot tell, there is). When the disk is full it first
// makes room, as a delivery would (MakeRoom).
func (s *Spool) Room(ctx context.Context, size int64) error {
	err := s.probe()
	if err != nil && fsutil.IsNoSpace(err) {
		s.MakeRoom(ctx, 0)
		err = s.probe()
	}
	if err != nil || size <= 0 {
		return err
	}
	free, err := s.FreeSpace()
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		return fmt.Errorf("free space: %w", err)
	case free < uint64(size):
		return &ingest.NoRoomError{Free: free, Need: size}
	}
	return nil
}

// probe creates the files a delivery would, empty, and removes them.
func (s *Spool) probe() error {
	if s.unnamed {
		// Most deliveries create their files in new/, unnamed; large
		// ones, and those without extended attributes, in tmp/.
		f, err := tmpfile.Create(filepath.Join(s.dir, SubNew), 0o600)
		if err != nil {
			return fmt.Errorf("spool not writable: %w", err)
		}
		f.Close()
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, SubTmp), ".probe-*")
	if err != nil {
		return fmt.Errorf("spool not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// FreeSpace returns the bytes still free for new mail: what an
// unprivileged process may still write on the spool's file system, and
// what MakeRoom would free for it (the journal's copies of delivered
// messages, the archive's rejected messages). errors.ErrUnsupported where
// the system cannot tell (outside Linux).
func (s *Spool) FreeSpace() (uint64, error) {
	free, err := s.archive.freeSpace(s.dir)
	if err != nil {
		return 0, err
	}
	return free + uint64(max(s.reclaimable(), 0)), nil
}

// maxContextBytes bounds a context file read from meta/, as it bounds one
// in an extended attribute: Deliver writes a few hundred bytes.
const maxContextBytes = fsutil.MaxAttrBytes

// readMeta reads the context file of the message name, never through a
// symbolic link.
func (s *Spool) readMeta(name string) ([]byte, error) {
	f, err := fsutil.ReadFileAt(nil, s.metaPath(name), s.metaPath(name), ingest.ReadOptions{MaxSize: maxContextBytes, NoFollow: true}, "")
	return f.Raw, err
}
