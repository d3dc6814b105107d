package pgstore

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// A database without the tables is refused with the command that makes
// them; Migrate makes them once, even when two instances migrate at once;
// a schema from a newer certharvest is refused, and left alone.
func TestMigrate(t *testing.T) {
	t.Parallel()
	url := pg.Schema(t)
	a, b := open(t, url), open(t, url)
	ctx := context.Background()
	err := a.CheckSchema(ctx)
	if !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "certharvest store migrate --store URL") {
		t.Fatalf("an empty database: %v, want ErrSchemaTooOld naming the command", err)
	}
	// The store says so too when used without its tables.
	if _, err := a.Store(ctx, "a@example.com", leaf(t, "a@example.com", t0)); err == nil || !strings.Contains(err.Error(), "store migrate") {
		t.Errorf("Store without the tables: %v, want the command to run", err)
	}
	var wg sync.WaitGroup
	var ranFrom [2]int
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			from, to, err := s.Migrate(ctx)
			if err != nil || to != SchemaVersion() {
				t.Errorf("Migrate: %d to %d, %v", from, to, err)
			}
			ranFrom[i] = from
		})
	}
	wg.Wait()
	if min(ranFrom[0], ranFrom[1]) != 0 || max(ranFrom[0], ranFrom[1]) != SchemaVersion() {
		t.Errorf("two migrations at once started from %v: want one from 0, the other from %d", ranFrom, SchemaVersion())
	}
	if err := b.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after Migrate: %v", err)
	}
	if n := count(t, a, "SELECT count(*) FROM certharvest_schema"); n != SchemaVersion() {
		t.Errorf("%d versions recorded, want %d", n, SchemaVersion())
	}

	// A newer certharvest's schema.
	if _, err := a.pool.Exec(ctx, "INSERT INTO certharvest_schema (version, name) VALUES (99, '0099_future')"); err != nil {
		t.Fatal(err)
	}
	err = a.CheckSchema(ctx)
	var se *SchemaError
	if !errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrSchemaTooOld) || !errors.As(err, &se) || se.Have != 99 || !strings.Contains(err.Error(), "newer than this certharvest knows") {
		t.Errorf("a newer schema: %v", err)
	}
	if from, to, err := a.Migrate(ctx); !errors.Is(err, ErrSchemaTooNew) || from != 99 || to != 99 {
		t.Errorf("Migrate of a newer schema: %d to %d, %v", from, to, err)
	}
}

// The embedded migrations are numbered 1, 2, … without a gap.
func TestMigrationFiles(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	if err != nil || len(ms) == 0 || len(ms) != SchemaVersion() {
		t.Fatalf("%d migrations, %v", len(ms), err)
	}
}

// Each way of failing to reach the store says what is wrong, and never
// repeats the password.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	srv := pg.Server(t)
	ctx := context.Background()
	good, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	withPassword := func(pw string) string {
		u := *good
		u.User = url.UserPassword(pgtest.User, pw)
		return u.String()
	}
	withDatabase := func(db string) string {
		u := *good
		u.Path = "/" + db
		return u.String()
	}
	down := *good
	down.Host = "127.0.0.1:1" // nothing listens there

	for _, tc := range []struct {
		name, url, want string
		unavailable     bool // may pass by itself
	}{
		{"wrong password", withPassword("hunter2-wrong"), "refused the password of user \"postgres\"", false},
		{"no such database", withDatabase("nosuchdb"), "has no such database", false},
		{"server down", down.String(), "127.0.0.1:1/postgres is unreachable", true},
	} {
		s := open(t, tc.url)
		err := s.Ping(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
		if Unavailable(err) != tc.unavailable {
			t.Errorf("%s: Unavailable is %v", tc.name, !tc.unavailable)
		}
		if err := s.CheckSchema(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckSchema: %v", tc.name, err)
		}
	}

	for _, bad := range []string{
		"postgres://postgres:hunter2@127.0.0.1:notaport/db",
		"postgres://postgres:hunter2@[::1/db",
		"host=127.0.0.1 password=hunter2 port=notaport",
		"postgres://postgres:hunter2@127.0.0.1/db?sslmode=bogus",
		"postgres://postgres:hunter2%zz@127.0.0.1/db",
	} {
		_, err := New(bad, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), "invalid PostgreSQL store URL: ") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TLS as libpq users expect: sslmode=verify-full with sslrootcert
// connects over TLS; without the server's CA it fails, saying why; a CA
// file that is not there is refused before any connection.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := pg.Server(t)
	ctx := context.Background()
	base := srv.URL() // sslmode=disable, replaced below
	with := func(query string) string {
		return strings.Replace(base, "sslmode=disable", query, 1)
	}
	s := open(t, with("sslmode=verify-full&sslrootcert="+url.QueryEscape(srv.CAFile())))
	var ssl bool
	if err := s.pool.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Errorf("verify-full: TLS %v, %v", ssl, err)
	}

	other := t.TempDir() + "/other-ca.pem"
	otherCA, err := testcorpus.SelfSignedTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, otherCA.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	err = open(t, with("sslmode=verify-full&sslrootcert="+url.QueryEscape(other))).Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "TLS to it failed (see sslmode and sslrootcert)") ||
		!strings.Contains(err.Error(), "certificate") || Unavailable(err) {
		t.Errorf("verify-full against another CA: %v (unavailable: %v)", err, Unavailable(err))
	}

	_, err = New(with("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"), Options{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("a CA file that is not there: %v", err)
	}
}
