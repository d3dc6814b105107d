// Package metrics holds serve's Prometheus metrics:
//
//	certharvest_messages_total                     report lines, by source, outcome and reason
//	certharvest_pipeline_duration_seconds          runs of the pipeline, retries included, by source
//	certharvest_stage_duration_seconds             each pipeline stage a message reached, by stage
//	certharvest_certificates_stored_total          what the certificate store did, by action
//	certharvest_report_write_failures_total        failed writes of the report
//	certharvest_webhook_responses_total            the webhook's answers, by HTTP status
//	certharvest_inbound_responses_total            the other providers' webhooks' answers, by provider and status
//	certharvest_smtp_replies_total                 SMTP replies that settle a transaction, by code
//	certharvest_spool_messages                     the spool's backlog (WatchSpool)
//	certharvest_spool_oldest_message_age_seconds   age of the oldest message waiting (WatchSpool)
//	certharvest_spool_archive_bytes                the archive's disk space, by verdict (WatchSpool)
//	certharvest_spool_archive_messages             the archive's messages, by verdict (WatchSpool)
//	certharvest_spool_archive_evictions_total      the archive's evictions, by cause (WatchSpool)
//
// with the Go runtime's and the process's (go_*, process_*).
//
// A Metrics counts in a registry of its own, never in Prometheus's global
// one: there are no package-level variables, so that each server (and each
// test) counts alone. It is the engine's engine.Observer; the inputs report
// their answers with WebhookResponse, InboundResponse and SMTPReply; Handler
// serves it all.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// maxScrapes is how many scrapes the Handler serves at once: a scrape may
// read the spool's new/ (WatchSpool), and a few at once are plenty.
const maxScrapes = 4

// Options configure a Metrics. The zero value is the default.
type Options struct {
	// Logger receives the errors of scrapes. Default: discard.
	Logger *slog.Logger
	// Now is the clock that ages the spool's oldest message (WatchSpool).
	// Default time.Now.
	Now func() time.Time
}

// Metrics are serve's Prometheus metrics, in a registry of their own. Its
// methods may be called from several goroutines at once.
type Metrics struct {
	registry     *prometheus.Registry
	handler      http.Handler
	log          *slog.Logger
	now          func() time.Time
	messages     *prometheus.CounterVec
	pipeline     *prometheus.HistogramVec
	stages       [verify.NumStages]prometheus.Observer
	certificates *prometheus.CounterVec
	webhook      *prometheus.CounterVec
	inbound      *prometheus.CounterVec
	smtp         *prometheus.CounterVec
	reportFails  prometheus.Counter
}

// New returns the metrics, every counter at zero, in a new registry.
func New(opts Options) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		log:      opts.Logger,
		now:      opts.Now,
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
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certharvest_inbound_responses_total",
			Help: "Answers of the other providers' inbound webhooks (sendgrid, mailgun, postmark, ses, mandrill, raw), by provider and HTTP status code.",
		}, []string{"provider", "code"}),
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
		Help:    "Time of each pipeline stage for a message that reached it: parse, from, dkim (with DNS lookups), locate, cms, chain, identity, profile (S/MIME BR profile, zlint), revocation (with its fetches), store (with its syncs).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"stage"})
	for s := range verify.NumStages {
		m.stages[s] = stages.WithLabelValues(s.String())
	}
	m.registry.MustRegister(stages, m.messages, m.pipeline, m.certificates, m.webhook, m.inbound, m.smtp, m.reportFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every action exists from the start, so that rate() sees the first one.
	for _, a := range []verify.Action{verify.ActionStored, verify.ActionUnchanged, verify.ActionKeptExisting} {
		m.certificates.WithLabelValues(string(a))
	}
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:            promErrorLog{m.log},
		Registry:            m.registry,
		MaxRequestsInFlight: maxScrapes,
	})
	return m
}

// Handler serves the metrics in Prometheus's exposition formats, to
// whoever reaches it: mount it behind what guards it.
func (m *Metrics) Handler() http.Handler { return m.handler }

// WatchSpool adds the gauges of a Maildir spool: its watcher's backlog, the
// age of its oldest message, its archive. Call it once.
func (m *Metrics) WatchSpool(w *maildir.Watcher, spool *maildir.Spool) {
	m.registry.MustRegister(newSpoolCollector(w, spool, m.log, m.now))
}

// The metrics are the engine's engine.Observer.
var _ engine.Observer = (*Metrics)(nil)

// Verified records a run of the pipeline and its stages.
func (m *Metrics) Verified(msg *verify.Message, res *verify.Result) {
	m.pipeline.WithLabelValues(msg.Source).Observe(res.Duration.Seconds())
	for s, sd := range res.Stages {
		if sd > 0 { // a stage not reached does not pull the distribution down
			m.stages[s].Observe(sd.Seconds())
		}
	}
}

// Reported records a message whose report line was written.
func (m *Metrics) Reported(rec *output.Record, _ *verify.Result) {
	m.messages.WithLabelValues(rec.Source, rec.Outcome, string(rec.Reason)).Inc()
	if rec.Action != "" {
		m.certificates.WithLabelValues(string(rec.Action)).Inc()
	}
}

// ReportFailed records a failed attempt to write the report.
func (m *Metrics) ReportFailed(error) { m.reportFails.Inc() }

// WebhookResponse counts an answer of the webhook, by HTTP status: it is
// the webhook's ingest.WebhookOptions.ObserveResponse.
func (m *Metrics) WebhookResponse(status int) {
	m.webhook.WithLabelValues(strconv.Itoa(status)).Inc()
}

// InboundResponse returns the function that counts the answers of a
// provider's inbound webhook, by HTTP status: its
// ingest.HTTPInputOptions.ObserveResponse (package ingest/providers).
func (m *Metrics) InboundResponse(provider string) func(status int) {
	return func(status int) { m.inbound.WithLabelValues(provider, strconv.Itoa(status)).Inc() }
}

// SMTPReply counts an SMTP reply that settles a transaction, by code: it
// is the SMTP input's ingest.SMTPOptions.ObserveReply.
func (m *Metrics) SMTPReply(code int) {
	m.smtp.WithLabelValues(strconv.Itoa(code)).Inc()
}

// promErrorLog sends promhttp's errors to the log.
type promErrorLog struct{ log *slog.Logger }

func (l promErrorLog) Println(v ...any) {
	l.log.Warn("metrics: " + fmt.Sprint(v...))
}
