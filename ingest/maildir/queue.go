package maildir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/verify"
)

// Queue is serve's queue (internal/queue): the messages of a spool's new/ as its
// watcher finds them complete, acked by moving them to cur/, with an
// in-flight log for the suspects of a crash.
type Queue struct {
	spool    *Spool
	watcher  *Watcher
	inflight *InFlight
	suspects []Suspect
	log      *slog.Logger

	mu       sync.Mutex
	versions map[string]FileVersion // loaded, for Unchanged
}

// Queue is the engine's queue.Queue.
var _ queue.Queue = (*Queue)(nil)

// NewQueue returns the queue over spool's new/, as watcher hands it
// over, and opens the spool's in-flight log (Close closes it).
func NewQueue(spool *Spool, watcher *Watcher, log *slog.Logger) (*Queue, error) {
	l, suspects, err := spool.OpenInFlight(log)
	if err != nil {
		return nil, err
	}
	return &Queue{spool: spool, watcher: watcher, inflight: l, suspects: suspects, log: log,
		versions: map[string]FileVersion{}}, nil
}

// Close marks the in-flight log as left by a clean stop.
func (q *Queue) Close() error { return q.inflight.Close() }

// Next returns the name of the next complete message in new/; ErrClosed
// once the watcher has stopped.
func (q *Queue) Next(context.Context) (string, error) {
	name, ok := <-q.watcher.Ready()
	if !ok {
		return "", queue.ErrClosed
	}
	return name, nil
}

// Load reads message name from new/, with the context it was delivered
// with, after marking it in flight.
func (q *Queue) Load(_ context.Context, name string, opts queue.LoadOptions) (*verify.Message, error) {
	q.inflight.Taken(name)
	m, version, err := q.spool.LoadFile(name, ingest.ReadOptions{MaxSize: opts.MaxSize, Reserve: opts.Reserve})
	if errors.Is(err, fs.ErrNotExist) {
		q.watcher.Done(name)
		return m, fmt.Errorf("%w: %w", queue.ErrGone, err)
	}
	q.mu.Lock()
	q.versions[name] = version
	q.mu.Unlock()
	return m, err
}

// Unchanged tells whether the file name is no longer the version that was
// read and verified: written straight into new/, it was still being
// written (the watcher took a pause of its writer for the end). Then it
// waits for its writes to end, and is handed over again.
func (q *Queue) Unchanged(_ context.Context, name string) error {
	q.mu.Lock()
	read := q.versions[name]
	q.mu.Unlock()
	now, err := q.spool.Version(name)
	if err != nil {
		// Gone (archived by another process?) or unreadable: the verdict
		// stands, as for a file that vanishes after it was verified.
		return nil
	}
	if now.Size == read.Size && now.ModTime.Equal(read.ModTime) {
		return nil
	}
	q.watcher.Unsettled(name)
	return fmt.Errorf("%d bytes read, %d now", read.Size, now.Size)
}

// Ack moves the messages to cur/, flagged as their verdicts say; with an
// authserv-id (Options.AuthservID), each with an Authentication-Results
// field on top recording its DKIM verdict (Spool.ArchiveStamped).
func (q *Queue) Ack(_ context.Context, acks []queue.Ack) error {
	var errs []error
	if id := q.spool.authservID; id != "" {
		items := make([]Stamped, len(acks))
		for i, a := range acks {
			items[i] = Stamped{Name: a.ID, Accepted: a.Accepted}
			if a.Result != nil {
				items[i].Field = verify.AuthenticationResults(id, a.Result)
			}
		}
		errs = append(errs, q.spool.ArchiveStamped(items))
	} else {
		for _, a := range acks {
			if err := q.spool.Archive(a.ID, a.Accepted); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, a := range acks {
		q.watcher.Done(a.ID)
	}
	return errors.Join(errs...)
}

// RetryAt hands name over again at t; it stays in new/ meanwhile.
func (q *Queue) RetryAt(_ context.Context, name string, t time.Time) error {
	q.watcher.RetryAt(name, t)
	return nil
}

// Release marks the messages as no longer in flight.
func (q *Queue) Release(names ...string) {
	q.inflight.Finished(names...)
	q.mu.Lock()
	for _, name := range names {
		delete(q.versions, name)
	}
	q.mu.Unlock()
}

// Sync makes the moves to cur/ durable.
func (q *Queue) Sync(context.Context) error { return q.spool.Sync() }

// Suspects returns the messages in flight at the last crash, read from the
// in-flight log when the queue was made.
func (q *Queue) Suspects() []queue.Suspect {
	out := make([]queue.Suspect, len(q.suspects))
	for i, s := range q.suspects {
		out[i] = queue.Suspect{ID: s.Name, Crashes: s.Crashes,
			Path:           filepath.Join(q.spool.Dir(), SubNew, s.Name),
			QuarantinePath: filepath.Join(q.spool.Dir(), SubQuarantine, s.Name)}
	}
	return out
}

// Quarantine moves name to the spool's quarantine/.
func (q *Queue) Quarantine(_ context.Context, name string) error {
	if _, err := q.spool.Quarantine(name); err != nil {
		return err
	}
	q.watcher.Done(name)
	return nil
}
