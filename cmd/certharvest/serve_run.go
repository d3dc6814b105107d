package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/internal/metrics"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/pgstore"
	"github.com/certharvest/certharvest/verify"
)

// server is serve once its command line is read: the spool, the engine
// over it, and the inputs and listeners that feed and watch it.
type server struct {
	cmd     *serveCommand
	setup   *pipelineSetup
	log     *slog.Logger
	spool   *maildir.Spool
	report  *output.Report
	watcher *maildir.Watcher
	engine  *engine.Engine
	metrics *metrics.Metrics
	inputs  []input
	// pg is the PostgreSQL store (--store), nil for a folder; storeDesc
	// names the store (the folder, or the database) and storeReady says
	// whether PostgreSQL answered at start-up (serve_store.go).
	pg          *pgstore.Store
	storeDesc   string
	storeReady  bool
	storeHealth storeHealth
	// closers close what openService opened, in reverse order.
	closers []func()
	// memoryLimit is the Go memory limit set, and what set it, for the
	// start-up line.
	memoryLimit     int64
	memoryLimitFrom string
}

// openService opens the spool, the certificate store and the report, and
// builds the engine and the inputs, without starting anything. On an
// error, what it opened is closed.
func openService(f *serveCommand, setup *pipelineSetup) (_ *server, err error) {
	sf := f.serve
	log := setup.logger
	s := &server{cmd: f, setup: setup, log: log}
	s.storeHealth.log = log
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	tlsConfig, err := sf.loadTLS()
	if err != nil {
		return nil, err
	}
	s.metrics = metrics.New(metrics.Options{Logger: log})
	health := &engineHealth{}
	env := &inputEnv{TLS: tlsConfig, MaxSize: setup.opts.MaxSize, Setup: setup, Metrics: s.metrics, Routes: &httpRoutes{},
		Health: health, Memory: ingest.NewMemoryBudget(sf.inputMemory.value), Store: &s.storeHealth}
	httpInput := false
	for _, in := range f.inputs {
		built, err := in.build(env)
		if err != nil {
			return nil, err
		}
		if built != nil {
			s.inputs = append(s.inputs, built)
			_, ok := built.(*webhookInput)
			httpInput = httpInput || ok
		}
	}
	if f.lookupToken != "" && !httpInput {
		return nil, usagef("the certificate lookup (--lookup-token, --lookup-token-file) is served on --http: give --http too")
	}
	inputsMemory := int64(0)
	if len(s.inputs) > 0 {
		// What the live inputs hold in memory is bounded by their shared
		// budget (--input-memory); the rest goes to the spool's tmp/.
		inputsMemory = sf.inputMemory.value
	}
	memLimit, memLimitFrom := applyMemoryLimit(sf.memoryLimit.value, setup.opts.MaxSize, inputsMemory, os.DirFS("/"))

	s.spool, err = maildir.Open(sf.maildir, maildir.Options{Logger: log, Archive: sf.archivePolicy(), AuthservID: f.authservID})
	if errors.Is(err, maildir.ErrNotMaildir) {
		return nil, fmt.Errorf("%w\n  --maildir is serve's own spool: give an empty or new folder; to verify the messages already in %s, run certharvest scan %s",
			err, sf.maildir, sf.maildir)
	}
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() {
		// Closing retires the spool's journal: a failure loses nothing
		// (the next start replays it), but the operator should know.
		if err := s.spool.Close(); err != nil {
			log.Error("closing the spool: its journal will be replayed at the next start", "error", err)
		}
	})
	store, err := s.openCertStore()
	if err != nil {
		return nil, err
	}
	setup.opts.Store = store
	if err := s.routeHTTP(env.Routes); err != nil {
		return nil, err
	}
	// A message waiting for the disk, or for DNS, gives its CPU slot to
	// another, so that many wait together.
	pipeline, err := verify.New(engine.WithSlotWaits(setup.opts, f.pipeline.dkimKeys == ""))
	if err != nil {
		return nil, err
	}
	if s.report, err = output.OpenReport(sf.report); err != nil {
		return nil, err
	}
	s.watcher = maildir.NewWatcher(sf.maildir, maildir.WatchOptions{Settle: sf.settle, WriteSettle: sf.settleWritten, Rescan: sf.rescan, Logger: log})
	s.metrics.WatchSpool(s.watcher, s.spool)
	queue, err := maildir.NewQueue(s.spool, s.watcher, log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() {
		if err := queue.Close(); err != nil {
			log.Error("closing the in-flight log: the next start may count a crash that was not", "error", err)
		}
	})
	s.engine = engine.New(pipeline, queue, s.engineReport(), engine.Options{
		Workers: sf.workers, Batch: sf.batch, MaxSize: setup.opts.MaxSize,
		RetryFor: sf.retryFor, RetryFirst: sf.retryFirst, Durable: true,
		Logger: log, Observer: s.metrics, Health: engine.HealthOptions{QueueTurn: s.watcher.LastTurn},
	})
	health.engine.Store(s.engine)

	s.memoryLimit, s.memoryLimitFrom = memLimit, memLimitFrom
	return s, nil
}

