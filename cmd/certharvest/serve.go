package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const serveUsage = `Usage: certharvest serve --maildir DIR [flags]

Run as a service. Every message that appears in DIR/new is verified, its
report line written and synced, and then it is moved to DIR/cur with the
seen flag, so a restart never processes it again and cur/ is an archive
that scan can reprocess. DIR/{tmp,new,cur} are created if missing.

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

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.maildir, "maildir", "", "Maildir `folder` to watch and spool into (required)")
	fs.StringVar(&f.certs, "certs", "./certs", "`folder` where certificates are stored")
	fs.StringVar(&f.report, "report", "./report.jsonl", "JSON-lines report `file`, appended to")
	positiveIntVar(fs, &f.workers, "workers", 2*defaultWorkers(), "`number` of messages verified at once, by default twice the cores; up to 64 more may wait meanwhile, not counted, for their certificate's sync (one shared sync) or a DKIM lookup in DNS (the messages held in memory are at most 8 x --max-size bytes, 256 MiB)")
	fs.DurationVar(&f.rescan, "rescan", time.Minute, "list new/ again this often, as a safety net for missed events")
	fs.DurationVar(&f.settle, "settle", 100*time.Millisecond, "a file in new/ is complete once unwritten for this long")
	fs.DurationVar(&f.settleWritten, "settle-written", time.Second, "--settle for a file seen being written in new/ (not renamed in from tmp/): its writer may pause")
	fs.DurationVar(&f.retryFor, "retry-for", 24*time.Hour, "retry a temporary failure for this long after delivery, or after the first attempt when that is later")
	fs.DurationVar(&f.retryFirst, "retry-first", time.Minute, "first retry delay; it doubles up to an hour")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, time allowed to finish the messages in flight")
	positiveIntVar(fs, &f.batch, "batch", 512, "most `messages` made durable by one report sync (group commit)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate `file` (with its chain) for the live inputs' TLS: HTTPS, SMTP STARTTLS")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	f.keepRejected = newParsedFlag("7d", parseDays)
	fs.Var(&f.keepRejected, "keep-rejected", "keep a rejected message in the archive (cur/) for this `duration` after its delivery (30d, 72h; 0: for ever)")
	f.keepAccepted = newParsedFlag("0", parseDays)
	fs.Var(&f.keepAccepted, "keep-accepted", "keep an accepted message in the archive for this `duration` after its delivery (0: for ever)")
	f.archiveMax = newParsedFlag("1GiB", parseSizeOrZero)
	fs.Var(&f.archiveMax, "archive-max-size", "past this many `bytes` the archive's oldest rejected messages are removed (0: no cap)")
	f.inputMemory = newParsedFlag(fmt.Sprintf("%dMiB", ingest.DefaultInputMemory>>20), parseSize)
	fs.Var(&f.inputMemory, "input-memory", "memory (`bytes`) for the messages being received, all live inputs together; beyond it they go to the spool's tmp/ (at least twice --max-request-bytes)")
	fs.StringVar(&f.metricsAddr, "metrics", "", "serve the Prometheus metrics, without a token, on a listener of their own at `address` (plain HTTP, path /metrics; loopback or a private network) rather than on --http to lookup token holders")
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
	Metrics *metrics
	// Routes are the endpoints the HTTP input serves beside the webhook,
	// set before the inputs start.
	Routes *httpRoutes
	// Health tells whether the pipeline runs, for a health check; nil
	// does not check.
	Health *pipelineHealth
	// Memory is the budget of the messages being received, shared by the
	// inputs (--input-memory); nil gives each input one of its own.
	Memory *ingest.MemoryBudget
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
	Start(ctx context.Context, spool *maildir.Spool, log *slog.Logger) error
	// Shutdown stops accepting and waits for the deliveries in progress.
	Shutdown(ctx context.Context) error
	// String describes the input for the start-up log.
	String() string
}

// inputFlags registers an input's flags and builds it; build returns nil
// when the flags do not enable the input.
type inputFlags interface {
	register(fs *flag.FlagSet)
	build(env *inputEnv) (input, error)
}

// newInputFlags lists the live inputs serve offers besides the Maildir.
func newInputFlags() []inputFlags {
	return []inputFlags{&smtpFlags{}, &webhookFlags{}}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCommand("serve", serveUsage, stdout)
	var (
		pf pipelineFlags
		sf serveFlags
		lf lookupFlags
	)
	pf.register(cmd.fs)
	sf.register(cmd.fs)
	lf.register(cmd.fs)
	inputFlags := newInputFlags()
	for _, in := range inputFlags {
		in.register(cmd.fs)
	}
	if err := cmd.parse(args); err != nil {
		return err
	}
	if cmd.fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(cmd.fs.Args(), " "))
	}
	if sf.maildir == "" {
		return usagef("--maildir is required")
	}
	if sf.workers < 1 || sf.batch < 1 {
		return usagef("--workers and --batch must be at least 1")
	}
	lookupToken, err := lf.load()
	if err != nil {
		return err
	}
	setup, err := pf.build(stderr)
	if err != nil {
		return err
	}
	defer setup.closeLog()
	log := setup.logger
	addSyncThreads(syncThreads)
	setLazyGC()

	tlsConfig, err := sf.loadTLS()
	if err != nil {
		return err
	}
	m := newMetrics()
	health := newPipelineHealth(pipelineStallAfter)
	env := &inputEnv{TLS: tlsConfig, MaxSize: setup.opts.MaxSize, Setup: setup, Metrics: m, Routes: &httpRoutes{},
		Health: health, Memory: ingest.NewMemoryBudget(sf.inputMemory.value)}
	var inputs []input
	httpInput := false
	for _, f := range inputFlags {
		in, err := f.build(env)
		if err != nil {
			return err
		}
		if in != nil {
			inputs = append(inputs, in)
			_, ok := in.(*webhookInput)
			httpInput = httpInput || ok
		}
	}
	if lookupToken != "" && !httpInput {
		return usagef("the certificate lookup (--lookup-token, --lookup-token-file) is served on --http: give --http too")
	}
	inputsMemory := int64(0)
	if len(inputs) > 0 {
		// What the live inputs hold in memory is bounded by their shared
		// budget (--input-memory); the rest goes to the spool's tmp/.
		inputsMemory = sf.inputMemory.value
	}
	memLimit, memLimitFrom := applyMemoryLimit(sf.memoryLimit.value, setup.opts.MaxSize, inputsMemory, os.DirFS("/"))

	spool, err := maildir.Open(sf.maildir, maildir.Options{Logger: log, Archive: sf.archivePolicy()})
	if err != nil {
		return err
	}
	defer func() {
		// Closing retires the spool's journal: a failure loses nothing
		// (the next start replays it), but the operator should know.
		if err := spool.Close(); err != nil {
			log.Error("closing the spool: its journal will be replayed at the next start", "error", err)
		}
	}()
	// Workers storing at the same time share one sync (group commit). A
	// message waiting for the disk, or for DNS, gives its CPU slot to
	// another (see cpuSlots), so that many wait together.
	store, err := output.OpenCertStoreOptions(sf.certs, output.CertStoreOptions{GroupCommit: true})
	if err != nil {
		return err
	}
	defer store.Close() // once every message in flight is done: see the end
	setup.opts.Store = store
	if lookupToken != "" {
		// The lookup reads the folder through a store of its own, which
		// cannot write.
		readOnly, err := output.ReadCertStore(sf.certs)
		if err != nil {
			return err
		}
		lookup := newLookupHandler(readOnly, lookupToken, setup.opts.Now, log)
		env.Routes.lookup = lookup
		if sf.metricsAddr == "" {
			env.Routes.metrics = bearerOnly(lookup, m.handler(log))
		}
	}
	if sf.metricsAddr == "" && lookupToken == "" {
		log.Info("metrics are not served: give --metrics ADDR for an internal listener, or a lookup token to serve them on --http")
	}
	pipeline, err := verify.New(withSlotWaits(setup.opts, pf.dkimKeys == ""))
	if err != nil {
		return err
	}
	report, err := output.OpenReport(sf.report)
	if err != nil {
		return err
	}

	s := &server{
		flags:    sf,
		spool:    spool,
		log:      log,
		h:        &harvester{pipeline: pipeline, report: report, log: log},
		maxSize:  setup.opts.MaxSize,
		attempts: map[string]retryState{},
		metrics:  m,
		health:   health,
	}
	s.watcher = maildir.NewWatcher(sf.maildir, maildir.WatchOptions{Settle: sf.settle, WriteSettle: sf.settleWritten, Rescan: sf.rescan, Logger: log})
	health.watcherTurn = s.watcher.LastTurn
	m.watchSpool(s.watcher, spool, log)

	names := []string{"maildir " + sf.maildir}
	for _, in := range inputs {
		names = append(names, in.String())
	}
	log.Info("certharvest serve starting", "version", version, "inputs", strings.Join(names, ", "),
		"certs", sf.certs, "report", sf.report, "trust", setup.trustDesc, "dkim_keys", setup.keysDesc,
		"dkim_align", setup.opts.Align.String(), "workers", sf.workers, "gomaxprocs", runtime.GOMAXPROCS(0),
		"memory_limit", describeMemoryLimit(memLimit), "memory_limit_from", memLimitFrom)
	if err := s.openInFlight(); err != nil {
		return err
	}
	defer s.closeInFlight() // after the messages in flight: see the end

	// workCtx outlives ctx: the messages in flight finish after a signal.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	s.stopping = watchCtx.Done()

	var metricsSrv *metricsServer
	if sf.metricsAddr != "" {
		metricsSrv = &metricsServer{addr: sf.metricsAddr}
		if err := metricsSrv.start(ctx, m.handler(log), log); err != nil {
			return err
		}
	}
	for i, in := range inputs {
		if err := in.Start(ctx, spool, log); err != nil {
			// Stop the listeners already started before giving up.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sf.shutdownTimeout)
			for _, started := range inputs[:i] {
				started.Shutdown(stopCtx)
			}
			metricsSrv.shutdown(stopCtx)
			cancel()
			return fmt.Errorf("starting %s: %w", in, err)
		}
	}

	watchErr := make(chan error, 1)
	go func() { watchErr <- s.watcher.Run(watchCtx) }()
	done := make(chan struct{})
	health.setRunning(true)
	go func() {
		s.process(workCtx)
		health.setRunning(false)
		close(done)
	}()

	// SIGHUP reopens the log and the report, for logrotate.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping: no new messages; finishing the ones in flight", "timeout", sf.shutdownTimeout.String())
			break wait
		case runErr = <-watchErr:
			log.Error("the Maildir watch failed; stopping", "error", runErr)
			break wait
		case <-hup:
			if err := setup.reopenLog(); err != nil {
				log.Error("SIGHUP: reopening the log failed", "error", err)
			}
			if err := report.Reopen(); err != nil {
				log.Error("SIGHUP: reopening the report failed", "error", err)
			}
			log.Info("SIGHUP: reopened the log and the report", "log", pf.logFile, "report", sf.report)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sf.shutdownTimeout)
	defer cancel()
	for _, in := range inputs {
		if err := in.Shutdown(shutdownCtx); err != nil {
			log.Warn("input did not stop cleanly", "input", in.String(), "error", err)
		}
	}
	if err := metricsSrv.shutdown(shutdownCtx); err != nil {
		log.Warn("the metrics listener did not stop cleanly", "error", err)
	}
	stopWatch()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		log.Warn("shutdown timeout: abandoning the messages in flight; they stay in new/ for the next start")
		cancelWork()
		<-done
	}
	if err := report.Close(); err != nil && runErr == nil {
		runErr = err
	}
	log.Info("certharvest serve stopped", "processed", s.processed, "accepted", s.accepted, "left_in_new", s.watcher.Backlog())
	return runErr
}

// server is the running service: the pipeline over the spool.
type server struct {
	flags   serveFlags
	spool   *maildir.Spool
	watcher *maildir.Watcher
	log     *slog.Logger
	h       *harvester
	maxSize int64
	metrics *metrics
	health  *pipelineHealth // nil: not tracked
	// inflight records the messages being verified, for the next start
	// after a crash; suspects are those of the last crash (see
	// serve_quarantine.go). stopping is closed on SIGTERM.
	inflight *maildir.InFlight
	suspects []maildir.Suspect
	stopping <-chan struct{}

	mu        sync.Mutex
	attempts  map[string]retryState // messages that failed temporarily, by name
	processed int
	accepted  int
}

// retryState is a message's temporary failures in this process.
type retryState struct {
	n     int       // temporary failures so far
	first time.Time // when the first was committed
}

// outcome is one processed message on its way to the report.
type outcome struct {
	name string
	msg  *verify.Message
	res  *verify.Result
}

// process runs the workers and the committer until the watcher closes Ready
// and every message taken is committed. At most --workers messages are
// verified at once; up to slotWaiters more are read, or wait for the disk
// or DNS, meanwhile (cpuSlots).
func (s *server) process(ctx context.Context) {
	slots := newCPUSlots(s.flags.workers)
	budget := inFlightBudget(s.maxSize)
	s.handleSuspects(ctx, slots, budget) // those of the last crash first, alone
	results := make(chan outcome, s.flags.batch)
	var wg sync.WaitGroup
	for range s.flags.workers + slotWaiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range s.watcher.Ready() {
				s.health.taken()
				s.inflight.Taken(name)
				o, ok := s.verify(ctx, slots, budget, name)
				if !ok {
					s.inflight.Finished(name)
					s.health.finished(1)
					continue
				}
				s.health.verified()
				results <- o
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	s.commitLoop(ctx, results)
}

// verify loads one message, then verifies it holding a CPU slot. ok is false
// when there is no verdict to report: the message is no longer in new/
// (already handled), or it changed while it was verified. The message's
// bytes are held, counted in budget, from its read until its verdict; the
// outcome does not keep them.
func (s *server) verify(ctx context.Context, slots *cpuSlots, budget *byteBudget, name string) (outcome, bool) {
	// The message is read before taking a slot, so that reading (the disk,
	// when new/ is not in the cache) overlaps other verifications. It
	// takes its size from the budget first.
	claim := budgetClaim{budget: budget}
	defer claim.release()
	m, version, err := s.spool.LoadFile(name, ingest.ReadOptions{MaxSize: s.maxSize, Reserve: claim.take})
	if errors.Is(err, fs.ErrNotExist) {
		s.watcher.Done(name)
		s.mu.Lock()
		delete(s.attempts, name)
		s.mu.Unlock()
		return outcome{}, false
	}
	ctx, release := slots.acquire(ctx)
	defer release()
	if err != nil {
		res := readErrorResult(m, err, time.Now())
		s.log.Warn("rejected: "+string(res.Reason)+": "+res.Detail, "id", res.ID, "path", m.Path)
		return outcome{name, m, res}, true
	}
	res := s.h.pipeline.Verify(ctx, m)
	m.Raw = nil // the report needs its context, not its bytes
	s.metrics.verified(m.Source, res.Duration, res.Stages)
	if ctx.Err() != nil {
		// Cut off by the shutdown (--shutdown-timeout): whatever the
		// verdict says (a lookup or a store interrupted), it is not the
		// message's. It stays in new/ for the next start.
		s.log.Warn("shutdown: the verification was cut off; the message stays in new/ for the next start",
			"id", res.ID, "path", m.Path, "reason", string(res.Reason))
		return outcome{}, false
	}
	if s.changed(name, m, version, res.ID) {
		return outcome{}, false
	}
	return outcome{name, m, res}, true
}

// changed reports whether the file name is no longer the version that was
// read and verified: written straight into new/, it was still being written
// (the watcher took a pause of its writer for the end). Then the verdict is
// not reported; the file waits for its writes to end, and is verified again.
func (s *server) changed(name string, m *verify.Message, read maildir.FileVersion, id string) bool {
	now, err := s.spool.Version(name)
	if err != nil {
		// Gone (archived by another process?) or unreadable: the verdict
		// stands, as for a file that vanishes after it was verified.
		return false
	}
	if now.Size == read.Size && now.ModTime.Equal(read.ModTime) {
		return false
	}
	s.log.Warn("the message changed while it was verified: not reported; verifying it again once its writes end",
		"id", id, "path", m.Path, "size_read", read.Size, "size_now", now.Size)
	s.watcher.Unsettled(name)
	return true
}

// commitLoop makes verdicts durable in batches: the report lines of a batch
// are written and synced once, then its messages are moved to cur/ (group
// commit). A temporary failure is not reported but retried later, until
// --retry-for has passed since delivery, or since its first temporary
// failure in this process when that is later.
//
// The moves to cur/ are made durable in the background, about once a
// second (archiveSyncInterval), and once more when results is closed: a
// crash may undo the last second's moves, which only means processing those
// messages again, their report lines being durable already.
//
// A batch whose report lines cannot be written is retried until they are
// (writeReport); when ctx ends meanwhile (the shutdown timeout), the rest is
// dropped, every message not reported staying in new/.
func (s *server) commitLoop(ctx context.Context, results <-chan outcome) {
	archived := startArchiveSyncer(s.spool.Sync, archiveSyncInterval, s.log)
	defer archived.stop()
	batch := make([]outcome, 0, s.flags.batch)
	for o := range results {
		batch = append(batch[:0], o)
	gather:
		for len(batch) < cap(batch) {
			select {
			case o, ok := <-results:
				if !ok {
					break gather
				}
				batch = append(batch, o)
			default:
				break gather
			}
		}
		if !s.commit(ctx, batch, archived) {
			for range results {
				s.health.finished(1)
			}
			return
		}
	}
}

// commit reports a batch: its report lines are written and synced, then
// its messages moved to cur/ (made durable later by archived). It returns
// false when ctx ended before the lines could be written.
func (s *server) commit(ctx context.Context, batch []outcome, archived *archiveSyncer) bool {
	defer s.health.finished(len(batch))
	defer s.finishedInFlight(batch)
	now := time.Now()
	reported := batch[:0:0]
	recs := make([]*output.Record, 0, len(batch))
	for _, o := range batch {
		if o.res.Reason.Temporary() && s.retrying(o, now) {
			s.mu.Lock()
			r := s.attempts[o.name]
			r.n++
			s.attempts[o.name] = r
			n := r.n
			s.mu.Unlock()
			delay := backoff(s.flags.retryFirst, n)
			s.log.Warn(fmt.Sprintf("temporary failure: %s: retrying in %s", o.res.Reason, delay), "id", o.res.ID, "attempt", n, "path", o.msg.Path)
			s.watcher.RetryAt(o.name, now.Add(delay))
			continue
		}
		reported = append(reported, o)
		recs = append(recs, output.NewRecord(o.msg, o.res))
	}
	if len(reported) == 0 {
		return true
	}
	if !s.writeReport(ctx, recs) {
		s.log.Warn("shutdown timeout: the report could not be written; the messages stay in new/ for the next start",
			"messages", len(reported))
		return false
	}
	for _, rec := range recs {
		s.metrics.reported(rec)
	}
	for _, o := range reported {
		if err := s.spool.Archive(o.name, o.res.Accepted()); err != nil {
			s.log.Error("moving to cur/ failed", "error", err, "id", o.res.ID)
		}
	}
	archived.moved()
	s.mu.Lock()
	for _, o := range reported {
		delete(s.attempts, o.name)
		s.processed++
		if o.res.Accepted() {
			s.accepted++
		}
	}
	s.mu.Unlock()
	for _, o := range reported {
		s.watcher.Done(o.name)
	}
	return true
}

// retrying reports whether the temporary failure o is still within
// --retry-for, measured from the later of its delivery and its first
// temporary failure in this process (now for the first): after an outage
// longer than --retry-for, or for a message whose Maildir name is old, a
// first failure is retried, not final.
func (s *server) retrying(o outcome, now time.Time) bool {
	s.mu.Lock()
	r, ok := s.attempts[o.name]
	if !ok {
		r.first = now
		s.attempts[o.name] = r
	}
	s.mu.Unlock()
	start := o.msg.Received
	if r.first.After(start) {
		start = r.first
	}
	return now.Sub(start) < s.flags.retryFor
}

// archiveSyncInterval is how often the moves to cur/ are made durable.
const archiveSyncInterval = time.Second

// archiveSyncer makes the moves of messages from new/ to cur/ durable in
// the background, at most once per interval, so that committing a batch
// never waits for a folder sync.
type archiveSyncer struct {
	syncCur func() error // makes the moves so far durable (Spool.Sync)
	log     *slog.Logger
	dirty   atomic.Bool // moves since the last sync began
	quit    chan struct{}
	done    chan struct{}
}

// startArchiveSyncer starts calling syncCur every interval when there were
// moves.
func startArchiveSyncer(syncCur func() error, interval time.Duration, log *slog.Logger) *archiveSyncer {
	a := &archiveSyncer{syncCur: syncCur, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	go a.run(interval)
	return a
}

// moved records that messages were moved to cur/.
func (a *archiveSyncer) moved() { a.dirty.Store(true) }

// stop syncs the last moves and stops the syncer.
func (a *archiveSyncer) stop() {
	close(a.quit)
	<-a.done
}

func (a *archiveSyncer) run(interval time.Duration) {
	defer close(a.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.syncMoves()
		case <-a.quit:
			a.syncMoves()
			return
		}
	}
}

// syncMoves makes the moves so far durable, if there were any.
func (a *archiveSyncer) syncMoves() {
	if !a.dirty.Swap(false) {
		return
	}
	if err := a.syncCur(); err != nil {
		// The moves may be lost in a crash: those messages would be
		// processed again. Try again next time.
		a.dirty.Store(true)
		a.log.Error("syncing the Maildir's cur/ failed", "error", err)
	}
}

// backoff is the delay before retry n (1-based): first, doubled each time,
// at most an hour.
func backoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}
