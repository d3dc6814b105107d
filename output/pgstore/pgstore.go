// Package pgstore keeps certharvest's certificates and verdicts in
// PostgreSQL, so that several instances share them: a verify.CertStore
// (Store), a writer of verdict rows that is an engine.Report (Verdicts), the
// reads that list, show and the lookup API need, and an export to, and an
// import from, the folder of PEM files that package output keeps.
//
// # Schema
//
// Three tables, made by Migrate from SQL embedded in the binary
// (migrations/): certificates, one row per address; certificate_history,
// the certificates replaced; verdicts, one row per message. The table
// certharvest_schema records the version. CheckSchema refuses a schema
// older or newer than this certharvest's (SchemaError). The tables are
// created in the first schema of the connection's search_path (public by
// default; search_path=NAME in the URL puts them elsewhere).
//
// # Promises
//
//   - Anti-rollback across instances: an address's certificate is replaced
//     only by one with a strictly later NotBefore. A first certificate is
//     inserted with ON CONFLICT (address) DO NOTHING (a row another
//     instance inserted first stays, and is then decided upon); a
//     replacement is decided in a transaction that holds the address's row
//     locked (SELECT … FOR UPDATE), and the replaced certificate moves to
//     certificate_history in the same transaction. Two instances storing
//     two certificates for one address at once end with the strictly
//     newer, whatever the order; on a tie the first stored stays.
//   - Durable when Store returns: its statement or transaction has
//     committed (with the server's synchronous_commit, on by default).
//     Concurrent Stores share their statements, so one commit (group
//     commit: see commitGroup).
//   - A verdict is written once per message id (the report line's id): a
//     message verified again after a crash keeps its first row.
//   - When the server cannot be reached, every call fails with an error
//     that says so; Store's is temporary (store_failed: the message is
//     verified again later). Ping tells a health check.
//
// # Connecting
//
// The URL is libpq's (postgres://user@host:port/db?sslmode=verify-full&
// sslrootcert=FILE, or key=value pairs), read by pgx: the PG* environment
// variables fill what it leaves out (PGPASSWORD, PGSSLMODE…), and the
// password may come from ~/.pgpass (PGPASSFILE). pool_max_conns sets the
// size of the pool (default: the greater of 4 and the number of CPUs).
package pgstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/internal/groupcommit"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one transaction (a group of Stores, a batch of
	// verdicts) and one query: a server that stopped answering fails the
	// call instead of holding it.
	DefaultTimeout = 30 * time.Second
	// DefaultConnectTimeout bounds connecting, unless the URL sets
	// connect_timeout.
	DefaultConnectTimeout = 10 * time.Second
)

// Options configure a Store. The zero value of each field means its
// default.
type Options struct {
	// Timeout bounds each transaction and query; default DefaultTimeout.
	Timeout time.Duration
	// PathOf names an address's certificate in StoreResult.Path (the
	// report's cert_file, the logs) and in list's output. Default:
	// "postgresql:certificates/" and the address. An instance whose
	// certificates are exported to a folder may name the exported file.
	PathOf func(addr string) string
	// Logger receives what the store does on its own (a group retried one
	// by one). Default: discard.
	Logger *slog.Logger
}

// Store is certharvest's PostgreSQL store: a pool of connections to one
// database. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	opts  Options
	log   *slog.Logger
	where string // host:port/database, for messages
	user  string
	group groupcommit.Group[*storeRequest]
}

// New returns the store at url, parsed as libpq does (see the package
// doc). It does not connect: a server that is down is found by the first
// call (Ping, CheckSchema). A malformed URL is an error that does not
// repeat the URL (it may hold a password).
func New(rawURL string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, parseError(err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PathOf == nil {
		opts.PathOf = func(addr string) string { return "postgresql:certificates/" + addr }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL store: %w", err)
	}
	host := cfg.ConnConfig.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	}
	return &Store{
		pool:  pool,
		opts:  opts,
		log:   opts.Logger,
		where: host + "/" + cfg.ConnConfig.Database,
		user:  cfg.ConnConfig.User,
	}, nil
}

// ErrInvalidURL is the error of New for a URL (or key=value string) that
// cannot be parsed: a mistake of configuration, not of the server.
var ErrInvalidURL = errors.New("invalid PostgreSQL store URL")

