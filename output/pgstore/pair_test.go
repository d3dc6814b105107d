package pgstore

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

func sameCert(a, b *x509.Certificate) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(b)
}

// A dual-key sender's pair in PostgreSQL, as in the folder store: der is
// the certificate to encrypt to, sign_der the signing one, each replaced
// only by a strictly newer one of its kind, the capabilities kept with
// der; what either replaces goes to the history; the lookup's LoadStored
// reads them all. An export to a folder writes <address>.crt,
// <address>.sign.crt and <address>.caps, and an import of that folder into
// another database gives the same rows.
func TestStorePair(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addr := "dual@example.com"
	single := leaf(t, addr, t0)
	enc1, sign1 := leaf(t, addr, t0.AddDate(0, 1, 0)), leaf(t, addr, t0.AddDate(0, 1, 0))
	sign2 := leaf(t, addr, t0.AddDate(0, 2, 0))
	caps := []string{"AES-256-GCM", "RSAES-OAEP", "1.3.6.1.4.1.99999.1"}
	steps := []struct {
		name      string
		set       verify.CertSet
		want      verify.Action
		enc, sign *x509.Certificate
		history   int
	}{
		{"one certificate", verify.CertSet{Encryption: single}, verify.ActionStored, single, nil, 0},
		{"a pair replaces it", verify.CertSet{Encryption: enc1, Signing: sign1, Capabilities: caps}, verify.ActionStored, enc1, sign1, 1},
		{"the same pair", verify.CertSet{Encryption: enc1, Signing: sign1}, verify.ActionUnchanged, enc1, sign1, 1},
		{"the old one replayed", verify.CertSet{Encryption: single}, verify.ActionKeptExisting, enc1, sign1, 1},
		{"a newer signing certificate", verify.CertSet{Encryption: enc1, Signing: sign2}, verify.ActionStored, enc1, sign2, 2},
	}
	for _, st := range steps {
		res, err := s.StoreSet(ctx, addr, st.set)
		if err != nil || res.Action != st.want {
			t.Fatalf("%s: %s, %v; want %s", st.name, res.Action, err, st.want)
		}
		if (res.SignPath != "") != (st.sign != nil) {
			t.Errorf("%s: SignPath %q", st.name, res.SignPath)
		}
		stored, err := s.LoadStored(ctx, addr)
		if err != nil || !sameCert(stored.Cert, st.enc) || !sameCert(stored.Signing, st.sign) {
			t.Fatalf("%s: LoadStored: %v", st.name, err)
		}
		if n := count(t, s, "SELECT count(*) FROM certificate_history WHERE address = $1", addr); n != st.history {
			t.Errorf("%s: %d in the history, want %d", st.name, n, st.history)
		}
	}
	stored, _ := s.LoadStored(ctx, addr)
	if !slices.Equal(stored.Capabilities, caps) {
		t.Errorf("capabilities %q, want %q", stored.Capabilities, caps)
	}
	if _, err := s.StoreSet(ctx, "alice@example.sign", verify.CertSet{Encryption: single}); err == nil {
		t.Error("an address of a .sign domain was stored")
	}

	dir := t.TempDir()
	if _, err := s.Export(ctx, dir); err != nil {
		t.Fatal(err)
	}
	folder, err := output.ReadCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	exported, err := folder.LoadStored(addr)
	if err != nil || !sameCert(exported.Cert, enc1) || !sameCert(exported.Signing, sign2) || !slices.Equal(exported.Capabilities, caps) {
		t.Fatalf("exported: %v, signing %v, capabilities %q", err, exported.Signing != nil, exported.Capabilities)
	}
	if addrs, _ := folder.Addresses(); !slices.Equal(addrs, []string{addr}) {
		t.Errorf("the folder's addresses: %q", addrs)
	}

	other, _ := migrated(t)
	if _, err := other.Import(ctx, dir); err != nil {
		t.Fatal(err)
	}
	imported, err := other.LoadStored(ctx, addr)
	if err != nil || !sameCert(imported.Cert, enc1) || !sameCert(imported.Signing, sign2) || !slices.Equal(imported.Capabilities, caps) {
		t.Fatalf("imported: %v, signing %v, capabilities %q", err, imported.Signing != nil, imported.Capabilities)
	}
	if n := count(t, other, "SELECT count(*) FROM certificate_history WHERE address = $1", addr); n != 2 {
		t.Errorf("imported history: %d, want 2", n)
	}
}
