package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// testServer is serve's engine in-process, over a spool in a temporary
// folder, with a DKIM lookup the test controls; its fields may be changed
// before process.
type testServer struct {
	t        testing.TB
	spool    *maildir.Spool
	watcher  *maildir.Watcher
	pipeline *verify.Pipeline
	report   *output.Report
	opts     Options
	log      *slog.Logger
}

// process runs the engine over the spool until the watcher stops.
func (s *testServer) process(ctx context.Context) {
	q, err := maildir.NewQueue(s.spool, s.watcher, s.log)
	if err != nil {
		s.t.Error(err)
		return
	}
	defer q.Close()
	New(s.pipeline, q, s.report, s.opts).Run(ctx)
}

// serveOptions are the engine's options as serve sets them, for a test.
func serveOptions(workers, batch int, retryFor, retryFirst time.Duration) Options {
	return Options{Workers: workers, Batch: batch, RetryFor: retryFor, RetryFirst: retryFirst, Durable: true}
}

// newTestServer builds a server in-process, with a DKIM lookup the test
// controls.
func newTestServer(t testing.TB, f *testcorpus.Fixture, lookup verify.LookupTXTFunc, sf Options) (*testServer, *maildir.Spool) {
	t.Helper()
	return newTestServerStore(t, f, lookup, nil, sf)
}

// newTestServerStore is newTestServer with a certificate store the test
// controls; nil is a CertStore in the test's folder. As in runServe with
// DNS, the store and the lookup give the CPU slot back while they wait.
func newTestServerStore(t testing.TB, f *testcorpus.Fixture, lookup verify.LookupTXTFunc, store verify.CertStore, sf Options) (*testServer, *maildir.Spool) {
	t.Helper()
	dir := t.TempDir()
	spool, err := maildir.Open(filepath.Join(dir, "Maildir"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	if store == nil {
		cs, err := output.OpenCertStore(filepath.Join(dir, "certs"))
		if err != nil {
			t.Fatal(err)
		}
		store = cs
	}
	pipeline, err := verify.New(WithSlotWaits(verify.Options{Roots: f.TrustPool(), LookupTXT: lookup,
		Now: func() time.Time { return testcorpus.At }, Store: store}, true))
	if err != nil {
		t.Fatal(err)
	}
	report, err := output.OpenReport(filepath.Join(dir, "report.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { report.Close() })
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SERVE_DEBUG") != "" {
		log = slog.New(output.NewLogHandler(os.Stderr, slog.LevelDebug))
	}
	sf.Logger = log
	s := &testServer{t: t, spool: spool, log: log, pipeline: pipeline, report: report, opts: sf}
	s.watcher = maildir.NewWatcher(spool.Dir(), maildir.WatchOptions{Settle: 5 * time.Millisecond})
	return s, spool
}

// A temporary DKIM failure leaves the message in new/ and retries it; it is
// reported once, when it finally passes.
func TestMaildirRetriesTemporaryFailures(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	failures, lookup := f.FlakyLookupTXT(2)
	sf := serveOptions(2, 16, time.Hour, 50*time.Millisecond)
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: verify.Envelope{Source: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	recs := runUntilArchived(t, s, spool, names[0])
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("report = %+v, want one accepted line", recs)
	}
	if failures.Load() >= 0 {
		t.Error("the temporary failures were not all hit")
	}
}

// After --retry-for, a temporary failure is reported as the final verdict.
func TestMaildirGivesUpAfterRetryFor(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(context.Context, string) ([]string, error) {
		return nil, &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	}
	sf := serveOptions(1, 16, 300*time.Millisecond, 50*time.Millisecond)
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data,
		Envelope: verify.Envelope{Source: "test", Received: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	recs := runUntilArchived(t, s, spool, names[0])
	if len(recs) != 1 || recs[0].Reason != verify.ReasonDKIMTempError {
		t.Fatalf("report = %+v, want one dkim_temperror line", recs)
	}
}

// A message written straight into new/ whose writer goes on while it is
// verified is not reported on what was read: it changed, so it waits for its
// writes to end and is verified again, complete. One accepted line.
func TestMaildirReverifiesMessageChangedWhileVerified(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	data := f.Cases()[0].Data
	body := bytes.Index(data, []byte("\r\n\r\n")) + 4
	half := body + (len(data)-body)/2
	var (
		path    string
		lookups atomic.Int32
	)
	// The DKIM key is looked up before the body hash is checked: the first
	// lookup is the moment the writer finishes, the message half verified.
	lookup := func(_ context.Context, name string) ([]string, error) {
		if lookups.Add(1) == 1 {
			fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			if _, err := fh.Write(data[half:]); err != nil {
				return nil, err
			}
		}
		return f.LookupTXT(name)
	}
	sf := serveOptions(1, 16, time.Hour, time.Minute)
	s, spool := newTestServer(t, f, lookup, sf)
	s.watcher = maildir.NewWatcher(spool.Dir(), maildir.WatchOptions{Settle: 5 * time.Millisecond, WriteSettle: 50 * time.Millisecond})
	path = filepath.Join(spool.Dir(), "new", "written-in-place")
	if err := os.WriteFile(path, data[:half], 0o600); err != nil {
		t.Fatal(err)
	}
	recs := runUntilArchived(t, s, spool, "written-in-place")
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("report = %+v, want one accepted line", recs)
	}
	if n := lookups.Load(); n < 2 {
		t.Errorf("%d DKIM lookups: the complete message was not verified", n)
	}
}

// --retry-for counts from the first attempt in this process when that is
// later than the delivery: a message delivered long ago (an outage longer
// than --retry-for, or an old Maildir name) is retried after a temporary
// DNS failure, not rejected on its first attempt.
func TestMaildirRetriesMessageDeliveredLongAgo(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		deliver func(t *testing.T, spool *maildir.Spool, raw []byte) string
	}{
		{"context says two days ago", func(t *testing.T, spool *maildir.Spool, raw []byte) string {
			names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: raw,
				Envelope: verify.Envelope{Source: "test", Received: time.Now().Add(-48 * time.Hour)}})
			if err != nil {
				t.Fatal(err)
			}
			return names[0]
		}},
		{"Maildir name from 2001", func(t *testing.T, spool *maildir.Spool, raw []byte) string {
			const name = "1000000000.M1P1Q1.mx.example.org"
			deliver(t, spool.Dir(), name, raw)
			return name
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			failures, lookup := f.FlakyLookupTXT(1)
			sf := serveOptions(1, 16, time.Hour, 50*time.Millisecond)
			s, spool := newTestServer(t, f, lookup, sf)
			name := tt.deliver(t, spool, f.Cases()[0].Data)
			recs := runUntilArchived(t, s, spool, name)
			if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
				t.Fatalf("report = %+v, want one accepted line", recs)
			}
			if failures.Load() >= 0 {
				t.Error("the temporary failure was not hit")
			}
		})
	}
}

