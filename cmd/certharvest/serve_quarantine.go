package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// quarantineAfterCrashes is how many consecutive crashes of serve a message
// may be in flight in before it is set aside in the spool's quarantine/,
// reported as internal_error: a message that crashes the service (runs it
// out of memory, or into a fatal error) would otherwise crash it at every
// restart, since only a verdict takes it out of new/, and no other message
// would ever be processed. Three, because after the first crash every
// message then in flight is a suspect, and is verified alone (see
// verifySuspects); the second crash then names the culprit, and the third
// confirms it was no accident (an OOM kill caused by another process, say).
const quarantineAfterCrashes = 3

// neverInThisRun is a retry time the service never reaches: a message
// given it with RetryAt is left in new/ for the next start.
const neverInThisRun = 100 * 365 * 24 * time.Hour

// openInFlight opens the spool's in-flight log (maildir.InFlight) and keeps
// the suspects of the last crash for handleSuspects.
func (s *server) openInFlight() error {
	l, suspects, err := s.spool.OpenInFlight(s.log)
	if err != nil {
		return err
	}
	s.inflight, s.suspects = l, suspects
	if len(suspects) > 0 {
		s.log.Warn(fmt.Sprintf("the last run crashed or left messages in flight: %d to verify alone first, or to quarantine", len(suspects)),
			"most_crashes", suspects[0].Crashes)
	}
	return nil
}

// closeInFlight marks the in-flight log as left by a clean stop.
func (s *server) closeInFlight() {
	if err := s.inflight.Close(); err != nil {
		s.log.Error("closing the in-flight log: the next start may count a crash that was not", "error", err)
	}
}

// handleSuspects deals with the messages in flight at the last crash,
// before any other message is taken: those in flight in
// quarantineAfterCrashes consecutive crashes are quarantined; the others
// are verified one at a time, the most crashes first, each alone, so that
// should one crash the service again it is the only one in flight: the
// others were not, and their counts start again. (Verified together, two
// poison messages could each reset the other's count at every crash, and
// never reach the quarantine.)
func (s *server) handleSuspects(ctx context.Context, slots *cpuSlots, budget *byteBudget) {
	if len(s.suspects) == 0 {
		return
	}
	archived := startArchiveSyncer(s.spool.Sync, archiveSyncInterval, s.log)
	defer archived.stop()
	for _, sus := range s.suspects {
		select {
		case <-s.stopping:
			return // SIGTERM: the rest wait, suspects still, for the next start
		default:
		}
		if sus.Crashes >= quarantineAfterCrashes {
			s.quarantine(ctx, sus)
			continue
		}
		s.log.Warn("verifying alone a message in flight at the last crash",
			"path", filepath.Join(s.spool.Dir(), maildir.SubNew, sus.Name), "crashes", sus.Crashes)
		s.health.taken()
		s.inflight.Taken(sus.Name)
		o, ok := s.verify(ctx, slots, budget, sus.Name)
		if !ok {
			s.inflight.Finished(sus.Name)
			s.health.finished(1)
			continue
		}
		s.health.verified()
		if !s.commit(ctx, []outcome{o}, archived) {
			return // the shutdown timeout cut the report off
		}
	}
	s.suspects = nil
}

// quarantine reports the suspect sus as internal_error, then moves it to
// the spool's quarantine/: like a verdict, its report line is durable
// before it leaves new/. It is marked in flight meanwhile, so that a crash
// now counts once more, and a move that failed is tried again at the next
// start; in this run the message is not taken again.
func (s *server) quarantine(ctx context.Context, sus maildir.Suspect) {
	name := sus.Name
	s.inflight.Taken(name)
	m, _, err := s.spool.LoadFile(name, ingest.ReadOptions{MaxSize: s.maxSize})
	if errors.Is(err, fs.ErrNotExist) {
		s.inflight.Finished(name) // archived or removed meanwhile
		return
	}
	// Only the message's bytes were read (for its id), never parsed.
	res := &verify.Result{ID: verify.MessageIDFor(m), Reason: verify.ReasonInternalError,
		Detail: fmt.Sprintf("quarantined after %d crashes", sus.Crashes), At: time.Now()}
	m.Raw = nil
	m.Path = filepath.Join(s.spool.Dir(), maildir.SubQuarantine, name)
	rec := output.NewRecord(m, res)
	// Retried like any verdict's line while the report cannot be written.
	if !s.writeReport(ctx, []*output.Record{rec}) {
		s.log.Error("quarantine: the shutdown came before the report could be written; the message stays in new/",
			"id", res.ID)
		s.watcher.RetryAt(name, time.Now().Add(neverInThisRun))
		return
	}
	s.metrics.reported(rec)
	if _, err := s.spool.Quarantine(name); err != nil {
		s.log.Error("quarantine: moving the message failed; it stays in new/, not verified again until the next start",
			"id", res.ID, "error", err)
		s.watcher.RetryAt(name, time.Now().Add(neverInThisRun))
		return
	}
	s.inflight.Finished(name)
	s.watcher.Done(name)
	s.log.Error(fmt.Sprintf("quarantined: in flight in %d consecutive crashes of the service", sus.Crashes),
		"id", res.ID, "path", m.Path, "source", m.Source)
	s.mu.Lock()
	s.processed++
	s.mu.Unlock()
}

// finishedInFlight marks the messages of a committed batch as no longer in
// flight: one write for the batch.
func (s *server) finishedInFlight(batch []outcome) {
	if s.inflight == nil {
		return
	}
	names := make([]string, len(batch))
	for i, o := range batch {
		names[i] = o.name
	}
	s.inflight.Finished(names...)
}
