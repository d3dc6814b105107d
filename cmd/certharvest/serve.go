package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/internal/metrics"
)

const serveUsage = `Usage: certharvest serve --maildir DIR [flags]

Run as a service. Every message that appears in DIR/new is verified, its
report line written and synced, and then it is moved to DIR/cur with the
seen flag, so a restart never processes it again and cur/ is an archive
that scan can reprocess. DIR/{tmp,new,cur} are created if missing; a
DIR that holds files but is no Maildir is refused (scan it instead).

Anything may deliver into the Maildir: Postfix, Dovecot LDA, fetchmail,
procmail, or certharvest's own inputs (webhook, SMTP), which write it
durably before they acknowledge a message. A message rejected for a
temporary reason (dkim_temperror, store_failed) stays in new/ and is
retried with back-off, for up to --retry-for from its delivery (or from its
first attempt, when later), before it is reported as rejected. A report
that cannot be written (a full disk) holds its messages in new/ while the
same lines are tried again, 1 s to a minute apart; /healthz answers 503
meanwhile.

--workers messages are verified at once; a message waiting for its
certificate to be synced, or for DNS, does not count, so that many share
one sync. The messages read and not yet verified hold at most 8 times
--max-size bytes in memory, 256 MiB at most (a larger message is verified
alone). Go code runs on two threads more than the cores (unless the
GOMAXPROCS environment variable says otherwise), so that the syncs do not
hold up the verifications, and the garbage collector runs at GOGC=400
unless GOGC is set, under a Go memory limit (--memory-limit; by default
GOMEMLIMIT, else 4 times the in-flight bytes plus 64 MiB, at most 3/4 of
the cgroup's or the machine's memory). A certificate is durable before its
report line, and a report line before its message leaves new/. The moves
to cur/ are synced about once a second, and at exit.

SIGINT or SIGTERM stops taking new work, finishes the messages in flight
(for up to --shutdown-timeout: one cut off then is not reported, and stays
in new/), flushes the report and exits 0. A crash
loses nothing: every message is either reported and in cur/, or still in
new/ and processed again (possibly a second report line: after a crash,
the moves of the last second may be undone). The messages in flight at a
crash are verified first, one at a time; one in flight in 3 crashes in a
row is moved to DIR/quarantine and reported as internal_error.

The archive, cur/, keeps a rejected message --keep-rejected (7 days) and an
accepted one --keep-accepted (for ever), and past --archive-max-size (1 GiB)
its oldest rejected messages go first (they have the Maildir flags ST,
accepted ones S). When the disk runs short of room for new mail, rejected
messages go, oldest first, before any sender is refused. See
docs/OPERATIONS.md.

With --http and --lookup-token-file, the same listener also serves the
stored certificates at /certs/ADDRESS, and the Prometheus metrics at
/metrics, to clients sending that bearer token (the metrics would tell
anyone who posts a message its verdict). --metrics ADDR serves the metrics
without a token on a listener of their own, for a scrape over loopback or
a private network (and then not on --http).

Examples:
  certharvest serve --maildir /var/spool/certharvest \
      --certs /var/lib/certharvest/certs --report /var/log/certharvest/report.jsonl

  # Webhook, and certificate lookup and metrics for the token's holders,
  # on one listener:
  certharvest serve --maildir /var/spool/certharvest --http 127.0.0.1:8080 \
      --lookup-token-file /etc/certharvest/lookup-token

  # Offline, with the sample's trust bundle and DKIM keys:
  certharvest serve --maildir /tmp/spool --trust testdata/sample/trust.pem \
      --dkim-keys testdata/sample/dkim-keys.txt --at 2026-06-01T00:00:00Z
`

// Defaults of serve's own limits; the others are named where they are
// enforced (maildir, engine, ingest, verify).
const (
	// defaultRetryFor is how long a temporary failure is retried: a day
	// outlasts a DNS or disk outage of a night.
	defaultRetryFor = 24 * time.Hour
	// defaultShutdownTimeout is the time the messages in flight have to
	// finish after SIGTERM: within systemd's default stop timeout (90 s).
	defaultShutdownTimeout = 30 * time.Second
)

