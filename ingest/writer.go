package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/internal/tmpfile"
	"github.com/certharvest/certharvest/verify"
)

// DefaultSpillBytes is the default size above which a message being
// received is written to a file in the spool's tmp/ as it arrives, whatever
// the memory budget: a message of usual size (a signed mail of a few tens
// of KB) stays in memory and takes the journal's fast path, one shared
// fdatasync for many; a larger one costs a file and an fsync of its own,
// small beside writing its bytes, and never more memory than this per
// connection. It also bounds the memory a slow sender can hold.
const DefaultSpillBytes = 256 << 10

// MessageWriterOptions say how a MessageWriter holds a message. The zero
// value of a field means its default.
type MessageWriterOptions struct {
	// Budget is the memory shared by every message being received; the
	// message's bytes are held in memory only while it has room. Default:
	// a budget of DefaultInputMemory of the writer's own.
	Budget *MemoryBudget
	// SpillBytes: a message larger than this is written to a file
	// (default DefaultSpillBytes).
	SpillBytes int64
	// Weight is the budget's bytes each byte held in memory takes
	// (default 1). The webhook reserves twice its body: the messages it
	// will decode from it take as much again.
	Weight int64
	// Header, when not nil, caps the message's header section as its bytes
	// arrive (verify.HeaderCounter): once over a cap, the message is
	// written to a file and no longer held in memory, and HeaderErr says
	// why. The message is still delivered whole: the pipeline reports it
	// message_malformed.
	Header *verify.HeaderLimits

	// Scratch: the bytes are only read back (ReadAll), never delivered
	// (a webhook request's body, decoded into messages). The sink then
	// leaves the fields below as they are.
	Scratch bool

	// The sink the message is for sets the fields below (Sink.NewWriter);
	// their zero values suit a scratch file.

	// Named creates the file with a name in its folder (SpillPrefix and
	// a random suffix) rather than unnamed (internal/tmpfile): for a
	// folder whose unnamed files cannot be linked in place.
	Named bool
	// MakeRoom, when set, is called when a write to the file fails
	// because its file system is full: it frees room for need more bytes
	// (maildir.Spool.MakeRoom), and the rest of the write is tried once
	// more.
	MakeRoom func(ctx context.Context, need int64) error
}

// MessageWriter receives a message as its bytes arrive (an SMTP DATA
// transfer, a webhook request body): in memory while the budget has room,
// the message stays small and its header within the caps, else in a file
// of its folder (the spool's tmp/), unnamed where the system allows
// (internal/tmpfile: a crash leaves nothing behind), written as the bytes
// come. Sink.Deliver then delivers it (Incoming.Writer); Close discards it.
// A MessageWriter is used by one goroutine.
type MessageWriter struct {
	dir    string // where the file goes
	budget *MemoryBudget
	opts   MessageWriterOptions
	header *verify.HeaderCounter // nil when not counted

	buf      []byte  // the message while held in memory; scratch once in a file
	pooled   *[]byte // the budget's buffer buf is, or nil
	reserved int64   // the budget's bytes taken for buf
	file     *SpillFile
	size     int64
	err      error // the first write error: every later write fails with it
}

// NewMessageWriter returns a writer whose file, if it needs one, goes to
// dir: the sink's own (Sink.NewWriter: the spool's tmp/).
func NewMessageWriter(dir string, opts MessageWriterOptions) *MessageWriter {
	if opts.Budget == nil {
		opts.Budget = NewMemoryBudget(0)
	}
	if opts.SpillBytes <= 0 {
		opts.SpillBytes = DefaultSpillBytes
	}
	if opts.Weight <= 0 {
		opts.Weight = 1
	}
	w := &MessageWriter{dir: dir, budget: opts.Budget, opts: opts}
	if opts.Header != nil {
		w.header = verify.NewHeaderCounter(*opts.Header)
	}
	return w
}

// Dir returns the folder the message's file goes to.
func (w *MessageWriter) Dir() string { return w.dir }

// Err returns the writer's failure to write the message into the spool
// (creating or writing its file), or nil: the spool's fault, not the
// sender's.
func (w *MessageWriter) Err() error { return w.err }

// Size returns the bytes written so far.
func (w *MessageWriter) Size() int64 { return w.size }

// Spilled reports whether the message is in a file rather than in memory.
func (w *MessageWriter) Spilled() bool { return w.file != nil }

// HeaderErr returns why the header section is over its caps
// (MessageWriterOptions.Header), or nil.
func (w *MessageWriter) HeaderErr() error {
	if w.header == nil {
		return nil
	}
	return w.header.Err()
}

