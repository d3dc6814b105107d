package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/fsnotify/fsnotify"
)

// Watcher defaults: the zero fields of WatchOptions.
const (
	DefaultSettle      = 100 * time.Millisecond
	DefaultWriteSettle = time.Second
	DefaultRescan      = time.Minute
	DefaultEmptyGrace  = time.Minute
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Settle is how long a file must have had no write before it is taken
	// as complete. A message renamed or linked in from tmp/ (the Maildir
	// way, https://cr.yp.to/proto/maildir.html) is complete when it
	// appears, but its creation event alone does not say so: one written
	// straight into new/ starts with the same event. Default
	// DefaultSettle.
	Settle time.Duration
	// WriteSettle is Settle for a file seen being written in new/ (a
	// write event, or a change while it was processed): its writer did
	// not use tmp/, and may pause between writes. Default
	// DefaultWriteSettle, and never less than Settle.
	WriteSettle time.Duration
	// Rescan is how often new/ is listed again as a safety net; the
	// watcher also rescans when the kernel's event queue overflowed.
	// Default DefaultRescan.
	Rescan time.Duration
	// EmptyGrace is how long an empty file is left alone (its writer may
	// not have started) before it is handed over anyway. Default
	// DefaultEmptyGrace.
	EmptyGrace time.Duration
	// Logger receives the watcher's events; nil discards them.
	Logger *slog.Logger
}

// Watcher hands over every complete message that appears in a
// Maildir's new/ folder, once, however it arrived: renamed from tmp/,
// written in place, hard-linked, or already there at start. The consumer
// reads names from Ready and tells the watcher, with Done or RetryAt, when
// a message has left new/ or should be handed over again.
type Watcher struct {
	newDir string
	opts   WatchOptions
	log    *slog.Logger
	ready  chan string
	dir    *fsutil.Dir  // new/, open while Run runs: files are looked at relative to it
	turn   atomic.Int64 // when Run's loop last turned (Unix nanoseconds); 0 before

	mu      sync.Mutex
	known   map[string]*watchEntry // every name handed over or about to be
	pending []pendingItem          // FIFO of names waiting Settle
	writing []pendingItem          // FIFO of names written in new/, waiting WriteSettle
	queue   []string               // settled names not yet taken
	retries []string               // names waiting for their retry time
}

type watchState int

const (
	statePending watchState = iota // waiting for writes to end
	stateQueued                    // settled, waiting to be taken
	stateTaken                     // handed to the consumer
	stateRetry                     // waiting for retryAt
)

type watchEntry struct {
	state     watchState
	lastEvent time.Time
	retryAt   time.Time
	written   bool // seen being written in new/: waits WriteSettle
}

type pendingItem struct {
	name string
	at   time.Time
}

// NewWatcher returns a watcher of dir's new/ folder.
func NewWatcher(dir string, opts WatchOptions) *Watcher {
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.WriteSettle <= 0 {
		opts.WriteSettle = DefaultWriteSettle
	}
	opts.WriteSettle = max(opts.WriteSettle, opts.Settle)
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	if opts.EmptyGrace <= 0 {
		opts.EmptyGrace = DefaultEmptyGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		newDir: filepath.Join(dir, SubNew),
		opts:   opts,
		log:    log,
		ready:  make(chan string),
		known:  make(map[string]*watchEntry),
	}
}

// Ready delivers the names (in new/) of complete messages. It is closed
// when Run returns.
func (w *Watcher) Ready() <-chan string { return w.ready }

// Done forgets a name: its message has left new/ (archived) or will not be
// handed over again.
func (w *Watcher) Done(name string) {
	w.mu.Lock()
	delete(w.known, name)
	w.mu.Unlock()
}

// Unsettled puts name back among the files being written: the consumer
// found that it changed while it was processed (its writer wrote straight
// into new/ and was not done). It is handed over again once it has not
// been written for WriteSettle.
func (w *Watcher) Unsettled(name string) {
	now := time.Now()
	w.mu.Lock()
	w.known[name] = &watchEntry{state: statePending, lastEvent: now, written: true}
	w.writing = append(w.writing, pendingItem{name, now})
	w.mu.Unlock()
}

