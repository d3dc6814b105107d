package engine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The pipeline is alive while it runs, its watcher turns, and messages in
// progress make steps; an idle service is alive however long it idles.
func TestPipelineHealth(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	turn := now
	p := newPipelineHealth(time.Minute)
	p.now = func() time.Time { return now }
	p.queueTurn = func() time.Time { return turn }
	check := func(want string) {
		t.Helper()
		err := p.alive()
		switch {
		case want == "" && err != nil:
			t.Errorf("alive: %v, want nil", err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("alive: %v, want an error with %q", err, want)
		}
	}

	check("not running")
	p.setRunning(true)
	check("")

	// Idle for an hour: nothing in progress, the watcher turning.
	now, turn = now.Add(time.Hour), now.Add(time.Hour)
	check("")

	// Two messages taken; one is committed within the minute.
	p.taken()
	p.taken()
	now, turn = now.Add(50*time.Second), now.Add(50*time.Second)
	p.verified()
	now, turn = now.Add(50*time.Second), now.Add(50*time.Second)
	check("")
	p.finished(1)
	// The other never is: stalled once a minute passes without a step.
	now, turn = now.Add(time.Minute+time.Second), now.Add(time.Minute+time.Second)
	check("stalled")
	p.finished(1)
	check("")

	// The watcher's loop stuck.
	now = now.Add(2 * time.Minute)
	check("watcher has been stuck")
	turn = now
	check("")
	p.queueTurn = func() time.Time { return time.Time{} }
	check("watcher is not running")
	p.queueTurn = func() time.Time { return turn }

	p.setRunning(false)
	check("not running")

	var none *pipelineHealth
	none.taken()
	none.finished(1)
	if err := none.alive(); err != nil {
		t.Errorf("nil: %v", err)
	}
}

// The report's state: writable until an attempt to write it fails, not
// writable (with the error) until one succeeds.
func TestPipelineHealthReport(t *testing.T) {
	p := newPipelineHealth(time.Minute)
	if err := p.reportWritable(); err != nil {
		t.Fatalf("at start: %v", err)
	}
	p.reportFailed(errors.New("writing report: no space left on device"))
	if err := p.reportWritable(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("after a failure: %v", err)
	}
	p.reportWritten()
	if err := p.reportWritable(); err != nil {
		t.Errorf("after a success: %v", err)
	}
	var none *pipelineHealth
	none.reportFailed(errors.New("x"))
	if err := none.reportWritable(); err != nil {
		t.Errorf("nil: %v", err)
	}
}
