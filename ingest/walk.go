package ingest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/verify"
)

// Walk is the queue (internal/queue) of scan: the message files under a list of paths
// (WalkMessages), taken in the walk's order, never modified. Its
// acks do nothing (the report is the whole result), nothing is retried,
// and nothing is remembered across runs.
//
// A message file is read by Load, in the engine's readers, in parallel. An
// mbox is read by the walk itself, front to back, once, as it finds its
// messages (package mbox): each message's bytes wait in the walk's
// read-ahead (at most DefaultMboxReadAhead bytes, and one message however
// large) until Load hands them over, counted then in the engine's budget
// (queue.LoadOptions.Reserve). So the memory an mbox takes is flat in its
// size, and a compressed one, which cannot be read from the middle, is
// read the same way.
type Walk struct {
	paths []string
	named map[string]bool // the paths given
	opts  WalkOptions
	ahead *MemoryBudget // the bytes of the mbox messages read, not yet loaded

	start   sync.Once
	entries chan walkEntry
	done    chan struct{} // closed when the walk has ended
	walkErr error         // why the walk stopped early, once done is closed

	mu      sync.Mutex
	pending map[string]walkEntry // taken by Next, not yet loaded
	seq     uint64
}

// Walk is the engine's queue.Queue.
var _ queue.Queue = (*Walk)(nil)

// WalkOptions configure a Walk. The zero value of each field means its
// default.
type WalkOptions struct {
	// Source is the source of the messages in their reports; default
	// "scan".
	Source string
	// Now is the time a message counts as received; default time.Now.
	Now func() time.Time
	// Rules say which files in the folders walked are messages.
	Rules WalkRules
}

// DefaultMboxReadAhead bounds the bytes of the mbox messages the walk has
// read and the engine not yet taken: enough for the engine never to wait
// for the walk on messages of usual size, tens of KB; a larger message
// waits until those before it are taken.
const DefaultMboxReadAhead = 16 << 20

// walkEntry is a message file found by the walk, or a path it could not
// read (err), or a message of an mbox the walk has read (msg), which holds
// held bytes of the read-ahead.
type walkEntry struct {
	path string
	kind fileKind
	err  error
	msg  *mbox.Message
	held int64
}

// NewWalk returns the queue of the messages under paths; the walk starts
// with the first Next, under its context.
func NewWalk(paths []string, opts WalkOptions) *Walk {
	if opts.Source == "" {
		opts.Source = "scan"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Walk{paths: paths, named: namedPaths(paths), opts: opts, entries: make(chan walkEntry, 64),
		ahead: NewMemoryBudget(DefaultMboxReadAhead), done: make(chan struct{}), pending: map[string]walkEntry{}}
}

func (w *Walk) run(ctx context.Context) {
	// done before entries: once Next has seen the end, Err knows why.
	defer close(w.entries)
	defer close(w.done)
	w.walkErr = walkKinds(ctx, w.paths, w.opts.Rules, func(path string, kind fileKind) error {
		if kind == kindMbox || kind == kindGzipMbox {
			return w.readMbox(ctx, path, kind)
		}
		return w.send(ctx, walkEntry{path: path, kind: kind})
	}, func(path string, err error) {
		w.send(ctx, walkEntry{path: path, err: err})
	})
}

// send hands e to Next, or gives its bytes back when ctx ends first.
func (w *Walk) send(ctx context.Context, e walkEntry) error {
	select {
	case w.entries <- e:
		return nil
	case <-ctx.Done():
		w.ahead.Release(e.held)
		return ctx.Err()
	}
}

// readMbox reads the mbox file at path and sends each of its messages
// with its bytes, held in the read-ahead; a file that cannot be read (or
// is no mbox) is sent as a path that could not be read.
func (w *Walk) readMbox(ctx context.Context, path string, kind fileKind) error {
	r, f, err := openMbox(path, kind, !w.named[path], mboxOptions(w.opts.Rules))
	if err != nil {
		return w.send(ctx, walkEntry{path: path, kind: kind, err: err})
	}
	defer f.Close()
	for {
		m, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return w.send(ctx, walkEntry{path: path, kind: kind, err: err})
		}
		var held int64
		if len(m.Raw) > 0 {
			// One message larger than the read-ahead takes all of it.
			held = min(int64(len(m.Raw)), w.ahead.Size())
			if err := w.ahead.Reserve(ctx, held); err != nil {
				return err
			}
		}
		if err := w.send(ctx, walkEntry{path: path, kind: kind, msg: m, held: held}); err != nil {
			return err
		}
	}
}

