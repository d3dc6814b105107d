package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	t.Parallel()
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

// secretLine is in a 0600 file outside the certificate folder that a link
// planted in it points to.
const secretLine = "private key material, not for the history"

// Issue 13, item 6, as reported: certs/victim@example.com.crt as a link to a
// 0600 secret. A valid message for victim copied the secret into history/
// with mode 0644. Now the message is store_refused ("not a regular file"),
// scan exits 1, nothing is written and no secret is read; show refuses
// the link too.
func TestScanRefusesLinkedCertificate(t *testing.T) {
	t.Parallel()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	const addr = "victim@example.com"
	msg, err := f.SignedMessage(addr)
	if err != nil {
		t.Fatal(err)
	}
	s := newFixtureScan(t, f)
	secret := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(secret, []byte(secretLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.certs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(s.certs, addr+".crt")); err != nil {
		t.Fatal(err)
	}
	rec, code := s.scan(t, msg)
	if rec.Reason != "store_refused" || !strings.Contains(rec.Detail, "not a regular file") || code != 1 {
		t.Errorf("exit %d, %s (%s); want exit 1, store_refused, not a regular file", code, rec.Reason, rec.Detail)
	}
	checkNoSecret(t, s.certs)
	if info, err := os.Stat(secret); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret changed: %v, %v", info, err)
	}
	r := runBinary(t, "show", "--certs", s.certs, addr)
	if r.code == 0 || strings.Contains(r.stdout+r.stderr, secretLine) || !strings.Contains(r.stderr, "not a regular file") {
		t.Errorf("show: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// Issue 13, item 6, as reported: certs/history as a link to another folder.
// Replacing a certificate wrote the old one there. Now the newer
// certificate is store_refused, the other folder stays empty and the
// current certificate stays.
func TestScanRefusesLinkedHistory(t *testing.T) {
	t.Parallel()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	const addr = "history@example.com"
	older, err := f.SignedMessage(addr)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := f.SignedMessage(addr, testcorpus.WithNotBefore(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	s := newFixtureScan(t, f)
	rec, code := s.scan(t, older)
	if code != 0 || rec.Action != "stored" {
		t.Fatalf("first message: exit %d, %s %s (%s)", code, rec.Reason, rec.Action, rec.Detail)
	}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(s.certs, "history")); err != nil {
		t.Fatal(err)
	}
	rec, code = s.scan(t, newer)
	if rec.Reason != "store_refused" || !strings.Contains(rec.Detail, "history is a symbolic link") || code != 1 {
		t.Errorf("exit %d, %s (%s); want exit 1, store_refused", code, rec.Reason, rec.Detail)
	}
	if entries, err := os.ReadDir(elsewhere); err != nil || len(entries) != 0 {
		t.Errorf("the linked folder holds %d entries (%v): written through the link", len(entries), err)
	}
	if got, want := fileCertSHA256(t, filepath.Join(s.certs, addr+".crt")), readReport(t, s.report)[0].Cert.SHA256; got != want {
		t.Errorf("the current certificate changed")
	}
}

// checkNoSecret checks that no file under dir holds secretLine.
func checkNoSecret(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), secretLine) {
				t.Errorf("the secret was copied into %s", path)
			}
		}
		return nil
	})
}
