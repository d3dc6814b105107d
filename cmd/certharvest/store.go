package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/pgstore"
	"github.com/certharvest/certharvest/verify"
)

// The certificate store a command reads or writes: the folder --certs
// (the default), or the one --store names, a PostgreSQL database
// (output/pgstore) or a folder. The URL may come from a file of its own
// (--store-file), the only place, with the configuration file, where it
// may hold a password: a command line is seen by every user of the
// machine (ps, /proc) and kept in shell histories. Without one, pgx reads
// the password as libpq does: PGPASSWORD, then ~/.pgpass (PGPASSFILE).

// storeFlags are --store and --store-file.
type storeFlags struct {
	url  string
	file string
	fs   *pflag.FlagSet // the command's, to tell what the command line set
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	f.registerAs(fs, "certificate store: a postgres:// `URL` or a folder (default: --certs)")
}

// registerAs registers the flags with usage for --store.
func (f *storeFlags) registerAs(fs *pflag.FlagSet, usage string) {
	f.fs = fs
	fs.StringVar(&f.url, "store", "", usage)
	fs.StringVar(&f.file, "store-file", "", "read --store's URL from `file`, which may hold the password (mode 0600)")
}

// storeSpec is the certificate store a command was given: a folder, or a
// PostgreSQL URL.
type storeSpec struct {
	folder string
	pgURL  string // may hold a password: never printed
}

// spec returns the store the flags name, certs (the --certs folder) when
// they name none. It refuses --store with --store-file or --certs, and a
// password on the command line.
func (f *storeFlags) spec(certs string) (storeSpec, error) {
	raw := f.url
	switch {
	case f.url != "" && f.file != "":
		return storeSpec{}, usagef("give --store or --store-file, not both")
	case f.file != "":
		data, err := os.ReadFile(f.file)
		if err != nil {
			return storeSpec{}, fmt.Errorf("store file: %w", err)
		}
		if raw = strings.TrimSpace(string(data)); raw == "" {
			return storeSpec{}, fmt.Errorf("store file %s is empty: want a postgres:// URL", f.file)
		}
	case f.url == "":
		return storeSpec{folder: certs}, nil
	}
	if c := f.fs.Lookup("certs"); c != nil && (c.Changed || c.Value.String() != c.DefValue) {
		return storeSpec{}, usagef("give --store or --certs, not both: --store replaces the folder --certs")
	}
	if !isPostgresURL(raw) {
		return storeSpec{folder: raw}, nil
	}
	if f.fs.Changed("store") && hasStorePassword(raw) {
		return storeSpec{}, usagef("--store: no password on the command line, where any user of the machine sees it: " +
			"put the URL in a file of mode 0600 (--store-file FILE), or the password in PGPASSWORD or ~/.pgpass")
	}
	return storeSpec{pgURL: raw}, nil
}

// isPostgresURL reports whether a --store value names PostgreSQL: a
// postgres:// or postgresql:// URL, or libpq's key=value pairs
// ("host=db dbname=certharvest"); anything else is a folder.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || conninfoKey.MatchString(s)
}

// conninfoKey matches the start of libpq's key=value form.
var conninfoKey = regexp.MustCompile(`^\s*[a-z_]+\s*=`)

// conninfoPassword matches a password in libpq's key=value form, quoted
// or not.
var conninfoPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// urlPassword matches a URL's user information with a password.
var urlPassword = regexp.MustCompile(`^[a-z]+://[^@/]*:[^@]*@`)

// hasStorePassword reports whether a PostgreSQL URL holds a password: in
// its user information, a password query parameter, or a password key.
func hasStorePassword(s string) bool {
	if !strings.Contains(s, "://") {
		return conninfoPassword.MatchString(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not parsed: look for the forms all the same, so that a
		// malformed URL's password is refused too.
		return urlPassword.MatchString(s) || strings.Contains(s, "password=")
	}
	_, ok := u.User.Password()
	return ok || u.Query().Has("password")
}

// redactStorePassword returns a --store value with its password, if any,
// replaced by ********, for --print-config and config check.
func redactStorePassword(s string) string {
	if !isPostgresURL(s) || !hasStorePassword(s) {
		return s
	}
	if !strings.Contains(s, "://") {
		return conninfoPassword.ReplaceAllString(s, "${1}password=********")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "******** (a URL that does not parse, with a password)"
	}
	// A placeholder that url.URL leaves as it is, then the asterisks it
	// would escape.
	const mark = "REDACTED"
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), mark)
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", mark)
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), mark, "********")
}

