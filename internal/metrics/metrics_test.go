package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// The engine, with the metrics as its observer as serve runs it, counts
// each report line once, by source, outcome and reason; each run of the
// pipeline, retries included; and what the store did.
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
	queue, err := maildir.NewQueue(spool, watcher, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()
	m := New(Options{})
	eng := engine.New(pipeline, queue, report, engine.Options{Workers: 1, RetryFor: time.Hour,
		RetryFirst: 20 * time.Millisecond, Durable: true, Observer: m})
	var rejected testcorpus.Case
	for _, c := range f.Cases() {
		if c.Reason == "cert_untrusted" {
			rejected = c
		}
	}
	accepted := f.Cases()[0]
	for _, data := range [][]byte{accepted.Data, accepted.Data, rejected.Data} {
		if _, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: data, Envelope: verify.Envelope{Source: "test"}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go watcher.Run(ctx)
	done := make(chan struct{})
	go func() { eng.Run(context.Background()); close(done) }()
	// A message is archived in cur/ once reported.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if archived, _ := os.ReadDir(filepath.Join(spool.Dir(), maildir.SubCur)); len(archived) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	wantSamples(t, scrape(t, m.Handler()),
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
	m := New(Options{})
	for _, code := range []int{200, 200, 400, 503} {
		m.WebhookResponse(code)
	}
	for _, code := range []int{250, 550, 550, 421} {
		m.SMTPReply(code)
	}
	mailgun, ses := m.InboundResponse("mailgun"), m.InboundResponse("ses")
	for _, code := range []int{200, 406, 200} {
		mailgun(code)
	}
	ses(403)
	m.ReportFailed(os.ErrClosed)
	wantSamples(t, scrape(t, m.Handler()),
		`certharvest_inbound_responses_total{code="200",provider="mailgun"} 2`,
		`certharvest_inbound_responses_total{code="406",provider="mailgun"} 1`,
		`certharvest_inbound_responses_total{code="403",provider="ses"} 1`,
		`certharvest_webhook_responses_total{code="200"} 2`,
		`certharvest_webhook_responses_total{code="400"} 1`,
		`certharvest_webhook_responses_total{code="503"} 1`,
		`certharvest_smtp_replies_total{code="250"} 1`,
		`certharvest_smtp_replies_total{code="550"} 2`,
		`certharvest_smtp_replies_total{code="421"} 1`,
		`certharvest_report_write_failures_total 1`,
	)
}

// Each Metrics has its own registry: two count apart, and neither touches
// Prometheus's global one.
func TestMetricsRegistryPerServer(t *testing.T) {
	a, b := New(Options{}), New(Options{})
	a.SMTPReply(250)
	if got := scrape(t, b.Handler()); strings.Contains(got, "certharvest_smtp_replies_total{") {
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
