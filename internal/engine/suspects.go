package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// QuarantineAfterCrashes is how many consecutive crashes a message may be
// in flight in before it is quarantined (queue.Queue.Quarantine), reported as
// internal_error: a message that crashes the service (runs it out of
// memory, or into a fatal error) would otherwise crash it at every restart,
// since only a verdict takes it out of the queue, and no other message
// would ever be processed. Three, because after the first crash every
// message then in flight is a suspect, and is verified alone (see
// handleSuspects); the second crash then names the culprit, and the third
// confirms it was no accident (an OOM kill caused by another process, say).
const QuarantineAfterCrashes = 3

// neverInThisRun is a retry time the service never reaches: a message
// given it with RetryAt is left in the queue for the next start.
const neverInThisRun = 100 * 365 * 24 * time.Hour

// handleSuspects deals with the messages in flight at the last crash,
// before any other message is taken: those in flight in
// QuarantineAfterCrashes consecutive crashes are quarantined; the others
// are verified one at a time, the most crashes first, each alone, so that
// should one crash the service again it is the only one in flight: the
// others were not, and their counts start again. (Verified together, two
// poison messages could each reset the other's count at every crash, and
// never reach the quarantine.)
func (e *Engine) handleSuspects(ctx context.Context, budget *ingest.MemoryBudget) {
	suspects := e.queue.Suspects()
	if len(suspects) == 0 {
		return
	}
	e.log.Warn(fmt.Sprintf("the last run crashed or left messages in flight: %d to verify alone first, or to quarantine", len(suspects)),
		"most_crashes", suspects[0].Crashes)
	archived := startArchiveSyncer(e.queue.Sync, archiveSyncInterval, e.log)
	defer archived.stop()
	for _, sus := range suspects {
		select {
		case <-e.stopping:
			return // SIGTERM: the rest wait, suspects still, for the next start
		default:
		}
		if sus.Crashes >= QuarantineAfterCrashes {
			e.quarantine(ctx, sus)
			continue
		}
		e.log.Warn("verifying alone a message in flight at the last crash", "path", sus.Path, "crashes", sus.Crashes)
		e.health.taken()
		o, ok := e.verify(ctx, budget, sus.ID)
		if !ok {
			e.queue.Release(sus.ID)
			e.health.finished(1)
			continue
		}
		e.health.verified()
		if !e.commit(ctx, []outcome{o}, archived) {
			return // the shutdown timeout cut the report off
		}
	}
}

// quarantine reports the suspect sus as internal_error, then has the queue
// set it aside: like a verdict, its report line is durable before it
// leaves the queue. The queue holds it in flight meanwhile, so that a crash
// now counts once more, and a move that failed is tried again at the next
// start; in this run the message is not taken again.
func (e *Engine) quarantine(ctx context.Context, sus queue.Suspect) {
	id := sus.ID
	m, err := e.queue.Load(ctx, id, queue.LoadOptions{MaxSize: e.opts.MaxSize})
	if errors.Is(err, queue.ErrGone) {
		e.queue.Release(id) // archived or removed meanwhile
		return
	}
	// Only the message's bytes were read (for its id), never parsed.
	res := &verify.Result{ID: verify.MessageIDFor(m), Reason: verify.ReasonInternalError,
		Detail: fmt.Sprintf("quarantined after %d crashes", sus.Crashes), At: e.opts.Now()}
	m.Raw = nil
	m.Path = sus.QuarantinePath
	rec := output.NewRecord(m, res)
	// Retried like any verdict's line while the report cannot be written.
	if !e.writeReport(ctx, []*output.Record{rec}) {
		e.log.Error("quarantine: the shutdown came before the report could be written; the message stays in new/",
			"id", res.ID)
		e.queue.RetryAt(ctx, id, e.opts.Now().Add(neverInThisRun))
		return
	}
	e.opts.Observer.Reported(rec, res)
	if err := e.queue.Quarantine(ctx, id); err != nil {
		e.log.Error("quarantine: moving the message failed; it stays in new/, not verified again until the next start",
			"id", res.ID, "error", err)
		e.queue.RetryAt(ctx, id, e.opts.Now().Add(neverInThisRun))
		return
	}
	e.queue.Release(id)
	e.log.Error(fmt.Sprintf("quarantined: in flight in %d consecutive crashes of the service", sus.Crashes),
		"id", res.ID, "path", m.Path, "source", m.Source)
	e.mu.Lock()
	e.processed++
	e.mu.Unlock()
}