// logStart writes the start-up line, once the listeners are bound: a port
// that cannot be had stops serve before it says it is starting.
func (s *server) logStart() {
	sf, setup := s.cmd.serve, s.setup
	names := []string{"maildir " + sf.maildir}
	for _, in := range s.inputs {
		names = append(names, in.String())
	}
	store := []any{"certs", sf.certs}
	if s.pg != nil {
		store = []any{"store", s.storeDesc}
	}
	s.log.Info("certharvest serve starting", "version", buildVersion(), "inputs", strings.Join(names, ", "),
		store[0], store[1], "report", sf.report, "trust", setup.trustDesc, "dkim_keys", setup.keysDesc,
		"dkim_align", setup.opts.Align.String(), "workers", sf.workers, "gomaxprocs", runtime.GOMAXPROCS(0),
		"memory_limit", describeMemoryLimit(s.memoryLimit), "memory_limit_from", s.memoryLimitFrom)
}

// routeHTTP sets the endpoints the --http listener serves beside the
// webhook: the lookup API and, without --metrics, the metrics, both to the
// lookup token's holders.
func (s *server) routeHTTP(routes *httpRoutes) error {
	sf := s.cmd.serve
	if s.cmd.lookupToken == "" {
		if sf.metricsAddr == "" {
			s.log.Info("metrics are not served: give --metrics ADDR for an internal listener, or a lookup token to serve them on --http")
		}
		return nil
	}
	reader, err := s.certReader()
	if err != nil {
		return err
	}
	lookupAPI, err := lookup.NewHandler(reader, lookup.Options{Token: s.cmd.lookupToken, Now: s.setup.opts.Now, Logger: s.log})
	if err != nil {
		return err
	}
	routes.lookup = lookupAPI
	if sf.metricsAddr == "" {
		routes.metrics = bearerOnly(lookupAPI, s.metrics.Handler())
	}
	return nil
}

// close closes what openService opened, the last first: after run, once
// every message in flight is done.
func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// run starts the listeners, the Maildir watcher and the engine, serves
// until ctx ends (SIGINT, SIGTERM) or the watch fails, reopening the log
// and the report on SIGHUP, then stops in order: no new messages, the ones
// in flight finished within --shutdown-timeout, the report closed.
func (s *server) run(ctx context.Context) error {
	sf, log := s.cmd.serve, s.log
	// workCtx outlives ctx: the messages in flight finish after a signal.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()

	metricsSrv, err := s.startListeners(ctx)
	if err != nil {
		return err
	}
	s.logStart()
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.watcher.Run(watchCtx) }()
	go s.storeHealth.watch(watchCtx)
	storeErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.waitForStore(watchCtx, storeErr) {
			s.engine.Run(workCtx) // Durable: a report that cannot be written is retried, not returned
		}
	}()

	runErr := s.wait(ctx, watchErr, storeErr)
	s.engine.Stop()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sf.shutdownTimeout)
	defer cancel()
	for _, in := range s.inputs {
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
	if err := s.report.Close(); err != nil && runErr == nil {
		runErr = err
	}
	processed, accepted := s.engine.Counts()
	log.Info("certharvest serve stopped", "processed", processed, "accepted", accepted, "left_in_new", s.watcher.Backlog())
	return runErr
}

// startListeners starts the --metrics listener and the live inputs; on a
// failure, those already started are stopped.
func (s *server) startListeners(ctx context.Context) (*metricsServer, error) {
	sf := s.cmd.serve
	var metricsSrv *metricsServer
	if sf.metricsAddr != "" {
		metricsSrv = &metricsServer{addr: sf.metricsAddr}
		if err := metricsSrv.start(ctx, s.metrics.Handler(), s.log); err != nil {
			return nil, bindHint(err)
		}
	}
	for i, in := range s.inputs {
		if err := in.Start(ctx, s.spool, s.log); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sf.shutdownTimeout)
			for _, started := range s.inputs[:i] {
				started.Shutdown(stopCtx)
			}
			metricsSrv.shutdown(stopCtx)
			cancel()
			return nil, bindHint(fmt.Errorf("starting %s: %w", in, err))
		}
	}
	return metricsSrv, nil
}

// wait serves until ctx ends, or the Maildir watch fails, or the store
// turns out unusable (their error is returned), reopening the log and the report on each SIGHUP (logrotate).
func (s *server) wait(ctx context.Context, watchErr, storeErr <-chan error) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			s.log.Info("stopping: no new messages; finishing the ones in flight", "timeout", s.cmd.serve.shutdownTimeout.String())
			return nil
		case err := <-watchErr:
			s.log.Error("the Maildir watch failed; stopping", "error", err)
			return err
		case err := <-storeErr:
			s.log.Error("the certificate store cannot be used; stopping", "error", err)
			return err
		case <-hup:
			if err := s.setup.reopenLog(); err != nil {
				s.log.Error("SIGHUP: reopening the log failed", "error", err)
			}
			if err := s.report.Reopen(); err != nil {
				s.log.Error("SIGHUP: reopening the report failed", "error", err)
			}
			s.log.Info("SIGHUP: reopened the log and the report", "log", s.cmd.pipeline.logFile, "report", s.cmd.serve.report)
		}
	}
}

// bindHint adds to a listener's permission error what the operator needs:
// a port below 1024 (25, 443) takes root or the CAP_NET_BIND_SERVICE
// capability, which the systemd unit gives.
func bindHint(err error) error {
	if !errors.Is(err, syscall.EACCES) {
		return err
	}
	return fmt.Errorf("%w (a port below 1024 needs root or the CAP_NET_BIND_SERVICE capability: "+
		"AmbientCapabilities=CAP_NET_BIND_SERVICE in docs/systemd/certharvest.service, or setcap cap_net_bind_service=+ep on the binary)", err)
}
