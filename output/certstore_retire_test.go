package output

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// Retire moves the current certificate to the history with why, and only
// it; afterwards the address takes only a strictly later certificate, so a
// replayed old message brings back neither it nor an older one.
func TestCertStoreRetire(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	addr := "alice@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, revoked, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0)), selfSigned(t, addr, t0.AddDate(0, 2, 0))
	if _, err := s.Store(ctx, addr, older); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store(ctx, addr, revoked); err != nil {
		t.Fatal(err)
	}
	why := Retirement{Reason: verify.ReasonCertRevoked, Detail: "revoked, says OCSP", RevokedAt: t0.AddDate(0, 1, 5),
		RevocationReason: "keyCompromise", At: t0.AddDate(0, 2, 0)}

	if moved, err := s.Retire(ctx, addr, older, why); err != nil || moved {
		t.Errorf("retiring a certificate that is not the current one: %v, %v", moved, err)
	}
	if moved, err := s.Retire(ctx, addr, revoked, why); err != nil || !moved {
		t.Fatalf("Retire: %v, %v", moved, err)
	}
	if _, err := s.Load(addr); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the current certificate is still there: %v", err)
	}
	history, err := s.History(addr)
	if err != nil || len(history) != 2 || !history[1].Equal(revoked) {
		t.Errorf("history: %d certificates (%v), want the older and the revoked one", len(history), err)
	}
	sha := verify.DescribeCertificate(revoked).SHA256
	data, err := os.ReadFile(filepath.Join(dir, "history", addr, sha+".revoked"))
	if err != nil {
		t.Fatal(err)
	}
	var rec retiredRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Reason != verify.ReasonCertRevoked || rec.RevocationReason != "keyCompromise" ||
		!rec.NotBefore.Equal(revoked.NotBefore) || rec.Address != addr {
		t.Errorf("retirement record %s (%v)", data, err)
	}
	got, err := s.Retirements(addr)
	if err != nil || got[sha].Detail != why.Detail {
		t.Errorf("Retirements: %+v, %v", got, err)
	}
	if moved, err := s.Retire(ctx, addr, revoked, why); err != nil || moved {
		t.Errorf("retiring again: %v, %v", moved, err)
	}

	// The rollback guard: the revoked certificate and an older one are
	// kept out, a later one is stored.
	for _, step := range []struct {
		name string
		cert *x509.Certificate
		want verify.Action
	}{
		{"the revoked certificate replayed", revoked, verify.ActionKeptExisting},
		{"an older certificate replayed", older, verify.ActionKeptExisting},
		{"a later certificate", newer, verify.ActionStored},
	} {
		res, err := s.Store(ctx, addr, step.cert)
		if err != nil || res.Action != step.want {
			t.Errorf("%s: %+v, %v; want %s", step.name, res, err, step.want)
		}
	}
	if cur, err := s.Load(addr); err != nil || !cur.Equal(newer) {
		t.Errorf("current: %v", err)
	}
}

// A dual-key sender's pair: retiring the certificate to encrypt to leaves
// the address without one (the signing certificate beside it goes to the
// history, replaced), and the floor keeps the pair's replay out while a
// later certificate to encrypt to comes in with the same signing one.
// Retiring the signing certificate takes only <address>.sign.crt, and the
// floor keeps it from coming back beside <address>.crt.
func TestCertStoreRetirePair(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	addr := "dual@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	enc, sign, enc2 := selfSigned(t, addr, t0), selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	why := Retirement{Reason: verify.ReasonCertRevoked, Detail: "revoked", RevocationReason: "keyCompromise", At: t0.AddDate(0, 2, 0)}
	pair := verify.CertSet{Encryption: enc, Signing: sign, Capabilities: []string{"AES-256-GCM"}}
	if res, err := s.StoreSet(ctx, addr, pair); err != nil || res.Action != verify.ActionStored {
		t.Fatalf("%+v %v", res, err)
	}
	if moved, err := s.Retire(ctx, addr, enc, why); err != nil || !moved {
		t.Fatalf("Retire: %v, %v", moved, err)
	}
	for _, name := range []string{addr + ".crt", addr + SignSuffix, addr + CapsSuffix} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	if history, err := s.History(addr); err != nil || len(history) != 2 {
		t.Errorf("history: %d certificates (%v), want the pair", len(history), err)
	}
	if res, err := s.StoreSet(ctx, addr, pair); err != nil || res.Action != verify.ActionKeptExisting {
		t.Errorf("the pair replayed: %+v, %v", res, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, addr+SignSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the pair's replay brought back the signing certificate")
	}
	if res, err := s.StoreSet(ctx, addr, verify.CertSet{Encryption: enc2, Signing: sign}); err != nil || res.Action != verify.ActionStored {
		t.Fatalf("a later certificate to encrypt to: %+v, %v", res, err)
	}
	st, err := s.LoadStored(addr)
	if err != nil || !st.Cert.Equal(enc2) || st.Signing == nil || !st.Signing.Equal(sign) {
		t.Fatalf("after: %+v, %v", st, err)
	}

	// A later signing certificate, revoked: <address>.crt stays.
	sign2 := selfSigned(t, addr, t0.AddDate(0, 2, 0))
	if res, err := s.StoreSet(ctx, addr, verify.CertSet{Encryption: enc2, Signing: sign2}); err != nil || res.Action != verify.ActionStored {
		t.Fatalf("a later signing certificate: %+v, %v", res, err)
	}
	if moved, err := s.Retire(ctx, addr, sign2, why); err != nil || !moved {
		t.Fatalf("Retire the signing certificate: %v, %v", moved, err)
	}
	st, err = s.LoadStored(addr)
	if err != nil || !st.Cert.Equal(enc2) || st.Signing != nil {
		t.Fatalf("after retiring the signing certificate: %+v, %v", st, err)
	}
	if res, err := s.StoreSet(ctx, addr, verify.CertSet{Encryption: enc2, Signing: sign2}); err != nil || res.Action != verify.ActionKeptExisting {
		t.Errorf("the revoked signing certificate replayed: %+v, %v", res, err)
	}
	if st, _ := s.LoadStored(addr); st.Signing != nil {
		t.Error("the revoked signing certificate came back")
	}
}