// openPostgres returns the PostgreSQL store at url, without connecting. A
// URL that does not parse is a usage error.
func openPostgres(url string, log *slog.Logger) (*pgstore.Store, error) {
	s, err := pgstore.New(url, pgstore.Options{Logger: log})
	if errors.Is(err, pgstore.ErrInvalidURL) {
		return nil, usagef("--store: %v", err)
	}
	return s, err
}

// openCheckedPostgres is openPostgres, then CheckSchema: for the commands
// that run once (scan, check, list, show, store export and import), a
// store that cannot be used now is an error.
func openCheckedPostgres(ctx context.Context, url string, log *slog.Logger) (*pgstore.Store, error) {
	s, err := openPostgres(url, log)
	if err != nil {
		return nil, err
	}
	if err := s.CheckSchema(ctx); err != nil {
		s.Close()
		return nil, withStore(s, err)
	}
	return s, nil
}

// openReader opens the store of a command that only reads (list, show):
// the folder certs, read-only, or the one the flags name. It returns the
// store, its description for messages (the folder, or the database
// without its password), and what closes it.
func (f *storeFlags) openReader(ctx context.Context, certs string) (output.CertReader, string, func(), error) {
	spec, err := f.spec(certs)
	if err != nil {
		return nil, "", nil, err
	}
	if spec.pgURL == "" {
		folder, err := openExistingStore(spec.folder)
		if err != nil {
			return nil, "", nil, err
		}
		return output.FolderReader{Store: folder}, spec.folder, func() {}, nil
	}
	s, err := openCheckedPostgres(ctx, spec.pgURL, nil)
	if err != nil {
		return nil, "", nil, err
	}
	return s, s.String(), s.Close, nil
}

// withStore names the store in a schema error, which does not (the
// store's other errors do).
func withStore(s *pgstore.Store, err error) error {
	var se *pgstore.SchemaError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %w", s, err)
	}
	return err
}

// writeStore is the store of a command that stores certificates (scan,
// check): a folder or PostgreSQL (pg, nil for a folder).
type writeStore struct {
	verify.CertStore
	pg    *pgstore.Store
	desc  string // the folder, or the database without its password
	close func()
}

// openWriter opens the store the flags name, certs when they name none;
// nil when that is "" (check without --certs: nothing is written). A
// PostgreSQL store must answer, with the schema this certharvest knows.
func (f *storeFlags) openWriter(ctx context.Context, certs string, opts output.CertStoreOptions, log *slog.Logger) (*writeStore, error) {
	spec, err := f.spec(certs)
	if err != nil {
		return nil, err
	}
	if spec.pgURL != "" {
		pg, err := openCheckedPostgres(ctx, spec.pgURL, log)
		if err != nil {
			return nil, err
		}
		return &writeStore{CertStore: pg, pg: pg, desc: pg.String(), close: pg.Close}, nil
	}
	if spec.folder == "" {
		return nil, nil
	}
	folder, err := output.OpenCertStoreOptions(spec.folder, opts)
	if err != nil {
		return nil, err
	}
	return &writeStore{CertStore: folder, desc: spec.folder, close: func() { folder.Close() }}, nil
}

// logKey is the key of the store in a start-up log line: certs for a
// folder (as before --store), store for PostgreSQL.
func (w *writeStore) logKey() string {
	if w.pg != nil {
		return "store"
	}
	return "certs"
}

// verdictReports returns the report scan's engine writes to: the JSON-lines
// file, and with PostgreSQL the verdict rows after it. scan's engine does
// not sync (it is not Durable), so the rows gathered are written by
// syncRows, at the end (and by the verdict writer itself every
// pgstore.DefaultVerdictBatch lines).
func verdictReports(file *output.Report, store *writeStore) (report engine.Report, syncRows func() error) {
	if store.pg == nil {
		return file, func() error { return nil }
	}
	rows := store.pg.Verdicts()
	return pgstore.Tee(file, rows), rows.Sync
}