// serveFlags are serve's own flags.
type serveFlags struct {
	maildir         string
	certs           string
	report          string
	workers         int
	rescan          time.Duration
	settle          time.Duration
	settleWritten   time.Duration
	retryFor        time.Duration
	retryFirst      time.Duration
	shutdownTimeout time.Duration
	batch           int
	tlsCert         string
	tlsKey          string
	metricsAddr     string
	keepRejected    parsedFlag[time.Duration]
	keepAccepted    parsedFlag[time.Duration]
	archiveMax      parsedFlag[int64]
	memoryLimit     parsedFlag[int64]
	inputMemory     parsedFlag[int64]
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.maildir, "maildir", "", "Maildir `folder` to watch and spool into (required)")
	fs.StringVar(&f.certs, "certs", "./certs", "`folder` where certificates are stored")
	fs.StringVar(&f.report, "report", "./report.jsonl", "JSON-lines report `file`, appended to")
	positiveIntVar(fs, &f.workers, "workers", 2*defaultWorkers(), "`number` of messages verified at once (default: twice the cores)")
	fs.DurationVar(&f.rescan, "rescan", maildir.DefaultRescan, "list new/ again this often, as a safety net for missed events")
	fs.DurationVar(&f.settle, "settle", maildir.DefaultSettle, "a file in new/ is complete once unwritten for this long")
	fs.DurationVar(&f.settleWritten, "settle-written", maildir.DefaultWriteSettle, "--settle for a file written in place in new/, not renamed in from tmp/")
	fs.DurationVar(&f.retryFor, "retry-for", defaultRetryFor, "retry a temporary failure for this long after delivery")
	fs.DurationVar(&f.retryFirst, "retry-first", engine.DefaultRetryFirst, "first retry delay; it doubles up to an hour")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGTERM, time allowed to finish the messages in flight")
	positiveIntVar(fs, &f.batch, "batch", engine.DefaultBatch, "most `messages` made durable by one report sync (group commit)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate `file` (with its chain) for the live inputs' TLS: HTTPS, SMTP STARTTLS")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	f.keepRejected = newParsedFlag(formatDays(maildir.DefaultKeepRejected), parseDays)
	fs.Var(&f.keepRejected, "keep-rejected", "how long a rejected message stays in cur/ (a `duration`: 30d, 72h; 0: for ever)")
	f.keepAccepted = newParsedFlag("0", parseDays)
	fs.Var(&f.keepAccepted, "keep-accepted", "keep an accepted message in the archive for this `duration` after its delivery (0: for ever)")
	f.archiveMax = newParsedFlag(formatSize(maildir.DefaultArchiveMaxBytes), parseSizeOrZero)
	fs.Var(&f.archiveMax, "archive-max-size", "past this many `bytes` the archive's oldest rejected messages are removed (0: no cap)")
	f.inputMemory = newParsedFlag(formatSize(ingest.DefaultInputMemory), parseSize)
	fs.Var(&f.inputMemory, "input-memory", "memory (`bytes`) for messages being received; beyond it they go to tmp/")
	fs.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus metrics without a token at `address` (plain HTTP, /metrics)")
	memoryLimitVar(fs, &f.memoryLimit)
}

// parseSizeOrZero is parseSize, and 0 for none.
func parseSizeOrZero(s string) (int64, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	return parseSize(s)
}

// archivePolicy is the retention policy of the spool's cur/ the flags say.
func (f *serveFlags) archivePolicy() maildir.ArchivePolicy {
	return maildir.ArchivePolicy{KeepRejected: f.keepRejected.value, KeepAccepted: f.keepAccepted.value, MaxBytes: f.archiveMax.value}
}

