package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// fixtureScan runs `scan` against a fixture's PKI and DKIM keys, one
// message at a time, into one certificate folder and one report.
type fixtureScan struct {
	dir, certs, report string
	flags              []string
	n                  int // messages written so far
}

// newFixtureScan writes f's trust bundle and DKIM keys into a new folder.
func newFixtureScan(t *testing.T, f *testcorpus.Fixture) *fixtureScan {
	t.Helper()
	dir := t.TempDir()
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, f.KeysFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &fixtureScan{dir: dir, certs: filepath.Join(dir, "certs"), report: filepath.Join(dir, "report.jsonl"),
		flags: []string{"--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339), "--quiet"}}
}

// scan writes msg to a file, scans it and returns its report line and the
// exit status.
func (s *fixtureScan) scan(t *testing.T, msg []byte) (output.Record, int) {
	t.Helper()
	s.n++
	path := filepath.Join(s.dir, "messages", fmt.Sprintf("%03d.eml", s.n))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"scan"}, s.flags...)
	r := runBinary(t, append(args, "--certs", s.certs, "--report", s.report, path)...)
	recs := readReport(t, s.report)
	if len(recs) != s.n {
		t.Fatalf("scan %d: %d report lines, want %d (exit %d)\n%s", s.n, len(recs), s.n, r.code, r.stderr)
	}
	return recs[len(recs)-1], r.code
}

// fileCertSHA256 returns the SHA-256 of the certificate in a PEM file.
func fileCertSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// Issue 13, item 4, as reported: two certificates for one address with the
// same NotBefore (2026-02-01), and an older one. Scanning A, the older one,
// B, A, B must give stored, kept_existing, kept_existing, unchanged,
// kept_existing, and leave A stored: a tie never replaces.
func TestScanTieKeepsCurrent(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	const addr = "tie@example.com"
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	a, err := f.SignedMessage(addr, testcorpus.WithNotBefore(day))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.SignedMessage(addr, testcorpus.WithNotBefore(day))
	if err != nil {
		t.Fatal(err)
	}
	older, err := f.SignedMessage(addr) // NotBefore 2026-01-01
	if err != nil {
		t.Fatal(err)
	}
	s := newFixtureScan(t, f)
	var shaA string
	for i, st := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"A", a, "stored"},
		{"older", older, "kept_existing"},
		{"B", b, "kept_existing"},
		{"A", a, "unchanged"},
		{"B", b, "kept_existing"},
	} {
		rec, code := s.scan(t, st.msg)
		if code != 0 || rec.Outcome != output.OutcomeAccepted || string(rec.Action) != st.want {
			t.Fatalf("step %d (%s): exit %d, %s %s %s (%s); want accepted, %s", i+1, st.name, code, rec.Outcome, rec.Reason, rec.Action, rec.Detail, st.want)
		}
		if i == 0 {
			shaA = rec.Cert.SHA256
		}
		if got := fileCertSHA256(t, filepath.Join(s.certs, addr+".crt")); got != shaA {
			t.Fatalf("step %d (%s): the stored certificate is %s, not A's %s", i+1, st.name, got, shaA)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(s.certs, "history", addr)); err == nil && len(entries) > 0 {
		t.Errorf("history holds %d files: A was replaced at some step", len(entries))
	}
}
