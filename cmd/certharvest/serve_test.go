package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// service is a running `certharvest serve`.
type service struct {
	cmd                *exec.Cmd
	dir, maildir       string
	certs, report, log string
	stdout, stderr     bytes.Buffer
	exited             chan struct{}
	exitCode           int
	// logFrom is the log's length before this run: a restarted service
	// appends to the same log, and the lines waited for are its own.
	logFrom int
}

func startServe(t *testing.T, dir string, extra ...string) *service {
	t.Helper()
	return startServeEnv(t, dir, nil, extra...)
}

// startServeEnv is startServe with more environment variables (NAME=value).
func startServeEnv(t *testing.T, dir string, env []string, extra ...string) *service {
	t.Helper()
	return startServeBinary(t, binary, dir, env, extra...)
}

// startServeBinary is startServeEnv with another build of certharvest.
func startServeBinary(t *testing.T, binary, dir string, env []string, extra ...string) *service {
	t.Helper()
	s := &service{dir: dir, maildir: filepath.Join(dir, "Maildir"), certs: filepath.Join(dir, "certs"),
		report: filepath.Join(dir, "report.jsonl"), log: filepath.Join(dir, "serve.log"), exited: make(chan struct{})}
	args := append([]string{"serve", "--maildir", s.maildir, "--certs", s.certs, "--report", s.report, "--log", s.log,
		"--settle", "30ms", "--rescan", "2s"}, sampleFlags()...)
	s.cmd = exec.Command(binary, append(args, extra...)...)
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	prior, _ := os.ReadFile(s.log)
	s.logFrom = len(prior)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.exitCode = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	s.waitLog(t, "Maildir listed")
	return s
}

// ownLog returns what this run of the service has logged so far.
func (s *service) ownLog() []byte {
	data, _ := os.ReadFile(s.log)
	if len(data) < s.logFrom {
		return nil
	}
	return data[s.logFrom:]
}

func (s *service) waitLog(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data := s.ownLog()
		if bytes.Contains(data, []byte(what)) {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("serve exited (%d) before logging %q\n%s\n%s", s.exitCode, what, s.stderr.String(), data)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve never logged %q", what)
}

// listeningAddr waits for the log line "<prefix>ADDR" and returns ADDR.
func (s *service) listeningAddr(t *testing.T, prefix string) string {
	t.Helper()
	s.waitLog(t, prefix)
	data := s.ownLog()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no %q address in the log:\n%s", prefix, data)
	}
	return string(m[1])
}

// waitDrained waits until new/ is empty.
func (s *service) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(filepath.Join(s.maildir, "new"))
		if len(entries) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	entries, _ := os.ReadDir(filepath.Join(s.maildir, "new"))
	t.Fatalf("%d messages still in new/ after %v", len(entries), timeout)
}

func (s *service) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if s.exitCode != 0 {
		t.Fatalf("serve exited %d\n%s", s.exitCode, s.stderr.String())
	}
}