// RetryAt hands name over again at t (it stays in new/ meanwhile).
func (w *Watcher) RetryAt(name string, t time.Time) {
	w.mu.Lock()
	w.known[name] = &watchEntry{state: stateRetry, retryAt: t}
	w.retries = append(w.retries, name)
	w.mu.Unlock()
}

// Backlog returns how many messages are known and not yet done.
func (w *Watcher) Backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.known)
}

// LastTurn returns when the watcher's loop last turned: every quarter of
// Settle (5 ms at least) or sooner while it runs, whether or not the
// consumer takes messages. A time far in the past means the loop is stuck
// (in a listing of new/ on a hung file system, say); the zero time, that
// Run has not started.
func (w *Watcher) LastTurn() time.Time {
	if t := w.turn.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}

// Run watches until ctx is done, then closes Ready. Messages already in
// new/ are found by a listing made after the watch is in place, so one that
// arrives during start-up is neither missed nor handed over twice.
func (w *Watcher) Run(ctx context.Context) error {
	defer close(w.ready)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.newDir, err)
	}
	defer fsw.Close()
	if err := fsw.Add(w.newDir); err != nil {
		return fmt.Errorf("watching %s: %w", w.newDir, err)
	}
	d, err := fsutil.OpenDir(w.newDir)
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.newDir, err)
	}
	defer d.Close()
	w.dir = d
	return w.run(ctx, fsw.Events, fsw.Errors)
}

