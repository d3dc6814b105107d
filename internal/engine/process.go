package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/verify"
)

// outcome is one verified message on its way to the report.
type outcome struct {
	id  string
	msg *verify.Message
	res *verify.Result
}

// process runs the readers and the committer until the queue closes and
// every message taken is committed. At most Options.Workers messages are
// verified at once; up to SlotWaiters more are read, or wait for the disk
// or DNS, meanwhile (cpuSlots).
func (e *Engine) process(ctx context.Context) {
	budget := inFlightBudget(e.opts.MaxSize)
	e.handleSuspects(ctx, budget) // those of the last crash first, alone
	results := make(chan outcome, e.opts.Batch)
	readers := e.opts.Workers + SlotWaiters
	if e.opts.InOrder {
		readers = e.opts.Workers
	}
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for {
				id, err := e.queue.Next(ctx)
				if errors.Is(err, queue.ErrTemporary) && e.waitNext(ctx, err) {
					continue
				}
				if err != nil {
					if !errors.Is(err, queue.ErrClosed) {
						e.log.Error("taking a message from the queue failed; stopping", "error", err)
					}
					return
				}
				e.health.taken()
				o, ok := e.verify(ctx, budget, id)
				if !ok {
					e.queue.Release(id)
					e.health.finished(1)
					continue
				}
				e.health.verified()
				results <- o
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	e.commitLoop(ctx, results)
}

// verify loads one message, then verifies it holding a CPU slot. ok is false
// when there is no verdict to report: the message is no longer in the queue
// (already handled), it changed while it was verified, or ctx ended. The
// message's bytes are held, counted in budget, from its read until its
// verdict; the outcome does not keep them.
func (e *Engine) verify(ctx context.Context, budget *ingest.MemoryBudget, id string) (outcome, bool) {
	// The message is read before taking a slot, so that reading (the disk,
	// when it is not in the cache) overlaps other verifications. It takes
	// its size from the budget first.
	claim := budgetClaim{budget: budget}
	defer claim.release()
	m, err := e.queue.Load(ctx, id, queue.LoadOptions{MaxSize: e.opts.MaxSize, Reserve: claim.take})
	if errors.Is(err, queue.ErrGone) {
		e.mu.Lock()
		delete(e.attempts, id)
		e.mu.Unlock()
		return outcome{}, false
	}
	ctx, release := e.slots.acquire(ctx)
	defer release()
	if err != nil {
		// Verified at the pipeline's time (--at), as every verdict is.
		res := ReadErrorResult(m, err, e.pipeline.Now())
		e.log.Warn("rejected: "+string(res.Reason)+": "+res.Detail, "id", res.ID, "path", m.Path, "reason", string(res.Reason))
		return outcome{id, m, res}, true
	}
	res := e.pipeline.Verify(ctx, m)
	m.Raw = nil // the report needs its context, not its bytes
	e.opts.Observer.Verified(m, res)
	if ctx.Err() != nil {
		// Cut off by the shutdown (--shutdown-timeout): whatever the
		// verdict says (a lookup or a store interrupted), it is not the
		// message's. It stays in the queue for the next start.
		e.log.Warn("shutdown: the verification was cut off; the message stays in new/ for the next start",
			"id", res.ID, "path", m.Path, "reason", string(res.Reason))
		return outcome{}, false
	}
	if err := e.queue.Unchanged(ctx, id); err != nil {
		e.log.Warn("the message changed while it was verified: not reported; verifying it again once its writes end",
			"id", res.ID, "path", m.Path, "change", err.Error())
		return outcome{}, false
	}
	return outcome{id, m, res}, true
}

// nextRetryDelay is how long a reader waits before asking the queue again
// after a temporary failure of Next (a network queue out of reach).
const nextRetryDelay = time.Second

// waitNext waits nextRetryDelay after the temporary failure err of
// Queue.Next, and reports whether to ask again: false when ctx ended.
func (e *Engine) waitNext(ctx context.Context, err error) bool {
	e.log.Warn("taking a message from the queue failed; trying again", "error", err, "in", nextRetryDelay.String())
	t := time.NewTimer(nextRetryDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