// deliver puts a message into new/ the Maildir way.
func deliver(t *testing.T, maildir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(maildir, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
}

func sampleMessages(t *testing.T) map[string][]byte {
	t.Helper()
	msgs := map[string][]byte{}
	for name := range expectedSample(t) {
		data, err := os.ReadFile(filepath.Join(sampleDir, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 { // an empty file waits a minute before it is taken
			msgs[name] = data
		}
	}
	return msgs
}

func TestServeMaildir(t *testing.T) {
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	msgs := sampleMessages(t)
	want := expectedSample(t)
	// Half are waiting before the service starts, half arrive while it runs.
	i := 0
	var later []string
	for name, data := range msgs {
		if i%2 == 0 {
			deliver(t, maildir, name, data)
		} else {
			later = append(later, name)
		}
		i++
	}
	s := startServe(t, dir)
	for j, name := range later {
		if j%2 == 0 {
			deliver(t, maildir, name, msgs[name])
		} else { // written straight into new/
			os.WriteFile(filepath.Join(maildir, "new", name), msgs[name], 0o600)
		}
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	recs := readReport(t, s.report)
	if len(recs) != len(msgs) {
		t.Fatalf("%d report lines, want %d", len(recs), len(msgs))
	}
	for _, rec := range recs {
		name := filepath.Base(rec.Path)
		if rec.Source != "maildir" {
			t.Errorf("%s: source %q", name, rec.Source)
		}
		if string(rec.Reason) != want[name] {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, want[name])
		}
		if _, err := os.Stat(filepath.Join(maildir, "cur", curName(name, rec.Outcome == output.OutcomeAccepted))); err != nil {
			t.Errorf("%s not in cur/ as %s: %v", name, rec.Outcome, err)
		}
		if rec.Outcome == output.OutcomeAccepted {
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
		}
	}
	log, _ := os.ReadFile(s.log)
	for _, line := range []string{"certharvest serve starting", "trust=", "(1 roots)", "stopping", "certharvest serve stopped"} {
		if !bytes.Contains(log, []byte(line)) {
			t.Errorf("log lacks %q", line)
		}
	}

	// A restart processes nothing again.
	s = startServe(t, dir)
	time.Sleep(200 * time.Millisecond)
	s.stop(t)
	if n := len(readReport(t, s.report)); n != len(msgs) {
		t.Errorf("after a restart: %d report lines, want %d", n, len(msgs))
	}
}

// kill -9 in the middle of a stream loses nothing: after a restart every
// message is reported and archived, and every certificate file is whole.
func TestServeCrash(t *testing.T) {
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	msgs := sampleMessages(t)
	var all []string
	const rounds = 12
	s := startServe(t, dir)
	for r := range rounds {
		for name, data := range msgs {
			n := fmt.Sprintf("%d.%s", r, name)
			deliver(t, maildir, n, data)
			all = append(all, n)
		}
		if r == rounds/2 {
			// Wait until some are reported, then crash.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if data, _ := os.ReadFile(s.report); bytes.Count(data, []byte("\n")) > len(msgs) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		}
	}
	s = startServe(t, dir)
	s.waitDrained(t, 60*time.Second)
	s.stop(t)

	reported := map[string]int{}
	for _, rec := range readReport(t, s.report) {
		reported[filepath.Base(rec.Path)]++
	}
	for _, n := range all {
		if reported[n] == 0 {
			t.Errorf("%s was never reported", n)
		}
		if !inCur(maildir, n) {
			t.Errorf("%s not archived", n)
		}
	}
	entries, _ := os.ReadDir(s.certs)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			// A write the kill interrupted: hidden, never a certificate
			// file; OpenCertStore removes such files once stale.
			continue
		}
		if !strings.HasSuffix(e.Name(), ".crt") {
			if e.Name() != "history" && e.Name() != ".locks" {
				t.Errorf("stray file %s in the certificate folder", e.Name())
			}
			continue
		}
		data, _ := os.ReadFile(filepath.Join(s.certs, e.Name()))
		block, _ := pem.Decode(data)
		if block == nil {
			t.Errorf("%s is not whole PEM", e.Name())
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// newTestServer builds a server in-process, with a DKIM lookup the test
// controls.
func newTestServer(t testing.TB, f *testcorpus.Fixture, lookup verify.LookupTXTFunc, sf serveFlags) (*server, *maildir.Spool) {
	t.Helper()
	return newTestServerStore(t, f, lookup, nil, sf)
}

// newTestServerStore is newTestServer with a certificate store the test
// controls; nil is a CertStore in the test's folder. As in runServe with
// DNS, the store and the lookup give the CPU slot back while they wait.
func newTestServerStore(t testing.TB, f *testcorpus.Fixture, lookup verify.LookupTXTFunc, store verify.CertStore, sf serveFlags) (*server, *maildir.Spool) {
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
	pipeline, err := verify.New(withSlotWaits(verify.Options{Roots: f.TrustPool(), LookupTXT: lookup,
		Now: func() time.Time { return testcorpus.At }, Store: store}, true))
	if err != nil {
		t.Fatal(err)
	}
	report, err := output.OpenReport(filepath.Join(dir, "report.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { report.Close() })
	log := discardLogger()
	if os.Getenv("SERVE_DEBUG") != "" {
		log = slog.New(output.NewLogHandler(os.Stderr, slog.LevelDebug))
	}
	s := &server{flags: sf, spool: spool, log: log, h: &harvester{pipeline: pipeline, report: report, log: log},
		maxSize: verify.DefaultMaxSize, attempts: map[string]retryState{}, metrics: newMetrics()}
	s.watcher = maildir.NewWatcher(spool.Dir(), maildir.WatchOptions{Settle: 5 * time.Millisecond})
	return s, spool
}

// flakyLookup answers DKIM key lookups from the fixture after n temporary
// DNS failures; the counter goes below zero once they are all used.
func flakyLookup(f *testcorpus.Fixture, n int32) (*atomic.Int32, verify.LookupTXTFunc) {
	failures := &atomic.Int32{}
	failures.Store(n)
	return failures, func(_ context.Context, name string) ([]string, error) {
		if failures.Add(-1) >= 0 {
			return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
		}
		return f.LookupTXT(name)
	}
}

// A temporary DKIM failure leaves the message in new/ and retries it; it is
// reported once, when it finally passes.
func TestServeRetriesTemporaryFailures(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	failures, lookup := flakyLookup(f, 2)
	sf := serveFlags{workers: 2, batch: 16, retryFor: time.Hour, retryFirst: 50 * time.Millisecond}
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: ingest.Envelope{Source: "test"}})
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
func TestServeGivesUpAfterRetryFor(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(context.Context, string) ([]string, error) {
		return nil, &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	}
	sf := serveFlags{workers: 1, batch: 16, retryFor: 300 * time.Millisecond, retryFirst: 50 * time.Millisecond}
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data,
		Envelope: ingest.Envelope{Source: "test", Received: time.Now()}})
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
func TestServeReverifiesMessageChangedWhileVerified(t *testing.T) {
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
	sf := serveFlags{workers: 1, batch: 16, retryFor: time.Hour, retryFirst: time.Minute}
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

// The audit's case, through the service: half a message written straight
// into new/, a pause far longer than --settle, then the rest. The message is
// taken only once complete: one report line, accepted.
func TestServeMessageWrittenInPlaceWithPause(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--settle-written", "1s")
	data := sampleMessages(t)["01-ok-rsa-detached.eml"]
	f, err := os.Create(filepath.Join(s.maildir, "new", "slow-writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data[:len(data)/2])
	time.Sleep(400 * time.Millisecond) // more than ten times --settle (30ms)
	f.Write(data[len(data)/2:])
	f.Close()
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("report = %+v, want one accepted line", recs)
	}
}

// --retry-for counts from the first attempt in this process when that is
// later than the delivery: a message delivered long ago (an outage longer
// than --retry-for, or an old Maildir name) is retried after a temporary
// DNS failure, not rejected on its first attempt.
func TestServeRetriesMessageDeliveredLongAgo(t *testing.T) {
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
				Envelope: ingest.Envelope{Source: "test", Received: time.Now().Add(-48 * time.Hour)}})
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
			failures, lookup := flakyLookup(f, 1)
			sf := serveFlags{workers: 1, batch: 16, retryFor: time.Hour, retryFirst: 50 * time.Millisecond}
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
func TestServeShutdownCutOffIsNotReported(t *testing.T) {
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
	sf := serveFlags{workers: 1, batch: 16, retryFor: time.Nanosecond, retryFirst: time.Minute}
	s, spool := newTestServer(t, f, lookup, sf)
	names, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: ingest.Envelope{Source: "test"}})
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
	s.h.report.Close()
	if recs := readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl")); len(recs) != 0 {
		t.Errorf("report = %+v, want nothing", recs)
	}
	if _, err := os.Stat(filepath.Join(spool.Dir(), "new", names[0])); err != nil {
		t.Errorf("the message left new/: %v", err)
	}
}

// runUntilArchived runs an in-process server until the message name is in
// cur/ (or 10 s pass), stops it and returns the report.
func runUntilArchived(t *testing.T, s *server, spool *maildir.Spool, name string) []output.Record {
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
	s.h.report.Close()
	return readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl"))
}

// A message waiting for its certificate to be stored, or for a DKIM key
// from DNS, gives its CPU slot to the next: with --workers 1, two messages
// wait at once, and both are then reported and archived.
func TestServeWaitsWithoutSlot(t *testing.T) {
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
			sf := serveFlags{workers: 1, batch: 16, retryFor: time.Hour, retryFirst: time.Minute}
			s, spool := newTestServerStore(t, f, lookup, store, sf)
			var names []string
			for range 2 {
				n, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: f.Cases()[0].Data, Envelope: ingest.Envelope{Source: "test"}})
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
			s.h.report.Close()
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
	syncCur := func() error {
		calls.Add(1)
		if fail.Swap(false) {
			return errors.New("disk on fire")
		}
		return nil
	}
	const interval = 20 * time.Millisecond

	// No moves: no sync, not even at the end.
	a := startArchiveSyncer(syncCur, interval, discardLogger())
	time.Sleep(3 * interval)
	a.stop()
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d syncs without a move", n)
	}

	// Moves all the time: about one sync per interval.
	a = startArchiveSyncer(syncCur, interval, discardLogger())
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
	a = startArchiveSyncer(syncCur, time.Hour, discardLogger())
	a.moved()
	a.stop()
	if n := calls.Load(); n != 1 {
		t.Errorf("stop made %d syncs, want 1", n)
	}

	// A failed sync is tried again.
	calls.Store(0)
	fail.Store(true)
	a = startArchiveSyncer(syncCur, interval, discardLogger())
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

// serve runs Go code on two threads more than the cores (GOMAXPROCS), so
// that syncs do not stop the verifications, unless GOMAXPROCS is set; the
// default --workers is twice the cores.
func TestServeGOMAXPROCS(t *testing.T) {
	started := regexp.MustCompile(`workers=(\d+) gomaxprocs=(\d+)`)
	for _, tt := range []struct {
		env         []string
		wantWorkers func(cores int) int
		wantProcs   func(cores int) int
	}{
		{nil, func(c int) int { return 2 * c }, func(c int) int { return c + 2 }},
		{[]string{"GOMAXPROCS=3"}, func(int) int { return 6 }, func(int) int { return 3 }},
	} {
		s := startServeEnv(t, t.TempDir(), tt.env)
		s.stop(t)
		data, _ := os.ReadFile(s.log)
		m := started.FindSubmatch(data)
		if m == nil {
			t.Fatalf("env %v: no workers and gomaxprocs in the start-up line:\n%s", tt.env, data)
		}
		workers, _ := strconv.Atoi(string(m[1]))
		procs, _ := strconv.Atoi(string(m[2]))
		cores := workers / 2 // the default --workers is twice the cores
		if workers != tt.wantWorkers(cores) || procs != tt.wantProcs(cores) {
			t.Errorf("env %v: workers=%d gomaxprocs=%d", tt.env, workers, procs)
		}
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

// logrotate moves the log and the report away and sends SIGHUP: the service
// writes new ones.
func TestServeReopensOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	msgs := sampleMessages(t)
	deliver(t, s.maildir, "first", msgs["01-ok-rsa-detached.eml"])
	s.waitDrained(t, 20*time.Second)
	waitLines(t, s.report, 1)
	os.Rename(s.report, s.report+".1")
	os.Rename(s.log, s.log+".1")
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, "SIGHUP: reopened")
	deliver(t, s.maildir, "second", msgs["02-ok-ecdsa-detached.eml"])
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	if old := readReport(t, s.report+".1"); len(old) != 1 || filepath.Base(old[0].Path) != "first" {
		t.Errorf("rotated report = %+v", old)
	}
	if cur := readReport(t, s.report); len(cur) != 1 || filepath.Base(cur[0].Path) != "second" {
		t.Errorf("new report = %+v", cur)
	}
	if data, _ := os.ReadFile(s.log); !bytes.Contains(data, []byte("second")) {
		t.Error("the new log does not tell the second message's story")
	}
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); bytes.Count(data, []byte("\n")) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never had %d lines", path, n)
}