// run is Run's loop over a source of events (a test can inject them).
func (w *Watcher) run(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) error {
	w.turn.Store(time.Now().UnixNano())
	if err := w.rescan("start"); err != nil {
		return err
	}

	rescan := time.NewTicker(w.opts.Rescan)
	defer rescan.Stop()
	tick := time.NewTicker(max(w.opts.Settle/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		w.turn.Store(time.Now().UnixNano())
		var (
			out   chan string
			next  string
			entry *watchEntry
		)
		w.mu.Lock()
		for len(w.queue) > 0 {
			if e := w.known[w.queue[0]]; e != nil && e.state == stateQueued {
				out, next, entry = w.ready, w.queue[0], e
				break
			}
			w.queue = w.queue[1:] // written again since it settled, or gone
		}
		w.mu.Unlock()

		select {
		case <-ctx.Done():
			return nil
		case out <- next:
			w.mu.Lock()
			w.queue = w.queue[1:]
			// The consumer may already have called RetryAt or Done,
			// which replace or drop the entry: only mark the one sent.
			if e := w.known[next]; e != nil && e == entry && e.state == stateQueued {
				e.state = stateTaken
			}
			w.mu.Unlock()
		case ev, ok := <-events:
			if !ok {
				return errors.New("watcher closed")
			}
			w.event(ev)
		case err, ok := <-errs:
			if !ok {
				return errors.New("watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("Maildir watch: the kernel's event queue overflowed; listing new/ again", "dir", w.newDir)
				if err := w.rescan("overflow"); err != nil {
					w.log.Error("Maildir rescan failed", "error", err)
				}
				continue
			}
			w.log.Error("Maildir watch error", "error", err)
		case <-rescan.C:
			if err := w.rescan("periodic"); err != nil {
				w.log.Error("Maildir rescan failed", "error", err)
			}
		case <-tick.C:
			w.settle(time.Now())
		}
	}
}

// event records a file system event in new/.
func (w *Watcher) event(ev fsnotify.Event) {
	name := filepath.Base(ev.Name)
	if strings.HasPrefix(name, ".") || filepath.Dir(ev.Name) != w.newDir {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.known[name]
	switch {
	case ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write):
		switch {
		case e == nil:
			// A write to a name never seen created is most often a
			// Spool's delivery: an unnamed file (O_TMPFILE, "#inode"
			// here) written, then linked. Gone at once: it waits Settle.
			e = &watchEntry{state: statePending}
			w.known[name] = e
		case ev.Has(fsnotify.Write) && (e.state == statePending || e.state == stateQueued):
			// Written in place: its writer may pause between writes.
			// One already settled but not yet taken waits again.
			e.state, e.written = statePending, true
		}
		if e.state == statePending {
			e.lastEvent = now
			w.pend(e, name, now)
		}
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		// Moved away by someone else before it settled.
		if e != nil && e.state == statePending {
			delete(w.known, name)
		}
	}
}

// pend queues the pending entry e of name to settle, from now.
func (w *Watcher) pend(e *watchEntry, name string, now time.Time) {
	if e.written {
		w.writing = append(w.writing, pendingItem{name, now})
	} else {
		w.pending = append(w.pending, pendingItem{name, now})
	}
}

// settle moves the pending names whose writes have ended to the queue, and
// the retries that are due.
func (w *Watcher) settle(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = w.settleQueue(now, w.pending, w.opts.Settle)
	w.writing = w.settleQueue(now, w.writing, w.opts.WriteSettle)
	waiting := w.retries[:0]
	for _, name := range w.retries {
		e := w.known[name]
		switch {
		case e == nil || e.state != stateRetry:
		case now.Before(e.retryAt):
			waiting = append(waiting, name)
		default:
			e.state = stateQueued
			w.queue = append(w.queue, name)
		}
	}
	w.retries = waiting
}

// settleQueue moves the names of the FIFO q that have waited long enough
// and whose file has not been written for as long to the queue, and
// returns what remains of q. The caller holds w.mu.
func (w *Watcher) settleQueue(now time.Time, q []pendingItem, wait time.Duration) []pendingItem {
	for len(q) > 0 {
		item := q[0]
		if now.Sub(item.at) < wait {
			break
		}
		q = q[1:]
		e := w.known[item.name]
		if e == nil || e.state != statePending || !e.lastEvent.Equal(item.at) {
			continue // done already, or a later event re-queued it
		}
		info, err := w.stat(item.name)
		switch {
		case err != nil:
			delete(w.known, item.name) // gone
			continue
		case info.IsDir:
			delete(w.known, item.name) // a folder is no message
			continue
		case !info.Regular:
			// A symbolic link, a FIFO, a socket: handed over at once,
			// to be refused (ingest.ErrNotRegular) and archived, not left in
			// new/ unreported.
		case now.Sub(info.ModTime) < wait,
			info.Size == 0 && now.Sub(info.ModTime) < w.opts.EmptyGrace:
			// Still being written (or not started): look again later.
			e.lastEvent = now
			q = append(q, pendingItem{item.name, now})
			continue
		}
		e.state = stateQueued
		w.queue = append(w.queue, item.name)
	}
	if len(q) == 0 && cap(q) > 1024 {
		q = nil // let a burst's backing array go
	}
	return q
}

// stat returns the attributes of the file name in new/ (of a symbolic
// link itself).
func (w *Watcher) stat(name string) (fsutil.Attrs, error) {
	if w.dir == nil || !fsutil.PlainName(name) {
		return fsutil.StatAt(nil, filepath.Join(w.newDir, name))
	}
	return fsutil.StatAt(w.dir, name)
}

// rescan lists new/ and takes every name not yet known. Old files are
// complete; recent ones wait to settle like any other.
func (w *Watcher) rescan(why string) error {
	d, err := os.Open(w.newDir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.newDir, err)
	}
	defer d.Close()
	now := time.Now()
	found := 0
	for {
		entries, err := d.ReadDir(1024)
		for _, de := range entries {
			name := de.Name()
			if strings.HasPrefix(name, ".") || de.IsDir() {
				continue // not a message; anything else is handed over, a link to be refused
			}
			w.mu.Lock()
			if _, ok := w.known[name]; !ok {
				found++
				e := &watchEntry{state: statePending, lastEvent: now}
				w.known[name] = e
				if info, err := de.Info(); err == nil && (!info.Mode().IsRegular() || now.Sub(info.ModTime()) >= w.opts.Settle && info.Size() > 0) {
					e.state = stateQueued
					w.queue = append(w.queue, name)
				} else {
					w.pending = append(w.pending, pendingItem{name, now})
				}
			}
			w.mu.Unlock()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", w.newDir, err)
		}
	}
	if found > 0 || why != "periodic" {
		w.log.Info("Maildir listed", "dir", w.newDir, "why", why, "new_messages", found)
	}
	return nil
}
