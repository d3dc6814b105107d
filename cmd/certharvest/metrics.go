package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// metricsPath is where the Prometheus metrics are served.
const metricsPath = "/metrics"

// metrics are serve's Prometheus metrics, in a registry of their own: no
// package-level state, so each server (and each test) counts alone.
type metrics struct {
	registry     *prometheus.Registry
	messages     *prometheus.CounterVec
	pipeline     *prometheus.HistogramVec
	stages       [verify.NumStages]prometheus.Observer
	certificates *prometheus.CounterVec
	webhook      *prometheus.CounterVec
	smtp         *prometheus.CounterVec
	reportFails  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certharvest_messages_total",
			Help: "Messages reported (one per report line), by source (maildir, webhook, smtp), outcome and reason code.",
		}, []string{"source", "outcome", "reason"}),
		pipeline: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "certharvest_pipeline_duration_seconds",
			Help: "Time the verification pipeline took for a message, every attempt included (retries of a temporary failure too), by source.",
			// About 1 ms of CPU for a message verified offline; DNS
			// lookups of DKIM keys take up to --dns-timeout.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		certificates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certharvest_certificates_stored_total",
			Help: "Accepted messages by what the certificate store did: stored (now the current certificate), unchanged, kept_existing (the current one, with as late a NotBefore or later, is kept).",
		}, []string{"action"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certharvest_webhook_responses_total",
			Help: "Answers of the relay webhook (not of /healthz, /certs/ or /metrics), by HTTP status code.",
		}, []string{"code"}),
		smtp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certharvest_smtp_replies_total",
			Help: "SMTP replies that settle a transaction, by code: 250 for a message queued, and each refusal certharvest makes (connection, MAIL, RCPT, end of DATA).",
		}, []string{"code"}),
		reportFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certharvest_report_write_failures_total",
			Help: "Failed attempts to write and sync a batch of report lines (a full or failing disk); each is retried with back-off, its messages waiting in the spool's new/.",
		}),
	}
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certharvest_stage_duration_seconds",
		Help:    "Time of each pipeline stage for a message that reached it: parse, from, dkim (with DNS lookups), locate, cms, chain, identity, store (with its syncs).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"stage"})
	for s := range verify.NumStages {
		m.stages[s] = stages.WithLabelValues(s.String())
	}
	m.registry.MustRegister(stages, m.messages, m.pipeline, m.certificates, m.webhook, m.smtp, m.reportFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every action exists from the start, so that rate() sees the first one.
	for _, a := range []verify.Action{verify.ActionStored, verify.ActionUnchanged, verify.ActionKeptExisting} {
		m.certificates.WithLabelValues(string(a))
	}
	return m
}

// handler serves the metrics in Prometheus's exposition formats.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog: promErrorLog{log},
		Registry: m.registry,
		// A scrape reads new/ (spoolCollector): a few at once are plenty.
		MaxRequestsInFlight: 4,
	})
}

// bearerOnly serves the metrics on the public --http listener: only to a
// client sending the lookup API's bearer token, checked as the lookup
// checks it. Anyone else could otherwise post a message to the webhook and
// read its verdict off certharvest_messages_total, which the webhook's own
// answer never tells (docs/SECURITY.md).
func bearerOnly(api *lookup.Handler, metrics http.Handler) http.Handler {
	return api.Guard("metrics", metrics)
}

// The metrics are the engine's engine.Observer.
var _ engine.Observer = (*metrics)(nil)

// Verified records a run of the pipeline and its stages.
func (m *metrics) Verified(msg *verify.Message, res *verify.Result) {
	m.pipeline.WithLabelValues(msg.Source).Observe(res.Duration.Seconds())
	for s, sd := range res.Stages {
		if sd > 0 { // a stage not reached does not pull the distribution down
			m.stages[s].Observe(sd.Seconds())
		}
	}
}

// Reported records a message whose report line was written.
func (m *metrics) Reported(rec *output.Record, _ *verify.Result) {
	m.messages.WithLabelValues(rec.Source, rec.Outcome, string(rec.Reason)).Inc()
	if rec.Action != "" {
		m.certificates.WithLabelValues(string(rec.Action)).Inc()
	}
}

// ReportFailed records a failed attempt to write the report.
func (m *metrics) ReportFailed(error) { m.reportFails.Inc() }

// webhookResponse is the webhook's ingest.WebhookOptions.ObserveResponse.
func (m *metrics) webhookResponse(status int) {
	m.webhook.WithLabelValues(strconv.Itoa(status)).Inc()
}

// smtpReply is the SMTP input's ingest.SMTPOptions.ObserveReply.
func (m *metrics) smtpReply(code int) {
	m.smtp.WithLabelValues(strconv.Itoa(code)).Inc()
}

// watchSpool adds the spool's gauges.
func (m *metrics) watchSpool(w *maildir.Watcher, spool *maildir.Spool, log *slog.Logger) {
	m.registry.MustRegister(newSpoolCollector(w, spool, log))
}

