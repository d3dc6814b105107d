package pgstore

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"testing"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Retire moves the current certificate to the history with why, in the
// same transaction that removes it, and only it; afterwards the address
// takes only a strictly later certificate, on both paths of Store (a
// group's insert, and a row locked alone). Export carries the retirement
// to a folder, and import back.
func TestRetire(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addr := "alice@example.com"
	older, revoked, newer := leaf(t, addr, t0), leaf(t, addr, t0.AddDate(0, 1, 0)), leaf(t, addr, t0.AddDate(0, 2, 0))
	for _, c := range []*x509.Certificate{older, revoked} {
		if _, err := s.Store(ctx, addr, c); err != nil {
			t.Fatal(err)
		}
	}
	why := output.Retirement{Reason: verify.ReasonCertRevoked, Detail: "revoked, says OCSP", RevokedAt: t0.AddDate(0, 1, 5),
		RevocationReason: "keyCompromise", At: t0.AddDate(0, 2, 0)}
	if moved, err := s.Retire(ctx, addr, older, why); err != nil || moved {
		t.Errorf("retiring a certificate that is not the current one: %v, %v", moved, err)
	}
	if moved, err := s.Retire(ctx, addr, revoked, why); err != nil || !moved {
		t.Fatalf("Retire: %v, %v", moved, err)
	}
	if _, err := s.Load(ctx, addr); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the current certificate is still there: %v", err)
	}
	if n := count(t, s, `SELECT count(*) FROM certificate_history WHERE address = $1 AND sha256 = $2
		AND retired_reason = 'cert_revoked' AND revocation_reason = 'keyCompromise' AND retired_detail = $3`,
		addr, verify.DescribeCertificate(revoked).SHA256, why.Detail); n != 1 {
		t.Errorf("%d history rows with the retirement, want 1", n)
	}
	if moved, err := s.Retire(ctx, addr, revoked, why); err != nil || moved {
		t.Errorf("retiring again: %v, %v", moved, err)
	}

	// The folder an export writes has the retirement too; an import of
	// it into another schema has it back.
	dir := t.TempDir()
	if _, err := s.Export(ctx, dir); err != nil {
		t.Fatal(err)
	}
	folder, err := output.OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	if _, err := folder.Load(addr); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("export: the retired certificate is current in the folder: %v", err)
	}
	if r, err := folder.Retirements(addr); err != nil || r[verify.DescribeCertificate(revoked).SHA256].RevocationReason != "keyCompromise" {
		t.Errorf("export: retirements %+v, %v", r, err)
	}
	other, _ := migrated(t)
	if _, err := other.Import(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load(ctx, addr); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("import: the retired certificate is current: %v", err)
	}
	if n := count(t, other, `SELECT count(*) FROM certificate_history WHERE retired_reason = 'cert_revoked'`); n != 1 {
		t.Errorf("import: %d retired rows, want 1", n)
	}

	// The rollback guard, through a group's insert (several at once) and
	// alone.
	for _, step := range []struct {
		name string
		cert *x509.Certificate
		want verify.Action
	}{
		{"the revoked certificate replayed", revoked, verify.ActionKeptExisting},
		{"an older certificate replayed", older, verify.ActionKeptExisting},
		{"a later certificate", newer, verify.ActionStored},
	} {
		results := make(chan verify.Action, 3)
		for range 3 {
			go func() {
				res, err := s.Store(ctx, addr, step.cert)
				if err != nil {
					t.Error(err)
				}
				results <- res.Action
			}()
		}
		stored := 0
		for range 3 {
			a := <-results
			if a == verify.ActionStored {
				stored++
			} else if step.want == verify.ActionKeptExisting && a != verify.ActionKeptExisting {
				t.Errorf("%s: %s", step.name, a)
			}
		}
		if want := map[bool]int{true: 1, false: 0}[step.want == verify.ActionStored]; stored != want {
			t.Errorf("%s: stored %d times, want %d", step.name, stored, want)
		}
	}
	if cur, err := s.Load(ctx, addr); err != nil || !cur.Equal(newer) {
		t.Errorf("current: %v", err)
	}
}

// A dual-key sender's pair, as in the folder store: retiring der leaves
// the address without a row, sign_der going to the history replaced, and
// the floor keeps the pair's replay out; retiring sign_der alone keeps
// der, and the floor keeps the revoked signing certificate from coming
// back beside it.
func TestRetirePair(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addr := "dual@example.com"
	enc, sign := leaf(t, addr, t0), leaf(t, addr, t0)
	enc2, sign2 := leaf(t, addr, t0.AddDate(0, 1, 0)), leaf(t, addr, t0.AddDate(0, 2, 0))
	why := output.Retirement{Reason: verify.ReasonCertRevoked, Detail: "revoked", RevocationReason: "keyCompromise", At: t0.AddDate(0, 3, 0)}
	store := func(name string, set verify.CertSet, want verify.Action) {
		t.Helper()
		if res, err := s.StoreSet(ctx, addr, set); err != nil || res.Action != want {
			t.Fatalf("%s: %s, %v; want %s", name, res.Action, err, want)
		}
	}
	pair := verify.CertSet{Encryption: enc, Signing: sign}
	store("the pair", pair, verify.ActionStored)
	if moved, err := s.Retire(ctx, addr, enc, why); err != nil || !moved {
		t.Fatalf("Retire: %v, %v", moved, err)
	}
	if n := count(t, s, `SELECT count(*) FROM certificate_history WHERE address = $1`, addr); n != 2 {
		t.Errorf("%d history rows, want the pair", n)
	}
	if n := count(t, s, `SELECT count(*) FROM certificate_history WHERE address = $1 AND retired_as = 'encryption'`, addr); n != 1 {
		t.Errorf("%d rows retired as the certificate to encrypt to, want 1", n)
	}
	store("the pair replayed", pair, verify.ActionKeptExisting)
	if _, err := s.LoadStored(ctx, addr); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pair's replay stored something: %v", err)
	}
	store("a later certificate to encrypt to", verify.CertSet{Encryption: enc2, Signing: sign}, verify.ActionStored)
	store("a later signing certificate", verify.CertSet{Encryption: enc2, Signing: sign2}, verify.ActionStored)
	if moved, err := s.Retire(ctx, addr, sign2, why); err != nil || !moved {
		t.Fatalf("Retire the signing certificate: %v, %v", moved, err)
	}
	st, err := s.LoadStored(ctx, addr)
	if err != nil || !sameCert(st.Cert, enc2) || st.Signing != nil {
		t.Fatalf("after retiring the signing certificate: %+v, %v", st, err)
	}
	store("the revoked signing certificate replayed", verify.CertSet{Encryption: enc2, Signing: sign2}, verify.ActionKeptExisting)
	if st, _ := s.LoadStored(ctx, addr); st.Signing != nil {
		t.Error("the revoked signing certificate came back")
	}
}