// A verification cut off by the shutdown (--shutdown-timeout cancels the
// work) is not a verdict: nothing is reported, and the message stays in
// new/ for the next start, even when --retry-for is over.
func TestMaildirShutdownCutOffIsNotReported(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 1)
	// A DNS query that lasts until it is cancelled, as net.Resolver's does.
	lookup := func(ctx context.Context, name string) ([]string, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: name, UnwrapErr: ctx.Err()}
	}
	sf := serveOptions(1, 16, time.Nanosecond, time.Minute)
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: verify.Envelope{Source: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go s.watcher.Run(watchCtx)
	workCtx, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	done := make(chan struct{})
	go func() { s.process(workCtx); close(done) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the message was not verified")
	}
	// As runServe does at the shutdown timeout.
	stopWatch()
	cancelWork()
	<-done
	s.report.Close()
	if recs := readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl")); len(recs) != 0 {
		t.Errorf("report = %+v, want nothing", recs)
	}
	if _, err := os.Stat(filepath.Join(spool.Dir(), "new", names[0])); err != nil {
		t.Errorf("the message left new/: %v", err)
	}
}

// runUntilArchived runs an in-process server until the message name is in
// cur/ (or 10 s pass), stops it and returns the report.
func runUntilArchived(t *testing.T, s *testServer, spool *maildir.Spool, name string) []output.Record {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	go s.watcher.Run(ctx)
	done := make(chan struct{})
	go func() { s.process(context.Background()); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if inCur(spool.Dir(), name) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	s.report.Close()
	return readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl"))
}

// A message waiting for its certificate to be stored, or for a DKIM key
// from DNS, gives its CPU slot to the next: with --workers 1, two messages
// wait at once, and both are then reported and archived.
func TestMaildirWaitsWithoutSlot(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, waitIn := range []string{"store", "lookup"} {
		t.Run(waitIn, func(t *testing.T) {
			entered, proceed := make(chan struct{}, 8), make(chan struct{})
			lookup := func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) }
			var store verify.CertStore
			if waitIn == "lookup" {
				lookup = func(_ context.Context, name string) ([]string, error) {
					entered <- struct{}{}
					<-proceed
					return f.LookupTXT(name)
				}
			} else {
				store = &blockingStore{entered: entered, release: proceed}
			}
			sf := serveOptions(1, 16, time.Hour, time.Minute)
			s, spool := newTestServerStore(t, f, lookup, store, sf)
			var names []string
			for range 2 {
				n, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: verify.Envelope{Source: "test"}})
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, n[0])
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.watcher.Run(ctx)
			done := make(chan struct{})
			go func() { s.process(context.Background()); close(done) }()
			for i := range 2 {
				select {
				case <-entered:
				case <-time.After(10 * time.Second):
					t.Fatalf("%d message(s) waiting in the %s, want 2: the slot was not given back", i, waitIn)
				}
			}
			close(proceed)
			waitArchived(t, spool, names, 10*time.Second)
			cancel()
			<-done
			s.report.Close()
			if recs := readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl")); len(recs) != 2 || recs[0].Reason != verify.ReasonOK || recs[1].Reason != verify.ReasonOK {
				t.Errorf("report = %+v, want two accepted lines", recs)
			}
		})
	}
}

