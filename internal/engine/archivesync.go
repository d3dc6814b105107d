package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// archiveSyncInterval is how often the acks (the moves to cur/) are made
// durable.
const archiveSyncInterval = time.Second

// archiveSyncer makes the queue's acks durable in the background, at most
// once per interval, so that committing a batch never waits for a folder
// sync.
type archiveSyncer struct {
	syncAcks func(ctx context.Context) error // makes the acks so far durable (queue.Queue.Sync)
	log      *slog.Logger
	dirty    atomic.Bool // acks since the last sync began
	quit     chan struct{}
	done     chan struct{}
}

// startArchiveSyncer starts calling syncAcks every interval when there were
// acks.
func startArchiveSyncer(syncAcks func(ctx context.Context) error, interval time.Duration, log *slog.Logger) *archiveSyncer {
	a := &archiveSyncer{syncAcks: syncAcks, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	go a.run(interval)
	return a
}

// moved records that messages were acked.
func (a *archiveSyncer) moved() { a.dirty.Store(true) }

// stop syncs the last acks and stops the syncer.
func (a *archiveSyncer) stop() {
	close(a.quit)
	<-a.done
}

func (a *archiveSyncer) run(interval time.Duration) {
	defer close(a.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.syncMoves()
		case <-a.quit:
			a.syncMoves()
			return
		}
	}
}

// syncMoves makes the acks so far durable, if there were any. It runs
// whatever the engine's context: the last acks are synced at the end even
// after a shutdown timeout.
func (a *archiveSyncer) syncMoves() {
	if !a.dirty.Swap(false) {
		return
	}
	if err := a.syncAcks(context.Background()); err != nil {
		// The moves may be lost in a crash: those messages would be
		// processed again. Try again next time.
		a.dirty.Store(true)
		a.log.Error("syncing the Maildir's cur/ failed", "error", err)
	}
}