// newSpoolCollector returns the collector of the spool's gauges and
// counters: its backlog and oldest message (new/), its archive (cur/).
func newSpoolCollector(w *maildir.Watcher, spool *maildir.Spool, log *slog.Logger) *spoolCollector {
	return &spoolCollector{
		watcher: w, spool: spool, log: log, now: time.Now,
		messages: prometheus.NewDesc("certharvest_spool_messages",
			"Messages in the spool's new/ not yet reported and archived (the watcher's backlog, retries included).", nil, nil),
		age: prometheus.NewDesc("certharvest_spool_oldest_message_age_seconds",
			"Age of the oldest message waiting in new/, from its delivery time (0 when none waits).", nil, nil),
		archiveBytes: prometheus.NewDesc("certharvest_spool_archive_bytes",
			"Disk space of the messages in the spool's archive, cur/, by verdict (accepted, rejected): as of its last sweep, and the moves and removals since.", []string{"verdict"}, nil),
		archiveMessages: prometheus.NewDesc("certharvest_spool_archive_messages",
			"Messages in the spool's archive, cur/, by verdict (accepted, rejected).", []string{"verdict"}, nil),
		evictions: prometheus.NewDesc("certharvest_spool_archive_evictions_total",
			"Messages removed from the spool's archive by its retention policy, by cause: age (--keep-rejected, --keep-accepted), size (--archive-max-size), pressure (the disk short of room for new mail).", []string{"cause"}, nil),
	}
}

// The oldest message's age is found by reading new/ at most this often, and
// at most this many entries of it.
const (
	spoolAgeCache   = 5 * time.Second
	spoolAgeEntries = 100_000
)

// spoolCollector reports the spool's backlog and the age of its oldest
// message. The age is computed when scraped, from a listing of new/ that
// needs no system call per Maildir-named file (maildir.Spool.OldestNew); the
// oldest delivery time found is kept for spoolAgeCache, so that scrapes in
// quick succession (several Prometheus servers, or anyone who can reach
// the listener) do not read the folder again. Nothing is added to the
// per-message path.
type spoolCollector struct {
	watcher *maildir.Watcher
	spool   *maildir.Spool
	log     *slog.Logger
	now     func() time.Time

	messages, age                            *prometheus.Desc
	archiveBytes, archiveMessages, evictions *prometheus.Desc

	mu     sync.Mutex
	listed time.Time // when oldest was found
	oldest time.Time // zero: new/ was empty
}

// Describe implements prometheus.Collector.
func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.age
	ch <- c.archiveBytes
	ch <- c.archiveMessages
	ch <- c.evictions
}

// Collect implements prometheus.Collector.
func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(c.watcher.Backlog()))
	// Kept by the spool as it goes: no listing of cur/ here.
	archive := c.spool.ArchiveStats()
	for verdict, n := range map[string]maildir.ArchiveCount{"accepted": archive.Accepted, "rejected": archive.Rejected} {
		ch <- prometheus.MustNewConstMetric(c.archiveBytes, prometheus.GaugeValue, float64(n.Bytes), verdict)
		ch <- prometheus.MustNewConstMetric(c.archiveMessages, prometheus.GaugeValue, float64(n.Messages), verdict)
	}
	for cause, n := range archive.Evicted {
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(n), maildir.EvictCause(cause).String())
	}
	now := c.now()
	c.mu.Lock()
	if c.listed.IsZero() || now.Sub(c.listed) >= spoolAgeCache || now.Before(c.listed) {
		oldest, complete, err := c.spool.OldestNew(spoolAgeEntries)
		if err != nil {
			c.mu.Unlock()
			c.log.Warn("metrics: reading the spool's new/ failed", "error", err)
			ch <- prometheus.NewInvalidMetric(c.age, err)
			return
		}
		if !complete {
			c.log.Debug(fmt.Sprintf("metrics: new/ has more than %d entries: the oldest message's age is that of the first %d listed", spoolAgeEntries, spoolAgeEntries))
		}
		c.listed, c.oldest = now, oldest
	}
	oldest := c.oldest
	c.mu.Unlock()
	age := 0.0
	if !oldest.IsZero() {
		age = max(now.Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}

// promErrorLog sends promhttp's errors to the log.
type promErrorLog struct{ log *slog.Logger }

func (l promErrorLog) Println(v ...any) {
	l.log.Warn("metrics: " + fmt.Sprint(v...))
}

// metricsServer is the listener of --metrics: /metrics alone, over plain
// HTTP, for a Prometheus on a private network or loopback.
type metricsServer struct {
	addr string
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// start listens on addr (port 0 picks a free one: the log tells which).
func (ms *metricsServer) start(ctx context.Context, h http.Handler, log *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", ms.addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, h)
	ms.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadHeaderTimeout,
		WriteTimeout:      time.Minute,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeader,
		ErrorLog:          newHTTPErrorLog(log, "metrics"),
	}
	ms.done = make(chan struct{})
	go func() {
		defer close(ms.done)
		if err := ms.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "error", err)
		}
	}()
	log.Info("metrics listening on "+ln.Addr().String(), "path", metricsPath)
	return nil
}

// shutdown stops the listener.
func (ms *metricsServer) shutdown(ctx context.Context) error {
	if ms == nil || ms.srv == nil {
		return nil
	}
	err := ms.srv.Shutdown(ctx)
	if err != nil {
		ms.srv.Close()
	}
	<-ms.done
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