// waitArchived waits until every message of names is in cur/.
func waitArchived(t *testing.T, spool *maildir.Spool, names []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, name := range names {
		for {
			if inCur(spool.Dir(), name) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not in cur/ after %v", name, timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// The moves to cur/ are synced at most once per interval, not per batch;
// once more when the syncer stops, and again after a failed sync.
func TestArchiveSyncer(t *testing.T) {
	var (
		calls atomic.Int32
		fail  atomic.Bool
	)
	syncCur := func(context.Context) error {
		calls.Add(1)
		if fail.Swap(false) {
			return errors.New("disk on fire")
		}
		return nil
	}
	const interval = 20 * time.Millisecond

	// No moves: no sync, not even at the end.
	a := startArchiveSyncer(syncCur, interval, slog.New(slog.DiscardHandler))
	time.Sleep(3 * interval)
	a.stop()
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d syncs without a move", n)
	}

	// Moves all the time: about one sync per interval.
	a = startArchiveSyncer(syncCur, interval, slog.New(slog.DiscardHandler))
	start := time.Now()
	for time.Since(start) < 10*interval {
		a.moved()
		time.Sleep(interval / 20)
	}
	elapsed := time.Since(start)
	a.stop()
	if n := calls.Load(); n < 1 || time.Duration(n) > elapsed/interval+2 {
		t.Errorf("%d syncs in %v of moves at %v intervals", n, elapsed, interval)
	}

	// A move just before stop is synced by stop.
	calls.Store(0)
	a = startArchiveSyncer(syncCur, time.Hour, slog.New(slog.DiscardHandler))
	a.moved()
	a.stop()
	if n := calls.Load(); n != 1 {
		t.Errorf("stop made %d syncs, want 1", n)
	}

	// A failed sync is tried again.
	calls.Store(0)
	fail.Store(true)
	a = startArchiveSyncer(syncCur, interval, slog.New(slog.DiscardHandler))
	a.moved()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(interval / 4)
	}
	a.stop()
	if n := calls.Load(); n != 2 {
		t.Errorf("%d syncs after a failure, want 2 (the failure, then its retry)", n)
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, time.Hour}, {50, time.Hour}} {
		if got := backoff(time.Minute, tt.n); got != tt.want {
			t.Errorf("backoff(1m, %d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}
