package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// HealthOptions configure Engine.Alive.
type HealthOptions struct {
	// StallAfter is how long the pipeline may go without a step while
	// messages are in progress, or the queue without a turn, before Alive
	// calls it stalled; default DefaultStallAfter. A step is a message
	// taken, verified or committed; the slowest legitimate one is a
	// message whose DKIM keys are looked up in DNS (up to --dns-timeout,
	// 5 s, per lookup, a few lookups) or a report sync on a busy disk
	// (seconds): a minute leaves a wide margin, and a monitor learns of a
	// stuck service within a minute or two.
	StallAfter time.Duration
	// QueueTurn, when set, returns when the queue last looked for work
	// (the Maildir watcher's LastTurn); the zero time means it is not
	// running.
	QueueTurn func() time.Time
}

// Alive returns nil while the engine runs and keeps up, else why not: for
// a health check.
func (e *Engine) Alive() error { return e.health.alive() }

// ReportWritable returns nil unless the last attempt to write the report
// failed, else its error: for a health check.
func (e *Engine) ReportWritable() error { return e.health.reportWritable() }

// pipelineHealth tells whether the engine runs and keeps up, for a health
// check (Engine.Alive). The engine reports to it; an idle service (nothing in progress) is healthy
// however long ago its last step was. Its methods are safe for concurrent
// use and, on a nil *pipelineHealth, do nothing.
type pipelineHealth struct {
	now        func() time.Time
	stallAfter time.Duration
	// queueTurn is HealthOptions.QueueTurn; nil: not checked.
	queueTurn func() time.Time

	running  atomic.Bool
	inFlight atomic.Int64 // messages taken from the queue, not yet committed
	lastStep atomic.Int64 // Unix nanoseconds
	// reportErr is why the last attempt to write the report failed; nil
	// when it succeeded.
	reportErr atomic.Pointer[error]
}

func newPipelineHealth(stallAfter time.Duration) *pipelineHealth {
	return &pipelineHealth{now: time.Now, stallAfter: stallAfter}
}

// setRunning records that the workers and the commit loop started, or
// have returned.
func (p *pipelineHealth) setRunning(running bool) {
	if p == nil {
		return
	}
	p.step()
	p.running.Store(running)
}

// taken records a message taken from the queue.
func (p *pipelineHealth) taken() {
	if p == nil {
		return
	}
	p.inFlight.Add(1)
	p.step()
}

// verified records a message verified, still to be committed.
func (p *pipelineHealth) verified() {
	if p == nil {
		return
	}
	p.step()
}

// finished records n messages out of progress: committed, put back for a
// retry, or gone from new/.
func (p *pipelineHealth) finished(n int) {
	if p == nil {
		return
	}
	p.inFlight.Add(-int64(n))
	p.step()
}

func (p *pipelineHealth) step() { p.lastStep.Store(p.now().UnixNano()) }

// alive returns nil while the pipeline runs and keeps up, else why not.
func (p *pipelineHealth) alive() error {
	if p == nil {
		return nil
	}
	if !p.running.Load() {
		return errors.New("the pipeline is not running")
	}
	now := p.now()
	if p.queueTurn != nil {
		turn := p.queueTurn()
		if turn.IsZero() {
			return errors.New("the Maildir watcher is not running")
		}
		if d := now.Sub(turn); d > p.stallAfter {
			return fmt.Errorf("the Maildir watcher has been stuck for %s", d.Round(time.Second))
		}
	}
	if n := p.inFlight.Load(); n > 0 {
		if d := now.Sub(time.Unix(0, p.lastStep.Load())); d > p.stallAfter {
			return fmt.Errorf("stalled: no step for %s with messages in progress (%d)", d.Round(time.Second), n)
		}
	}
	return nil
}

// reportFailed records that the report could not be written (and its lines
// wait to be written again); reportWritten, that it was.
func (p *pipelineHealth) reportFailed(err error) {
	if p == nil {
		return
	}
	p.reportErr.Store(&err)
}

func (p *pipelineHealth) reportWritten() {
	if p == nil {
		return
	}
	p.reportErr.Store(nil)
}

// reportWritable returns nil unless the last attempt to write the report
// failed, else its error: for the webhook's health check
// (ingest.WebhookOptions.ReportWritable).
func (p *pipelineHealth) reportWritable() error {
	if p == nil {
		return nil
	}
	if err := p.reportErr.Load(); err != nil {
		return *err
	}
	return nil
}
