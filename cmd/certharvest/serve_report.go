package main

import (
	"context"
	"fmt"
	"time"

	"github.com/certharvest/certharvest/output"
)

// A batch whose report lines cannot be written is tried again after
// reportRetryFirst, the delay doubling up to reportRetryMax: a second is
// soon enough after a brief failure, and a minute, while the disk stays
// full, costs nothing and logs one line a minute.
const (
	reportRetryFirst = time.Second
	reportRetryMax   = time.Minute
)

// writeReport writes the report lines of a batch and makes them durable. A
// failure (a full disk) is not final: the same lines are tried again, with
// back-off, until they are durable (true) or ctx ends (false). Meanwhile
// the batch's messages stay in new/, the commit loop takes no other batch
// (the workers, and then the watcher, wait for it), /healthz answers 503
// "report not writable", and each failure is counted in
// certharvest_report_write_failures_total.
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
// in new/, are then reported a second time at the next start, as after a
// crash.)
func (s *server) writeReport(ctx context.Context, recs []*output.Record) bool {
	pending := recs
	for attempt := 1; ; attempt++ {
		var err error
		for len(pending) > 0 && err == nil {
			if err = s.h.report.Write(pending[0]); err == nil {
				pending = pending[1:]
			}
		}
		if err == nil {
			err = s.h.report.Sync()
		}
		if err == nil {
			if attempt > 1 {
				s.log.Info("the report is written again", "messages", len(recs), "attempts", attempt)
			}
			s.health.reportWritten()
			return true
		}
		s.metrics.reportFailed()
		s.health.reportFailed(err)
		delay := min(backoff(reportRetryFirst, attempt), reportRetryMax)
		s.log.Error(fmt.Sprintf("writing the report failed: retrying in %s; the messages stay in new/", delay),
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
