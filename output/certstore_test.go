package output

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// selfSigned makes a throwaway certificate for addr valid from notBefore.
func selfSigned(t testing.TB, addr string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := testcorpus.SelfSigned(&x509.Certificate{
		SerialNumber:   big.NewInt(notBefore.Unix()),
		Subject:        pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr},
		NotBefore:      notBefore,
		NotAfter:       notBefore.AddDate(1, 0, 0),
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertStoreActions(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	addr := "bob@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 3, 0))

	steps := []struct {
		name string
		cert *x509.Certificate
		want verify.Action
		file *x509.Certificate // the current certificate afterwards
	}{
		{"first certificate is stored", older, verify.ActionStored, older},
		{"same certificate again is unchanged", older, verify.ActionUnchanged, older},
		{"newer certificate replaces it", newer, verify.ActionStored, newer},
		{"older certificate replayed is refused", older, verify.ActionKeptExisting, newer},
	}
	for _, st := range steps {
		res, err := store.Store(ctx, addr, st.cert)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.Action != st.want {
			t.Fatalf("%s: action = %s, want %s", st.name, res.Action, st.want)
		}
		if res.Path != filepath.Join(dir, addr+".crt") {
			t.Errorf("%s: path = %s", st.name, res.Path)
		}
		cur, err := store.Load(addr)
		if err != nil {
			t.Fatal(err)
		}
		if !cur.Equal(st.file) {
			t.Fatalf("%s: the file holds the wrong certificate", st.name)
		}
	}
	hist, err := os.ReadDir(filepath.Join(dir, "history", addr))
	if err != nil || len(hist) != 1 {
		t.Fatalf("history = %v, %v; want the replaced certificate", hist, err)
	}
	addrs, err := store.Addresses()
	if err != nil || len(addrs) != 1 || addrs[0] != addr {
		t.Errorf("Addresses = %v, %v", addrs, err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != addr+".crt" && e.Name() != "history" && e.Name() != ".locks" {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func TestCertStoreRefusesUnsafeAddresses(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStore(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, "x@example.com", time.Now())
	for _, addr := range []string{"../evil@example.com", "Bob@Example.com", "a/b@example.com", "", "x@example.com/../../y"} {
		if _, err := store.Store(context.Background(), addr, cert); err == nil {
			t.Errorf("Store(%q) succeeded", addr)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files written outside the store: %v", entries)
	}
}

func TestOpenCertStoreUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; use a path under a regular file.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o644)
		if _, err := OpenCertStore(filepath.Join(f, "certs")); err == nil {
			t.Fatal("OpenCertStore under a file succeeded")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o555)
	if _, err := OpenCertStore(dir); err == nil {
		t.Fatal("OpenCertStore on a read-only folder succeeded")
	}
}

func TestCertStoreConcurrent(t *testing.T) {
	store, err := OpenCertStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := "race@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	certs := make([]*x509.Certificate, 8)
	for i := range certs {
		certs[i] = selfSigned(t, addr, t0.AddDate(0, 0, i))
	}
	done := make(chan error)
	for _, c := range certs {
		go func() {
			_, err := store.Store(context.Background(), addr, c)
			done <- err
		}()
	}
	for range certs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	cur, err := store.Load(addr)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Equal(certs[len(certs)-1]) {
		t.Errorf("the newest certificate did not win: NotBefore %v", cur.NotBefore)
	}
}

// Temporary files that a crash left behind are removed once stale, and
// only then (another process may be writing a young one).
func TestOpenCertStoreRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".tmp-a@example.com.crt-123")
	young := filepath.Join(dir, ".tmp-b@example.com.crt-456")
	os.WriteFile(stale, []byte("half"), 0o644)
	os.WriteFile(young, []byte("half"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := OpenCertStore(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temporary file kept")
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("young temporary file removed:", err)
	}
}

// holdsCertificate recognises a file holding exactly cert's PEM block, and
// nothing else, so that Store can say "unchanged" without parsing.
func TestHoldsCertificate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert, other := selfSigned(t, "a@example.com", t0), selfSigned(t, "a@example.com", t0.AddDate(0, 1, 0))
	pemOf := func(typ string, der []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"same", EncodeCertificatePEM(cert), true},
		{"same, text before", append([]byte("subject=a@example.com\n"), EncodeCertificatePEM(cert)...), true},
		{"another", EncodeCertificatePEM(other), false},
		{"another type", pemOf("X509 CRL", cert.Raw), false},
		{"truncated", pemOf("CERTIFICATE", cert.Raw[:len(cert.Raw)-1]), false},
		{"not PEM", cert.Raw, false},
		{"empty", nil, false},
	} {
		if got := holdsCertificate(tc.data, cert); got != tc.want {
			t.Errorf("%s: holdsCertificate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Only a strictly later NotBefore replaces the current certificate. CAs
// often truncate NotBefore to the day, and a user may re-key the same day:
// two certificates with one NotBefore must not take turns as a replayed
// message of each arrives (issue 13, item 4).
func TestCertStoreTieKeepsCurrent(t *testing.T) {
	addr := "tie@example.com"
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	a, b := selfSigned(t, addr, day), selfSigned(t, addr, day)
	older := selfSigned(t, addr, day.AddDate(0, -1, 0))
	for _, group := range []bool{false, true} {
		store, err := OpenCertStoreOptions(t.TempDir(), CertStoreOptions{GroupCommit: group})
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range []struct {
			cert *x509.Certificate
			want verify.Action
		}{
			{a, verify.ActionStored},
			{older, verify.ActionKeptExisting},
			{b, verify.ActionKeptExisting},
			{a, verify.ActionUnchanged},
			{b, verify.ActionKeptExisting},
		} {
			res, err := store.Store(context.Background(), addr, st.cert)
			if err != nil || res.Action != st.want {
				t.Fatalf("group=%v step %d: %s, %v; want %s", group, i+1, res.Action, err, st.want)
			}
			if cur, err := store.Load(addr); err != nil || !cur.Equal(a) {
				t.Fatalf("group=%v step %d: the current certificate is no longer A (%v)", group, i+1, err)
			}
		}
		if hist, err := store.History(addr); err != nil || len(hist) != 0 {
			t.Errorf("group=%v: history = %d certificates, %v; want none", group, len(hist), err)
		}
		store.Close()
	}
}