// capDetail is what a header cap's error says, without its reason code
// (message_malformed), for a log line that names the reason itself.
func capDetail(err error) string {
	var verr *verify.Error
	if errors.As(err, &verr) && verr.Err != nil {
		return verr.Err.Error()
	}
	return err.Error()
}

// Bytes returns the message when it is held in memory (not Spilled), until
// the next write or Close.
func (w *MessageWriter) Bytes() []byte {
	if w.file != nil {
		return nil
	}
	return w.buf
}

// Write implements io.Writer.
func (w *MessageWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		room, err := w.room()
		if err != nil {
			return n, err
		}
		c := copy(room, p)
		if err := w.wrote(room[:c]); err != nil {
			return n + c, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// ReadFrom implements io.ReaderFrom: it reads r to its end straight into
// the memory buffer (or through it, into the file), without another copy.
// A read error is returned as it is, a write error wrapped.
func (w *MessageWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		room, err := w.room()
		if err != nil {
			return total, err
		}
		n, rerr := r.Read(room)
		if n > 0 {
			total += int64(n)
			if err := w.wrote(room[:n]); err != nil {
				return total, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// room returns where the next bytes go: the free end of the memory
// buffer, grown within the budget, or the scratch buffer they are copied
// through into the file. It spills the message to a file when it can no
// longer be held in memory.
func (w *MessageWriter) room() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.file != nil {
		return w.buf[:cap(w.buf)], nil
	}
	if len(w.buf) < cap(w.buf) {
		return w.buf[len(w.buf):cap(w.buf)], nil
	}
	if w.grow() {
		return w.buf[len(w.buf):cap(w.buf)], nil
	}
	if err := w.Spill(); err != nil {
		return nil, err
	}
	return w.buf[:cap(w.buf)], nil
}

// grow makes the memory buffer larger, taking the bytes from the budget
// first, or reports that the message is to go to a file: past SpillBytes,
// or the budget full.
func (w *MessageWriter) grow() bool {
	old := cap(w.buf)
	if int64(old) > w.opts.SpillBytes {
		return false
	}
	if old == 0 {
		// The first buffer is lent by the budget; it is never larger
		// than a message that small needs.
		if !w.budget.TryReserve(w.opts.Weight * pooledBufferCap) {
			return false
		}
		w.reserved = w.opts.Weight * pooledBufferCap
		w.pooled = w.budget.getBuffer()
		w.buf = (*w.pooled)[:0]
		return true
	}
	newCap := min(2*int64(old), w.opts.SpillBytes+1)
	extra := w.opts.Weight * (newCap - int64(old))
	if !w.budget.TryReserve(extra) {
		return false
	}
	w.reserved += extra
	w.buf = append(make([]byte, 0, newCap), w.buf...)
	w.putPooled()
	return true
}

// wrote accounts for p, just put in room(): counted against the header's
// caps, and written to the file once there is one. A header over its cap,
// or a message past SpillBytes, sends the message to a file.
func (w *MessageWriter) wrote(p []byte) error {
	w.size += int64(len(p))
	if w.header != nil && !w.header.Done() && w.header.Err() == nil {
		w.header.Write(p)
	}
	if w.file != nil {
		return w.writeFile(p)
	}
	w.buf = w.buf[:len(w.buf)+len(p)]
	if int64(len(w.buf)) > w.opts.SpillBytes || w.HeaderErr() != nil {
		return w.Spill()
	}
	return nil
}

// Spill writes the message to a file, if it is not in one yet, and lets
// go of its memory: what comes next goes to the file too.
func (w *MessageWriter) Spill() error {
	if w.err != nil {
		return w.err
	}
	if w.file != nil {
		return nil
	}
	f, err := CreateSpillFile(w.dir, !w.opts.Named)
	if err != nil {
		w.err = fmt.Errorf("spool: %w", err)
		return w.err
	}
	w.file = f
	if err := w.writeFile(w.buf); err != nil {
		return err
	}
	// The memory goes back; a buffer of the pool's size stays as the
	// scratch the next bytes pass through (not counted: one per
	// connection, like the connection's own buffers).
	w.budget.Release(w.reserved)
	w.reserved = 0
	if w.pooled == nil {
		w.pooled = w.budget.getBuffer()
	}
	w.buf = (*w.pooled)[:0]
	return nil
}

// writeFile writes p to the message's file. On a full disk the sink
// first makes room (MakeRoom: the archive's rejected mail gives way, before
// any sender is refused) and the rest of p is written once more.
func (w *MessageWriter) writeFile(p []byte) error {
	n, err := w.file.f.Write(p)
	if err != nil && fsutil.IsNoSpace(err) && w.opts.MakeRoom != nil {
		if w.opts.MakeRoom(context.Background(), int64(len(p)-n)) == nil {
			_, err = w.file.f.Write(p[n:])
		}
	}
	if err != nil {
		w.err = fmt.Errorf("spool: writing %s: %w", w.file.Path(), err)
	}
	return w.err
}

// putPooled gives the budget's buffer back, once buf no longer uses it.
func (w *MessageWriter) putPooled() {
	if w.pooled != nil {
		w.budget.putBuffer(w.pooled)
		w.pooled = nil
	}
}

// DropPrefix removes the first n bytes of the message (a trace header the
// message turned out not to want). In a file, that copies the rest to a
// new file: it is meant for rare cases.
func (w *MessageWriter) DropPrefix(n int64) error {
	if w.err != nil {
		return w.err
	}
	n = min(max(n, 0), w.size)
	if w.file == nil {
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		w.size -= n
		return nil
	}
	nf, err := CreateSpillFile(w.dir, !w.opts.Named)
	if err == nil {
		_, err = io.Copy(nf.f, io.NewSectionReader(w.file.f, n, w.size-n))
		if err != nil {
			nf.Discard()
		}
	}
	if err != nil {
		w.err = fmt.Errorf("spool: %w", err)
		return w.err
	}
	w.file.Discard()
	w.file = nf
	w.size -= n
	return nil
}

// ReadAll returns the whole message: its memory buffer, or the file read
// into a new slice (whose bytes the caller has reserved).
func (w *MessageWriter) ReadAll() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.file == nil {
		return w.buf, nil
	}
	data := make([]byte, w.size)
	if _, err := w.file.f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("spool: reading %s: %w", w.file.Path(), err)
	}
	return data, nil
}

// Close discards the message: its memory goes back to the budget, its file
// is removed. It may be called again, and after Deliver.
func (w *MessageWriter) Close() {
	w.budget.Release(w.reserved)
	w.reserved = 0
	w.putPooled()
	w.buf = nil
	if w.file != nil {
		w.file.Discard()
		w.file = nil
	}
	if w.err == nil {
		w.err = errWriterClosed
	}
}

var errWriterClosed = errors.New("spool: message writer closed")

// TakeFile returns the file the message was written to, or nil while it
// is held in memory, and hands it over: Close no longer removes it, the
// caller places (SpillFile.Place) or discards it.
func (w *MessageWriter) TakeFile() *SpillFile {
	f := w.file
	w.file = nil
	return f
}

// SpillFile is a message (or a scratch copy) in a file of tmp/ that is not
// in new/ yet: unnamed (internal/tmpfile), or named with SpillPrefix so that
// a crash's leftovers are known (the spool removes them when it opens).
type SpillFile struct {
	f    *os.File
	dir  string
	name string // its name in dir; "" while unnamed
}

// SpillPrefix starts the names of the files MessageWriter writes into tmp/
// where it cannot leave them unnamed.
const SpillPrefix = "certharvest-spill-"

// CreateSpillFile creates an empty file in dir, unnamed when unnamed is set
// and the system allows, else named SpillPrefix and a random suffix.
func CreateSpillFile(dir string, unnamed bool) (*SpillFile, error) {
	if unnamed {
		if f, err := tmpfile.Create(dir, 0o600); err == nil {
			return &SpillFile{f: f, dir: dir}, nil
		}
	}
	f, err := os.CreateTemp(dir, SpillPrefix+"*")
	if err != nil {
		return nil, err
	}
	return &SpillFile{f: f, dir: dir, name: filepath.Base(f.Name())}, nil
}

// File returns the open file.
func (sf *SpillFile) File() *os.File { return sf.f }

// Path returns the file's path, for messages: "(unnamed)" in its folder
// while it has no name.
func (sf *SpillFile) Path() string {
	if sf.name == "" {
		return filepath.Join(sf.dir, "(unnamed)")
	}
	return filepath.Join(sf.dir, sf.name)
}

// Place gives the file the name path (in new/): a link of the unnamed file,
// or a rename of the named one. It never replaces a file: names are unique.
func (sf *SpillFile) Place(path string) error {
	if sf.name == "" {
		return tmpfile.Link(sf.f, path)
	}
	if err := os.Rename(filepath.Join(sf.dir, sf.name), path); err != nil {
		return err
	}
	sf.name = ""
	return nil
}

// Discard closes the file and removes it if it has a name in tmp/.
func (sf *SpillFile) Discard() {
	sf.f.Close()
	if sf.name != "" {
		os.Remove(filepath.Join(sf.dir, sf.name))
		sf.name = ""
	}
}