// Err returns why the walk stopped before its end (its context ended), once
// Next has returned queue.ErrClosed; nil when it walked everything.
func (w *Walk) Err() error {
	select {
	case <-w.done:
		return w.walkErr
	default:
		return nil
	}
}

// Next returns the next message file found, in the walk's order.
func (w *Walk) Next(ctx context.Context) (string, error) {
	w.start.Do(func() { go w.run(ctx) })
	e, ok := <-w.entries
	if !ok {
		return "", queue.ErrClosed
	}
	w.mu.Lock()
	w.seq++
	id := strconv.FormatUint(w.seq, 10)
	w.pending[id] = e
	w.mu.Unlock()
	return id, nil
}

// Load reads a message file, or hands over a message of an mbox the walk
// has read. A symbolic link is followed only when the operator named it:
// the walk skips those in folders, and NoFollow refuses one put in a
// file's place since (read_error).
func (w *Walk) Load(_ context.Context, id string, opts queue.LoadOptions) (*verify.Message, error) {
	w.mu.Lock()
	e, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", queue.ErrGone, id)
	}
	m := &verify.Message{Path: e.path, Envelope: verify.Envelope{Source: w.opts.Source, Received: w.opts.Now()}}
	switch {
	case e.err != nil:
		return m, fmt.Errorf("reading %s: %w", e.path, e.err)
	case e.msg != nil:
		defer w.ahead.Release(e.held)
		return m, loadMboxMessage(m, e.msg, opts)
	}
	ropts := ReadOptions{MaxSize: opts.MaxSize, Reserve: opts.Reserve, NoFollow: !w.named[e.path]}
	if e.kind == kindGzip {
		raw, id, err := readGzipMessage(e.path, ropts)
		m.Raw, m.ID = raw, id
		if err != nil && verify.ReasonOf(err) != verify.ReasonTooLarge {
			if _, ok := errors.AsType[*fs.PathError](err); !ok {
				err = fmt.Errorf("reading %s: %w", e.path, err)
			}
		}
		return m, err
	}
	raw, err := ReadMessageFileWith(e.path, ropts)
	m.Raw = raw
	return m, err
}

// loadMboxMessage gives m, message mm of an mbox, its place and bytes (or
// the error that stands for them), counting them in opts.Reserve.
func loadMboxMessage(m *verify.Message, mm *mbox.Message, opts queue.LoadOptions) error {
	m.MboxIndex, m.MboxOffset = mm.Index, mm.Offset
	switch {
	case mm.Err != nil:
		return fmt.Errorf("reading %s: %w", m.Path, mm.Err)
	case mm.TooLarge || int64(len(mm.Raw)) > opts.MaxSize:
		e := &TooLargeError{Size: min(mm.Size, fsutil.MaxHashedBytes), Limit: opts.MaxSize}
		if mm.Digest != nil {
			e.ID = hex.EncodeToString(mm.Digest[:6])
		} else {
			// Held, but over the engine's limit (the walk was told
			// another): its id as MessageIDFor gives it.
			m.Raw = mm.Raw
			e.ID = verify.MessageIDFor(m)
			m.Raw = nil
		}
		return &verify.Error{Reason: verify.ReasonTooLarge, Err: e}
	}
	if opts.Reserve != nil {
		opts.Reserve(int64(len(mm.Raw)))
	}
	m.Raw = mm.Raw
	return nil
}

// Unchanged: scan reads each file once and reports what it read.
func (w *Walk) Unchanged(context.Context, string) error { return nil }

// Ack does nothing: scan never modifies its inputs.
func (w *Walk) Ack(context.Context, []queue.Ack) error { return nil }

// RetryAt is never called: scan reports a temporary failure at once
// (Options.RetryFor is 0).
func (w *Walk) RetryAt(context.Context, string, time.Time) error {
	return fmt.Errorf("scan does not retry")
}

// Release does nothing: a walk keeps no record of what is in flight.
func (w *Walk) Release(...string) {}

// Sync does nothing.
func (w *Walk) Sync(context.Context) error { return nil }

// Suspects returns none: a walk remembers nothing across runs.
func (w *Walk) Suspects() []queue.Suspect { return nil }

// Quarantine is never called, as there are no suspects.
func (w *Walk) Quarantine(context.Context, string) error {
	return fmt.Errorf("scan does not quarantine")
}
