package pgstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// pg is the package's PostgreSQL server; each test has a schema of its own.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

var (
	fixtureOnce sync.Once
	fixture     *testcorpus.Fixture
	fixtureErr  error
)

// testFixture is the test PKI, made once for the package.
func testFixture(t testing.TB) *testcorpus.Fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = testcorpus.New() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

// leaf makes a certificate for addr valid from notBefore, with a key of
// its own (ECDSA: quick to make).
func leaf(t testing.TB, addr string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := testcorpus.SelfSigned(&x509.Certificate{
		SerialNumber:   big.NewInt(mrand.Int64()),
		Subject:        pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr},
		NotBefore:      notBefore,
		NotAfter:       notBefore.AddDate(1, 0, 0),
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// t0 is the NotBefore of the tests' first certificates.
var t0 = testcorpus.NotBefore

// open returns a store at url, closed when the test ends.
func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := New(url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// migrated returns a store in a schema of the test's own, migrated, and
// the schema's URL.
func migrated(t testing.TB) (*Store, string) {
	t.Helper()
	url := pg.Schema(t)
	s := open(t, url)
	if _, _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, url
}

// count returns the result of a count(*) query.
func count(t testing.TB, s *Store, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Store serves list, show and the lookup API as the folder store does.
var _ output.CertReader = (*Store)(nil)
