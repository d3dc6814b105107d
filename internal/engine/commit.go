package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/output"
)

// retryState is a message's temporary failures in this process.
type retryState struct {
	n     int       // temporary failures so far
	first time.Time // when the first was committed
}

// commitLoop makes verdicts durable in batches: the report lines of a batch
// are written and synced once, then its messages are acked to the queue
// (group commit). A temporary failure is not reported but retried later,
// until Options.RetryFor has passed since delivery, or since its first
// temporary failure in this process when that is later.
//
// The acks are made durable in the background, about once a second
// (archiveSyncInterval), and once more when results is closed: a crash may
// undo the last second's acks, which only means processing those messages
// again, their report lines being durable already.
//
// A batch whose report lines cannot be written is retried until they are
// (writeReport); when ctx ends meanwhile (the shutdown timeout), the rest is
// dropped, every message not reported staying in the queue.
func (e *Engine) commitLoop(ctx context.Context, results <-chan outcome) {
	archived := startArchiveSyncer(e.queue.Sync, archiveSyncInterval, e.log)
	defer archived.stop()
	batch := make([]outcome, 0, e.opts.Batch)
	for o := range results {
		batch = append(batch[:0], o)
	gather:
		for len(batch) < cap(batch) {
			select {
			case o, ok := <-results:
				if !ok {
					break gather
				}
				batch = append(batch, o)
			default:
				break gather
			}
		}
		if !e.commit(ctx, batch, archived) {
			for o := range results {
				e.queue.Release(o.id)
				e.health.finished(1)
			}
			return
		}
	}
}

// commit reports a batch: its report lines are written and synced, then
// its messages acked (made durable later by archived). It returns false
// when ctx ended before the lines could be written.
func (e *Engine) commit(ctx context.Context, batch []outcome, archived *archiveSyncer) bool {
	defer e.health.finished(len(batch))
	defer e.release(batch)
	now := e.opts.Now()
	reported := batch[:0:0]
	recs := make([]*output.Record, 0, len(batch))
	for _, o := range batch {
		if o.res.Reason.Temporary() && e.retrying(o, now) {
			e.mu.Lock()
			r := e.attempts[o.id]
			r.n++
			e.attempts[o.id] = r
			n := r.n
			e.mu.Unlock()
			delay := backoff(e.opts.RetryFirst, n)
			e.log.Warn(fmt.Sprintf("temporary failure: %s: retrying in %s", o.res.Reason, delay), "id", o.res.ID, "attempt", n, "path", o.msg.Path)
			if err := e.queue.RetryAt(ctx, o.id, now.Add(delay)); err != nil {
				e.log.Error("putting a message back for a retry failed", "error", err, "id", o.res.ID)
			}
			continue
		}
		reported = append(reported, o)
		recs = append(recs, output.NewRecord(o.msg, o.res))
	}
	if len(reported) == 0 {
		return true
	}
	if !e.writeReport(ctx, recs) {
		e.log.Warn("shutdown timeout: the report could not be written; the messages stay in new/ for the next start",
			"messages", len(reported))
		return false
	}
	for i, rec := range recs {
		e.opts.Observer.Reported(rec, reported[i].res)
	}
	acks := make([]queue.Ack, len(reported))
	for i, o := range reported {
		acks[i] = queue.Ack{ID: o.id, Accepted: o.res.Accepted(), Result: o.res}
	}
	if err := e.queue.Ack(ctx, acks); err != nil {
		e.log.Error("acknowledging verdicts to the queue failed", "error", err)
	}
	archived.moved()
	e.mu.Lock()
	for _, o := range reported {
		delete(e.attempts, o.id)
		e.processed++
		if o.res.Accepted() {
			e.accepted++
		}
	}
	e.mu.Unlock()
	return true
}

// release ends the queue's record of a batch in flight: one call for the
// batch.
func (e *Engine) release(batch []outcome) {
	ids := make([]string, len(batch))
	for i, o := range batch {
		ids[i] = o.id
	}
	e.queue.Release(ids...)
}

// retrying reports whether the temporary failure o is still within
// Options.RetryFor, measured from the later of its delivery and its first
// temporary failure in this process (now for the first): after an outage
// longer than RetryFor, or for a message whose Maildir name is old, a
// first failure is retried, not final.
func (e *Engine) retrying(o outcome, now time.Time) bool {
	if e.opts.RetryFor <= 0 {
		return false
	}
	e.mu.Lock()
	r, ok := e.attempts[o.id]
	if !ok {
		r.first = now
		e.attempts[o.id] = r
	}
	e.mu.Unlock()
	start := o.msg.Received
	if r.first.After(start) {
		start = r.first
	}
	return now.Sub(start) < e.opts.RetryFor
}

// backoff is the delay before retry n (1-based): first, doubled each time,
// at most MaxRetryDelay.
func backoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, MaxRetryDelay)
}

// A batch whose report lines cannot be written is tried again after
// reportRetryFirst, the delay doubling up to reportRetryMax: a second is
// soon enough after a brief failure, and a minute, while the disk stays
// full, costs nothing and logs one line a minute.
const (
	reportRetryFirst = time.Second
	reportRetryMax   = time.Minute
)

// writeReport writes the report lines of a batch and, with Options.Durable,
// makes them durable. A failure (a full disk) is then not final: the same
// lines are tried again, with back-off, until they are durable (true) or
// ctx ends (false). Meanwhile the batch's messages stay in the queue, the
// commit loop takes no other batch (the readers, and then the queue, wait
// for it), Alive says "report not writable", and each failure is told to
// the Observer.
//
// It is the lines of the verdicts given that are written again, not the
// messages that are verified again: a verdict is never replaced by another
// nor reported twice. (Verifying again would be safe for the certificate
// store, which is idempotent, but the line would differ: a certificate the
// first verification stored is "unchanged" the second time.) Each line is
// written exactly once: a line the report took (Write returned nil) stays
// in its buffer until written, the bytes of a failed write are taken back
// from the file (output.Report), and only the lines not yet taken are
// given again. (When ctx ends first, the lines the report took are still
// written by its Close if the disk has room by then: their messages, left
// in the queue, are then reported a second time at the next start, as
// after a crash.)
//
// Without Durable, the lines are written once, not synced; a failure is
// kept for Run to return, and true is returned all the same.
func (e *Engine) writeReport(ctx context.Context, recs []*output.Record) bool {
	if !e.opts.Durable {
		for _, rec := range recs {
			if err := e.report.Write(rec); err != nil {
				e.opts.Observer.ReportFailed(err)
				e.mu.Lock()
				if e.reportErr == nil {
					e.reportErr = err
				}
				e.mu.Unlock()
			}
		}
		return true
	}
	pending := recs
	for attempt := 1; ; attempt++ {
		var err error
		for len(pending) > 0 && err == nil {
			if err = e.report.Write(pending[0]); err == nil {
				pending = pending[1:]
			}
		}
		if err == nil {
			err = e.report.Sync()
		}
		if err == nil {
			if attempt > 1 {
				e.log.Info("the report is written again", "messages", len(recs), "attempts", attempt)
			}
			e.health.reportWritten()
			return true
		}
		e.opts.Observer.ReportFailed(err)
		e.health.reportFailed(err)
		delay := min(backoff(reportRetryFirst, attempt), reportRetryMax)
		e.log.Error(fmt.Sprintf("writing the report failed: retrying in %s; the messages stay in new/", delay),
			"error", err, "messages", len(recs), "attempt", attempt)
		wait := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			wait.Stop()
			return false
		case <-wait.C:
		}
	}
}
