package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/pgstore"
	"github.com/certharvest/certharvest/verify"
)

// serve's certificate store: the folder --certs, or PostgreSQL (--store).
//
// With PostgreSQL, serve refuses to start on what needs an operator: a URL
// that does not parse, a password or a user the server refuses, a missing
// database, TLS that cannot be verified, a schema older or newer than this
// certharvest's (naming `certharvest store migrate`). A server that does
// not answer, though, does not stop it: an MX host must keep taking mail
// while its database is down or failing over, as an MTA queues when the
// next hop is down, and a service that refused to start would be
// restarted in a loop by systemd and bounce nothing but lose the mail its
// senders give up on. So serve starts, its inputs spool, /healthz answers
// 503 "store unavailable", and the engine waits, asking the server again
// every storeRetry; once the server answers with the schema it knows, the
// messages waiting are verified. (A schema found wrong then stops serve,
// as it would have at start-up: the messages stay in the spool.)
//
// While serve runs, a server that stops answering makes storing a
// temporary failure (store_failed: the message stays in new/ and is
// retried, --retry-first, doubling), and the verdict rows wait with their
// batch (the engine writes the same lines again, a second to a minute
// apart, and takes no other batch meanwhile); /healthz answers 503 "store
// unavailable" from the next ping (storePing) until one succeeds.

const (
	// storeStartTimeout bounds the start-up's question to the server
	// (CheckSchema), after which serve starts without it.
	storeStartTimeout = 15 * time.Second
	// storePing is how often serve asks the server whether it answers,
	// for /healthz; storePingTimeout bounds one question.
	storePing        = 2 * time.Second
	storePingTimeout = 5 * time.Second
	// storeRetry is how often serve, started without its server, asks it
	// again for its schema.
	storeRetry = 2 * time.Second
)

// storeHealth tells /healthz whether the PostgreSQL store answers, from
// the last ping: a health check is answered at once, and asks the server
// nothing. Its zero value, and a folder store's, is always available.
type storeHealth struct {
	mu    sync.Mutex
	store *pgstore.Store
	err   error // the last ping's failure; nil: it answered
	log   *slog.Logger
}

// available returns nil while the store answers, else why not
// (ingest.WebhookOptions.StoreAvailable).
func (h *storeHealth) available() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// set records a ping's outcome, logging a change.
func (h *storeHealth) set(err error) {
	h.mu.Lock()
	was := h.err
	h.err = err
	h.mu.Unlock()
	switch {
	case err != nil && was == nil:
		h.log.Error("the certificate store is unavailable: messages wait in the spool", "store", h.store.String(), "error", err)
	case err == nil && was != nil:
		h.log.Info("the certificate store answers again", "store", h.store.String())
	}
}

// watch pings the store every storePing until ctx ends.
func (h *storeHealth) watch(ctx context.Context) {
	if h.store == nil {
		return
	}
	t := time.NewTicker(storePing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pingCtx, cancel := context.WithTimeout(ctx, storePingTimeout)
		err := h.store.Ping(pingCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.set(err)
	}
}

// openCertStore opens the store the flags name and sets s.pg when it is
// PostgreSQL, which it asks for its schema (see above): an error is a
// reason to refuse to start.
func (s *server) openCertStore() (verify.CertStore, error) {
	sf := s.cmd.serve
	spec, err := s.cmd.store.spec(sf.certs)
	if err != nil {
		return nil, err
	}
	s.storeDesc = spec.folder
	if spec.pgURL == "" {
		// Messages storing at the same time share one sync (group commit).
		store, err := output.OpenCertStoreOptions(spec.folder, output.CertStoreOptions{GroupCommit: true})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { store.Close() })
		return store, nil
	}
	pg, err := openPostgres(spec.pgURL, s.log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, pg.Close)
	s.pg, s.storeDesc = pg, pg.String()
	s.storeHealth.store = pg
	ctx, cancel := context.WithTimeout(context.Background(), storeStartTimeout)
	defer cancel()
	err = pg.CheckSchema(ctx)
	switch {
	case err == nil:
		s.storeReady = true
	case pgstore.Unavailable(err):
		s.storeHealth.err = err
		s.log.Error("the certificate store is unavailable at start-up: serve starts, spooling; "+
			"the messages are verified once it answers", "store", pg.String(), "error", err)
	default:
		return nil, withStore(pg, err)
	}
	return pg, nil
}

// certReader returns what the lookup API reads: the folder through a store
// of its own, which cannot write, or the PostgreSQL store.
func (s *server) certReader() (output.CertReader, error) {
	if s.pg != nil {
		return s.pg, nil
	}
	readOnly, err := output.ReadCertStore(s.storeDesc)
	if err != nil {
		return nil, err
	}
	return output.FolderReader{Store: readOnly}, nil
}

// engineReport is where the engine writes its verdicts: the JSON-lines
// report, and with PostgreSQL the verdict rows too, after it (each line is
// durable in the file before its row is written; the engine syncs both
// before a message leaves new/).
func (s *server) engineReport() engine.Report {
	if s.pg == nil {
		return s.report
	}
	return pgstore.Tee(s.report, s.pg.Verdicts())
}

// waitForStore returns true once the store can be used: at once for a
// folder, or a PostgreSQL store that answered at start-up; else it asks
// the server for its schema every storeRetry until it answers (true), ctx
// ends (false), or the schema is one this certharvest cannot use (false,
// and the error sent on fatal).
func (s *server) waitForStore(ctx context.Context, fatal chan<- error) bool {
	if s.pg == nil || s.storeReady {
		return true
	}
	t := time.NewTicker(storeRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, storeStartTimeout)
		err := s.pg.CheckSchema(checkCtx)
		cancel()
		switch {
		case err == nil:
			s.storeHealth.set(nil)
			s.log.Info("the certificate store answers: verifying the messages waiting", "store", s.pg.String())
			return true
		case ctx.Err() != nil:
			return false
		case pgstore.Unavailable(err):
			continue
		}
		fatal <- withStore(s.pg, err)
		return false
	}
}
