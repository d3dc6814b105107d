package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// scrape returns what Prometheus would read from h.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// wantSamples checks that every sample line is in a scrape.
func wantSamples(t *testing.T, scraped string, samples ...string) {
	t.Helper()
	for _, s := range samples {
		if !strings.Contains("\n"+scraped, "\n"+s+"\n") {
			t.Errorf("metrics lack %s", s)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", scraped)
	}
}

// The server counts each report line once, by source, outcome and reason;
// each run of the pipeline, retries included; and what the store did.
func TestServeMetrics(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	_, lookup := f.FlakyLookupTXT(1)
	dir := t.TempDir()
	spool, err := maildir.Open(filepath.Join(dir, "Maildir"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	store, err := output.OpenCertStore(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	pipeline, err := verify.New(verify.Options{Roots: f.TrustPool(), LookupTXT: lookup,
		Now: func() time.Time { return testcorpus.At }, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	report, err := output.OpenReport(filepath.Join(dir, "report.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	watcher := maildir.NewWatcher(spool.Dir(), maildir.WatchOptions{Settle: 5 * time.Millisecond})
	queue, err := maildir.NewQueue(spool, watcher, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()
	m := newMetrics()
	eng := engine.New(pipeline, queue, report, engine.Options{Workers: 1, RetryFor: time.Hour,
		RetryFirst: 20 * time.Millisecond, Durable: true, Observer: m})
	var rejected testcorpus.Case
	for _, c := range f.Cases() {
		if c.Reason == "cert_untrusted" {
			rejected = c
		}
	}
	accepted := f.Cases()[0]
	var names []string
	for _, data := range [][]byte{accepted.Data, accepted.Data, rejected.Data} {
		n, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: data, Envelope: verify.Envelope{Source: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go watcher.Run(ctx)
	done := make(chan struct{})
	go func() { eng.Run(context.Background()); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range names {
		for time.Now().Before(deadline) {
			if inCur(spool.Dir(), name) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	<-done

	wantSamples(t, scrape(t, m.handler(discardLogger())),
		`certharvest_messages_total{outcome="accepted",reason="ok",source="test"} 2`,
		`certharvest_messages_total{outcome="rejected",reason="cert_untrusted",source="test"} 1`,
		// The temporary failure ran the pipeline once more, unreported.
		`certharvest_pipeline_duration_seconds_count{source="test"} 4`,
		`certharvest_certificates_stored_total{action="stored"} 1`,
		`certharvest_certificates_stored_total{action="unchanged"} 1`,
		`certharvest_certificates_stored_total{action="kept_existing"} 0`,
		// Every run parsed; the rejected one never reached the store.
		`certharvest_stage_duration_seconds_count{stage="parse"} 4`,
		`certharvest_stage_duration_seconds_count{stage="dkim"} 4`,
		`certharvest_stage_duration_seconds_count{stage="store"} 2`,
	)
}

func TestMetricsInputCounters(t *testing.T) {
	m := newMetrics()
	for _, code := range []int{200, 200, 400, 503} {
		m.webhookResponse(code)
	}
	for _, code := range []int{250, 550, 550, 421} {
		m.smtpReply(code)
	}
	wantSamples(t, scrape(t, m.handler(discardLogger())),
		`certharvest_webhook_responses_total{code="200"} 2`,
		`certharvest_webhook_responses_total{code="400"} 1`,
		`certharvest_webhook_responses_total{code="503"} 1`,
		`certharvest_smtp_replies_total{code="250"} 1`,
		`certharvest_smtp_replies_total{code="550"} 2`,
		`certharvest_smtp_replies_total{code="421"} 1`,
	)
}

// Each server has its own registry: two count apart, and neither touches
// Prometheus's global one.
func TestMetricsRegistryPerServer(t *testing.T) {
	a, b := newMetrics(), newMetrics()
	a.smtpReply(250)
	if got := scrape(t, b.handler(discardLogger())); strings.Contains(got, "certharvest_smtp_replies_total{") {
		t.Errorf("a count of one server shows in another's metrics")
	}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "certharvest_") {
			t.Errorf("%s is in the global registry", f.GetName())
		}
	}
}

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
	m := newMetrics()
	m.watchSpool(watcher, spool, discardLogger())
	c := newSpoolCollector(watcher, spool, discardLogger())
	c.now = func() time.Time { return now }
	c.messages, c.age = prometheus.NewDesc("spool_messages", "test", nil, nil), prometheus.NewDesc("spool_age", "test", nil, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	wantSamples(t, scrape(t, h), "spool_messages 0", "spool_age 0")

	newDir := filepath.Join(spool.Dir(), maildir.SubNew)
	for _, name := range []string{"1780308000.M1P1Q1.test", "1780308040.M1P1Q2.test"} {
		if err := os.WriteFile(filepath.Join(newDir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Still the listing of a moment ago.
	now = now.Add(time.Second)
	wantSamples(t, scrape(t, h), "spool_age 0")
	// Listed again: the oldest is 101 s old, and ages with the clock
	// while the listing is kept.
	now = now.Add(spoolAgeCache)
	wantSamples(t, scrape(t, h), "spool_age 106")
	os.Remove(filepath.Join(newDir, "1780308000.M1P1Q1.test"))
	now = now.Add(time.Second)
	wantSamples(t, scrape(t, h), "spool_age 107")
	now = now.Add(spoolAgeCache)
	wantSamples(t, scrape(t, h), "spool_age 72")

	// The watcher's backlog, once it has seen the message.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watcher.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for watcher.Backlog() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	wantSamples(t, scrape(t, h), "spool_messages 1")
	wantSamples(t, scrape(t, m.handler(discardLogger())), "certharvest_spool_messages 1")
}
