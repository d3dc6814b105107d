package ingest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/verify"
)

// Walk is the queue (internal/queue) of scan: the message files under a list of paths
// (WalkMessages), taken in the walk's order, never modified. Its
// acks do nothing (the report is the whole result), nothing is retried,
// and nothing is remembered across runs.
type Walk struct {
	paths []string
	named map[string]bool // the paths given
	opts  WalkOptions

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

// walkEntry is a message file found by the walk, or a path it could not
// read (err).
type walkEntry struct {
	path string
	err  error
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
	named := make(map[string]bool, len(paths))
	for _, p := range paths {
		named[p] = true
	}
	return &Walk{paths: paths, named: named, opts: opts, entries: make(chan walkEntry, 64),
		done: make(chan struct{}), pending: map[string]walkEntry{}}
}

func (w *Walk) run(ctx context.Context) {
	// done before entries: once Next has seen the end, Err knows why.
	defer close(w.entries)
	defer close(w.done)
	w.walkErr = walkFiles(ctx, w.paths, w.opts.Rules, func(path string) error {
		select {
		case w.entries <- walkEntry{path: path}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, func(path string, err error) {
		select {
		case w.entries <- walkEntry{path: path, err: err}:
		case <-ctx.Done():
		}
	})
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

// Load reads a message file. A symbolic link is followed only when the
// operator named it: the walk skips those in folders, and NoFollow refuses
// one put in a file's place since (read_error).
func (w *Walk) Load(_ context.Context, id string, opts queue.LoadOptions) (*verify.Message, error) {
	w.mu.Lock()
	e, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", queue.ErrGone, id)
	}
	m := &verify.Message{Path: e.path, Envelope: verify.Envelope{Source: w.opts.Source, Received: w.opts.Now()}}
	if e.err != nil {
		return m, fmt.Errorf("reading %s: %w", e.path, e.err)
	}
	raw, err := ReadMessageFileWith(e.path, ReadOptions{MaxSize: opts.MaxSize, Reserve: opts.Reserve, NoFollow: !w.named[e.path]})
	m.Raw = raw
	return m, err
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