// inputEnv is what every live input shares.
type inputEnv struct {
	// TLS is the server TLS configuration from --tls-cert and --tls-key;
	// nil when none was given.
	TLS *tls.Config
	// MaxSize is the largest message accepted (--max-size).
	MaxSize int64
	// Pipeline options, for an input that needs them (read-only).
	Setup *pipelineSetup
	// Metrics counts the inputs' answers; nil counts nothing.
	Metrics *metrics.Metrics
	// Routes are the endpoints the HTTP input serves beside the webhook,
	// set before the inputs start.
	Routes *httpRoutes
	// Health tells whether the pipeline runs, for a health check.
	Health *engineHealth
	// Memory is the budget of the messages being received, shared by the
	// inputs (--input-memory); nil gives each input one of its own.
	Memory *ingest.MemoryBudget
	// Store tells whether the certificate store answers, for a health
	// check; nil, or a folder's, always does.
	Store *storeHealth
}

// loadTLS reads the certificate and key for the live inputs.
func (f *serveFlags) loadTLS() (*tls.Config, error) {
	if f.tlsCert == "" && f.tlsKey == "" {
		return nil, nil
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// input is a live source of messages (webhook, SMTP) that delivers into the
// spool. Each lives in its own serve_<name>.go.
type input interface {
	// Start begins accepting messages; it returns once listening.
	Start(ctx context.Context, sink ingest.Sink, log *slog.Logger) error
	// Shutdown stops accepting and waits for the deliveries in progress.
	Shutdown(ctx context.Context) error
	// String describes the input for the start-up log.
	String() string
}

// inputFlags registers an input's flags and builds it; build returns nil
// when the flags do not enable the input.
type inputFlags interface {
	register(fs *pflag.FlagSet)
	build(env *inputEnv) (input, error)
}

// newInputFlags lists the live inputs serve offers besides the Maildir.
func newInputFlags() []inputFlags {
	return []inputFlags{&smtpFlags{}, &webhookFlags{}}
}

// runServe runs the service with the flags f; the command line has been
// read.
func runServe(ctx context.Context, f *serveCommand, args []string, stderr io.Writer) error {
	if err := f.check(args); err != nil {
		return err
	}
	setup, err := f.pipeline.build(stderr)
	if err != nil {
		return err
	}
	defer setup.closeLog()
	addSyncThreads(syncThreads)
	setLazyGC()
	svc, err := openService(f, setup)
	if err != nil {
		return err
	}
	defer svc.close()
	return svc.run(ctx)
}

// serveCommand is serve's command line, read.
type serveCommand struct {
	pipeline    pipelineFlags
	serve       serveFlags
	store       storeFlags
	inputs      []inputFlags
	lookup      lookupFlags
	lookupToken string // "" when the lookup API is off
	authserv    authservFlags
	authservID  string // what archived messages are stamped with
}

// newServeCommand returns serve's command and the flags it sets.
func newServeCommand(stdout io.Writer) (*command, *serveCommand) {
	cmd := newCommand("serve", serveUsage, stdout)
	f := &serveCommand{inputs: newInputFlags()}
	f.pipeline.register(cmd.fs)
	f.serve.register(cmd.fs)
	f.store.register(cmd.fs)
	f.lookup.register(cmd.fs)
	f.authserv.register(cmd.fs)
	for _, in := range f.inputs {
		in.register(cmd.fs)
	}
	return cmd, f
}

// check makes the checks of serve's command line that need nothing
// opened, and reads the lookup token.
func (f *serveCommand) check(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	if f.serve.maildir == "" {
		return usagef("--maildir is required")
	}
	if f.serve.workers < 1 || f.serve.batch < 1 {
		return usagef("--workers and --batch must be at least 1")
	}
	token, err := f.lookup.load()
	if err != nil {
		return err
	}
	f.lookupToken = token
	f.authservID, err = f.authserv.resolve(f.pipeline.trustAuthserv.value)
	return err
}

// engineHealth is the health of the engine, for the webhook's health
// check, which starts answering before the engine is made.
type engineHealth struct {
	engine atomic.Pointer[engine.Engine]
}

// alive returns nil while the engine runs and keeps up, else why not.
func (h *engineHealth) alive() error {
	e := h.engine.Load()
	if e == nil {
		return errors.New("the pipeline is not running")
	}
	return e.Alive()
}

// reportWritable returns nil unless the engine's last attempt to write the
// report failed.
func (h *engineHealth) reportWritable() error {
	if e := h.engine.Load(); e != nil {
		return e.ReportWritable()
	}
	return nil
}
