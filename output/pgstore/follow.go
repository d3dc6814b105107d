package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/output"
)

// notifyChannel is where the schema's trigger announces each certificate
// stored, its address the payload (migrations/0001_init.sql).
const notifyChannel = "certharvest_certificates"

// DefaultFollowRetry is how long Follow waits before connecting again
// after its connection broke.
const DefaultFollowRetry = 5 * time.Second

// FollowOptions configure Follow. The zero value of each field means its
// default.
type FollowOptions struct {
	// Retry is the wait before connecting again; default
	// DefaultFollowRetry.
	Retry time.Duration
	// Exported, when set, is told of each export: the whole store's (at
	// the start, and after each reconnection), then each address's.
	Exported func(addr string, stats ExportStats, err error)
}

// Follow keeps the folder dir in step with the store until ctx ends, for
// applications that read the files: it listens for the certificates
// stored (LISTEN certharvest_certificates, on a connection of its own),
// exports the whole store (Export), then each address announced, as soon
// as its transaction commits. When the connection breaks, it connects
// again after FollowOptions.Retry and exports the whole store again, so
// that nothing stored meanwhile is missed; so it does after an export that
// failed (a full disk). It returns when ctx ends, or
// when the folder cannot be opened.
func (s *Store) Follow(ctx context.Context, dir string, opts FollowOptions) error {
	if opts.Retry <= 0 {
		opts.Retry = DefaultFollowRetry
	}
	if opts.Exported == nil {
		opts.Exported = func(string, ExportStats, error) {}
	}
	folder, err := output.OpenCertStoreOptions(dir, output.CertStoreOptions{GroupCommit: true})
	if err != nil {
		return err
	}
	defer folder.Close()
	for {
		err := s.follow(ctx, folder, opts)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn(fmt.Sprintf("following the store: connecting again in %s", opts.Retry), "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Retry):
		}
	}
}

// follow listens, exports everything, then each address announced, until
// the connection or ctx ends.
func (s *Store) follow(ctx context.Context, folder *output.CertStore, opts FollowOptions) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "certharvest store export --follow"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return s.explain(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return s.explain(err)
	}
	// Listening first: what is stored from now on is announced, and what
	// was stored before is in this export.
	stats, err := s.exportTo(ctx, folder, "")
	opts.Exported("", stats, err)
	if err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return s.explain(err)
		}
		stats, err := s.exportTo(ctx, folder, n.Payload)
		opts.Exported(n.Payload, stats, err)
		if err != nil {
			// The whole store is exported again once connected again:
			// the address is not left behind.
			return err
		}
	}
}