// parseError explains a URL that pgx could not parse without repeating it:
// the URL may hold a password, and pgx quotes it in ParseConfigError's
// message (its redaction is best effort). pgx's reason, the error it
// wraps, names a secret part rather than quoting it.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	why := "cannot parse it"
	if msg := pe.Error(); strings.Contains(msg, "`: ") {
		// "cannot parse `URL`: what (why)": keep what.
		why = msg[strings.LastIndex(msg, "`: ")+3:]
		if inner := pe.Unwrap(); inner != nil {
			why = strings.TrimSuffix(why, " ("+inner.Error()+")") + ": " + inner.Error()
		}
	}
	return fmt.Errorf("%w: %s", ErrInvalidURL, why)
}

// String describes the store for a log or a message: the user, the server
// and the database, never the password.
func (s *Store) String() string {
	return fmt.Sprintf("postgresql://%s@%s", s.user, s.where)
}

// Unavailable reports whether err, of a call of the store, says that the
// server could not be reached or is not serving now (it is down, starting,
// shutting down, the network failed, it did not answer in time), which may
// pass by itself: not a refusal (a password, a privilege, a missing
// database or table), which needs someone to act.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P: the server is shutting down,
		// starting (57P03) or crashed; 53: insufficient resources (a full
		// disk, too many connections).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53")
	}
	var se *SchemaError
	if errors.As(err, &se) || errors.Is(err, ErrInvalidURL) || tlsRefused(err) {
		return false
	}
	return true
}

// tlsRefused reports whether err is TLS to the server failing for want of
// trust (sslrootcert, the server's name) or of TLS on the server: a
// configuration to fix, not an outage.
func tlsRefused(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || strings.Contains(err.Error(), "server refused TLS connection")
}

// Close closes the pool's connections, waiting for those in use.
func (s *Store) Close() { s.pool.Close() }

// Ping returns nil when the server answers, else why not (for a health
// check: "store unavailable"). A connection of the pool that the server
// closed (it restarted, or is stopping) is discarded and the server asked
// again, on a new one, so that the answer is the server's now.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, s.pool.Ping)
}

// do runs fn, bounded by Options.Timeout, and explains its error. If a
// connection of the pool broke (the server restarted, or closed it), fn
// runs once more, on another: every fn here may run twice (a read, or a
// transaction whose writes are idempotent), and a server back after an
// outage is then used at once, not after the connections it closed have
// each failed a call.
func (s *Store) do(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	err := fn(ctx)
	if brokenConn(ctx, err) {
		err = fn(ctx)
	}
	return s.explain(err)
}

// brokenConn reports whether err is a connection of the pool that broke,
// not an answer of the server to the statement nor a failure to connect
// (which would fail again at once).
func brokenConn(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.As(err, new(*pgconn.ConnectError)) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// admin_shutdown, crash_shutdown: the connection was ended by a
		// server that may be back by now.
		return pgErr.Code == "57P01" || pgErr.Code == "57P02"
	}
	return true
}

// explain names the cause of a failure of the server or of the connection
// to it, keeping err in the chain.
func (s *Store) explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var pgErr *pgconn.PgError
	connect := errors.As(err, new(*pgconn.ConnectError))
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return fmt.Errorf("PostgreSQL at %s refused the password of user %q: %w", s.where, s.user, err)
		case "28000":
			return fmt.Errorf("PostgreSQL at %s refused user %q (no such role, or pg_hba.conf): %w", s.where, s.user, err)
		case "3D000":
			return fmt.Errorf("PostgreSQL at %s has no such database: %w", s.where, err)
		case "53100":
			return fmt.Errorf("PostgreSQL at %s: its disk is full: %w", s.where, err)
		case "42P01":
			return fmt.Errorf("PostgreSQL at %s: a certharvest table is missing (create them with `certharvest store migrate --store URL`): %w", s.where, err)
		case "42501":
			return fmt.Errorf("PostgreSQL at %s: user %q lacks a privilege: %w", s.where, s.user, err)
		case "57P01", "57P02", "57P03":
			return fmt.Errorf("PostgreSQL at %s is shutting down or starting: %w", s.where, err)
		}
	}
	if connect && tlsRefused(err) {
		return fmt.Errorf("PostgreSQL at %s: TLS to it failed (see sslmode and sslrootcert): %w", s.where, err)
	}
	if connect {
		return fmt.Errorf("PostgreSQL at %s is unreachable: %w", s.where, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return fmt.Errorf("PostgreSQL at %s did not answer in time: %w", s.where, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("PostgreSQL at %s: the connection failed: %w", s.where, err)
	}
	return fmt.Errorf("PostgreSQL at %s: %w", s.where, err)
}
