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
