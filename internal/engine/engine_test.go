package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// walkCorpus writes the test corpus's messages into dir and returns the
// case of each file.
func walkCorpus(t *testing.T, f *testcorpus.Fixture, dir string) map[string]testcorpus.Case {
	t.Helper()
	cases := map[string]testcorpus.Case{}
	for i, c := range f.Cases() {
		path := filepath.Join(dir, fmt.Sprintf("%02d-%s.eml", i+1, c.Name))
		if err := os.WriteFile(path, c.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		cases[path] = c
	}
	return cases
}

// countingObserver counts what the engine tells.
type countingObserver struct {
	mu                           sync.Mutex
	verified, reported, failures int
}

func (o *countingObserver) Verified(*verify.Message, *verify.Result) {
	o.mu.Lock()
	o.verified++
	o.mu.Unlock()
}

func (o *countingObserver) Reported(*output.Record, *verify.Result) {
	o.mu.Lock()
	o.reported++
	o.mu.Unlock()
}

func (o *countingObserver) ReportFailed(error) {
	o.mu.Lock()
	o.failures++
	o.mu.Unlock()
}

// scan's engine, in-process: every corpus case gets its expected verdict,
// one report line each, in the walk's order with one worker; a path that
// does not exist is a read_error line; a walk's acks touch nothing.
func TestEngineWalk(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	msgs := filepath.Join(dir, "messages")
	if err := os.Mkdir(msgs, 0o700); err != nil {
		t.Fatal(err)
	}
	cases := walkCorpus(t, f, msgs)
	missing := filepath.Join(dir, "missing.eml")
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			store, err := output.OpenCertStore(filepath.Join(t.TempDir(), "certs"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			pipeline, err := verify.New(WithSlotWaits(verify.Options{Roots: f.TrustPool(),
				LookupTXT: func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) },
				Now:       func() time.Time { return testcorpus.At }, Store: store}, false))
			if err != nil {
				t.Fatal(err)
			}
			reportPath := filepath.Join(t.TempDir(), "report.jsonl")
			report, err := output.OpenReport(reportPath)
			if err != nil {
				t.Fatal(err)
			}
			obs := &countingObserver{}
			walk := ingest.NewWalk([]string{msgs, missing}, ingest.WalkOptions{})
			e := New(pipeline, walk, report, Options{Workers: workers, InOrder: workers == 1, Observer: obs})
			if err := e.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := report.Close(); err != nil {
				t.Fatal(err)
			}
			if err := walk.Err(); err != nil {
				t.Fatal(err)
			}
			recs := readReport(t, reportPath)
			if len(recs) != len(cases)+1 {
				t.Fatalf("%d report lines, want %d", len(recs), len(cases)+1)
			}
			prev := ""
			for _, rec := range recs {
				if rec.Path == missing {
					if rec.Reason != verify.ReasonReadError {
						t.Errorf("missing path: %s, want read_error", rec.Reason)
					}
					continue
				}
				c, ok := cases[rec.Path]
				if !ok {
					t.Errorf("report line for unknown path %s", rec.Path)
					continue
				}
				if string(rec.Reason) != c.Reason {
					t.Errorf("%s: %s (%s), want %s", c.Name, rec.Reason, rec.Detail, c.Reason)
				}
				if workers == 1 && rec.Path < prev {
					t.Errorf("with one worker, %s reported after %s", rec.Path, prev)
				}
				prev = rec.Path
			}
			processed, accepted := e.Counts()
			if processed != len(recs) || obs.reported != len(recs) || obs.verified != len(cases) {
				t.Errorf("processed %d, reported %d, verified %d; want %d, %d, %d",
					processed, obs.reported, obs.verified, len(recs), len(recs), len(cases))
			}
			if accepted == 0 {
				t.Error("no message accepted")
			}
		})
	}
}

// corpusPipeline returns a pipeline for the corpus f, without a store.
func corpusPipeline(t *testing.T, f *testcorpus.Fixture) *verify.Pipeline {
	t.Helper()
	pipeline, err := verify.New(verify.Options{Roots: f.TrustPool(),
		LookupTXT: func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) },
		Now:       func() time.Time { return testcorpus.At }})
	if err != nil {
		t.Fatal(err)
	}
	return pipeline
}

// failingReport is a report whose writes fail.
type failingReport struct{}

func (failingReport) Write(*output.Record) error { return errors.New("disk full") }
func (failingReport) Sync() error                { return errors.New("disk full") }

// Without Durable (scan), a report that cannot be written does not hold the
// messages: every one is processed, and Run returns the failure.
func TestEngineReportFailureNotDurable(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := walkCorpus(t, f, dir)
	pipeline := corpusPipeline(t, f)
	obs := &countingObserver{}
	e := New(pipeline, ingest.NewWalk([]string{dir}, ingest.WalkOptions{}), failingReport{}, Options{Workers: 2, Observer: obs})
	if err := e.Run(context.Background()); err == nil || err.Error() != "disk full" {
		t.Fatalf("Run: %v, want the report's failure", err)
	}
	if obs.failures != len(cases) || obs.reported != len(cases) {
		t.Errorf("%d failures and %d verdicts told, want %d each", obs.failures, obs.reported, len(cases))
	}
}

// flakyQueue is a walk whose Next first fails temporarily.
type flakyQueue struct {
	*ingest.Walk
	failures atomic.Int32
}

func (q *flakyQueue) Next(ctx context.Context) (string, error) {
	if q.failures.Add(-1) >= 0 {
		return "", fmt.Errorf("unreachable: %w", queue.ErrTemporary)
	}
	return q.Walk.Next(ctx)
}

// A temporary failure of the queue's Next is waited out, not the end of
// the run: every message is still reported.
func TestEngineNextTemporaryFailure(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := walkCorpus(t, f, dir)
	pipeline := corpusPipeline(t, f)
	q := &flakyQueue{Walk: ingest.NewWalk([]string{dir}, ingest.WalkOptions{})}
	q.failures.Store(1)
	obs := &countingObserver{}
	reportPath := filepath.Join(t.TempDir(), "report.jsonl")
	report, err := output.OpenReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(pipeline, q, report, Options{Workers: 1, InOrder: true, Observer: obs}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	report.Close()
	if obs.reported != len(cases) {
		t.Errorf("%d verdicts after a temporary failure of Next, want %d", obs.reported, len(cases))
	}
}
