package metrics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
)

// The spool's gauges: the watcher's backlog, and the age of the oldest
// message in new/ by its Maildir name, listed at most every spoolAgeCache.
func TestSpoolCollector(t *testing.T) {
	spool, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	watcher := maildir.NewWatcher(spool.Dir(), maildir.WatchOptions{Settle: 5 * time.Millisecond})
	now := time.Unix(1780308100, 0)
	m := New(Options{Now: func() time.Time { return now }})
	m.WatchSpool(watcher, spool)
	h := m.Handler()

	wantSamples(t, scrape(t, h), "certharvest_spool_messages 0", "certharvest_spool_oldest_message_age_seconds 0")

	newDir := filepath.Join(spool.Dir(), maildir.SubNew)
	for _, name := range []string{"1780308000.M1P1Q1.test", "1780308040.M1P1Q2.test"} {
		if err := os.WriteFile(filepath.Join(newDir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Still the listing of a moment ago.
	now = now.Add(time.Second)
	wantSamples(t, scrape(t, h), "certharvest_spool_oldest_message_age_seconds 0")
	// Listed again: the oldest is 101 s old, and ages with the clock
	// while the listing is kept.
	now = now.Add(spoolAgeCache)
	wantSamples(t, scrape(t, h), "certharvest_spool_oldest_message_age_seconds 106")
	os.Remove(filepath.Join(newDir, "1780308000.M1P1Q1.test"))
	now = now.Add(time.Second)
	wantSamples(t, scrape(t, h), "certharvest_spool_oldest_message_age_seconds 107")
	now = now.Add(spoolAgeCache)
	wantSamples(t, scrape(t, h), "certharvest_spool_oldest_message_age_seconds 72")

	// The watcher's backlog, once it has seen the message.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watcher.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for watcher.Backlog() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	wantSamples(t, scrape(t, h), "certharvest_spool_messages 1")
}

// The archive's gauges and its evictions by cause, as the spool keeps them.
func TestSpoolCollectorArchive(t *testing.T) {
	dir := t.TempDir()
	spool, err := maildir.Open(dir, maildir.Options{Archive: maildir.ArchivePolicy{SweepEvery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 3 {
		msg := fmt.Appendf(nil, "From: junk%d@example.net\r\nSubject: junk %d\r\n\r\nx\r\n", i, i)
		n, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: msg})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	for i, n := range names {
		if err := spool.Archive(n, i == 0); err != nil {
			t.Fatal(err)
		}
	}
	watcher := maildir.NewWatcher(dir, maildir.WatchOptions{})
	m := New(Options{})
	m.WatchSpool(watcher, spool)
	wantSamples(t, scrape(t, m.Handler()),
		`certharvest_spool_archive_messages{verdict="accepted"} 1`,
		`certharvest_spool_archive_messages{verdict="rejected"} 2`,
		`certharvest_spool_archive_evictions_total{cause="age"} 0`,
		`certharvest_spool_archive_evictions_total{cause="size"} 0`,
		`certharvest_spool_archive_evictions_total{cause="pressure"} 0`,
	)
	spool.Close()

	// Opened again two weeks later: the sweep at start removes the
	// rejected messages.
	later := time.Now().Add(14 * 24 * time.Hour)
	spool, err = maildir.Open(dir, maildir.Options{Archive: maildir.ArchivePolicy{KeepRejected: 7 * 24 * time.Hour, Now: func() time.Time { return later }}})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	deadline := time.Now().Add(10 * time.Second)
	// The sweep counts its evictions as it goes, and what it kept at its
	// end: wait for both.
	swept := func() bool {
		st := spool.ArchiveStats()
		return st.Evicted[maildir.EvictAge] >= 2 && st.Accepted.Messages >= 1
	}
	for !swept() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m = New(Options{})
	m.WatchSpool(watcher, spool)
	wantSamples(t, scrape(t, m.Handler()),
		`certharvest_spool_archive_messages{verdict="accepted"} 1`,
		`certharvest_spool_archive_messages{verdict="rejected"} 0`,
		`certharvest_spool_archive_bytes{verdict="rejected"} 0`,
		`certharvest_spool_archive_evictions_total{cause="age"} 2`,
	)
	if st := spool.ArchiveStats(); st.Accepted.Bytes <= 0 {
		t.Errorf("accepted bytes %d, want the message's", st.Accepted.Bytes)
	}
}
