package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/ocsptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
	"github.com/certharvest/certharvest/verify/revocation"
)

// The binary with --revocation: certificates that name a local OCSP
// responder and CRL server (internal/ocsptest), never the network.

var (
	revFixtureOnce sync.Once
	revFixture     *testcorpus.Fixture
	revFixtureErr  error
)

// revocationPKI is a fresh fixture's root and a revocation intermediate
// under it, a responder answering for both as if the time were its clock,
// and the fixture's trust and DKIM key files.
type revocationPKI struct {
	f     *testcorpus.Fixture
	srv   *ocsptest.Server
	inter *x509.Certificate
	key   crypto.Signer
	clock atomic.Pointer[time.Time]
	flags []string // --trust, --dkim-keys, --at
}

func newRevocationPKI(t *testing.T) *revocationPKI {
	t.Helper()
	revFixtureOnce.Do(func() { revFixture, revFixtureErr = testcorpus.New() })
	if revFixtureErr != nil {
		t.Fatal(revFixtureErr)
	}
	p := &revocationPKI{f: revFixture}
	at := testcorpus.At
	p.clock.Store(&at)
	p.srv = ocsptest.Start(func() time.Time { return *p.clock.Load() },
		ocsptest.CA{Name: "root", Cert: p.f.Root, Key: p.f.RootKey})
	t.Cleanup(p.srv.Close)
	var err error
	p.inter, p.key, err = p.f.RevocationIntermediate("revocation intermediate", p.srv.OCSPURL(), p.srv.CRLURL("root"))
	if err != nil {
		t.Fatal(err)
	}
	p.srv.AddCA(ocsptest.CA{Name: "inter", Cert: p.inter, Key: p.key})
	dir := t.TempDir()
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, p.f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, p.f.KeysFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	p.flags = []string{"--trust", trust, "--dkim-keys", keys, "--at", at.Format(time.RFC3339)}
	return p
}

// message mints a message from addr whose certificate names the
// responder, written to dir; it returns the file and the certificate's
// serial number (the fixture's SignedMessage issues a fresh one).
func (p *revocationPKI) message(t *testing.T, dir, addr string) (string, *x509.Certificate) {
	t.Helper()
	msg, err := p.f.SignedMessage(addr, testcorpus.Revocable(p.inter, p.key, p.srv.OCSPURL(), p.srv.CRLURL("inter")))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(addr, "@", "_at_")+".eml")
	if err := os.WriteFile(path, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, append([]string{"check", "--json"}, append(p.flags, path)...)...)
	if r.code != 0 {
		t.Fatalf("check %s: exit %d\n%s%s", addr, r.code, r.stdout, r.stderr)
	}
	return path, p.signer(t, path)
}

// signer returns the certificate of a minted message, as check stores it.
func (p *revocationPKI) signer(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs := t.TempDir()
	if r := runBinary(t, append([]string{"check", "--certs", certs}, append(p.flags, path)...)...); r.code != 0 {
		t.Fatalf("check --certs: exit %d\n%s", r.code, r.stdout)
	}
	entries, _ := filepath.Glob(filepath.Join(certs, "*.crt"))
	if len(entries) != 1 {
		t.Fatalf("%d certificates stored", len(entries))
	}
	store, err := output.ReadCertStore(certs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Load(strings.TrimSuffix(filepath.Base(entries[0]), ".crt"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scan and check with --revocation: off asks nobody; soft refuses a
// revoked certificate and passes an unknown status with a warning; hard
// refuses both, storing nothing.
func TestRevocationScan(t *testing.T) {
	t.Parallel()
	p := newRevocationPKI(t)
	msgs := t.TempDir()
	p.message(t, msgs, "good@example.com")
	_, revoked := p.message(t, msgs, "revoked@example.com")
	p.srv.Revoke(revoked.SerialNumber, testcorpus.At.Add(-time.Hour), 1)
	hits := p.srv.OCSPHits() + p.srv.CRLHits()

	scan := func(mode string, extra ...string) (map[string]output.Record, string) {
		t.Helper()
		dir := t.TempDir()
		report, certs := filepath.Join(dir, "report.jsonl"), filepath.Join(dir, "certs")
		args := append([]string{"scan", "--quiet", "--revocation", mode, "--certs", certs, "--report", report,
			"--log", filepath.Join(dir, "log")}, p.flags...)
		if r := runBinary(t, append(append(args, extra...), msgs)...); r.code != 0 {
			t.Fatalf("scan --revocation %s: exit %d\n%s", mode, r.code, r.stderr)
		}
		recs := map[string]output.Record{}
		for _, rec := range readReport(t, report) {
			recs[rec.From] = rec
		}
		return recs, certs
	}

	recs, _ := scan("off")
	for addr, rec := range recs {
		if rec.Reason != verify.ReasonOK || rec.Revocation != nil {
			t.Errorf("off: %s: %s, revocation %+v", addr, rec.Reason, rec.Revocation)
		}
	}
	if p.srv.OCSPHits()+p.srv.CRLHits() != hits {
		t.Error("--revocation off asked the responder")
	}

	for _, mode := range []string{"soft", "hard"} {
		recs, certs := scan(mode)
		if rec := recs["good@example.com"]; rec.Reason != verify.ReasonOK || rec.Revocation == nil || rec.Revocation.Status != "good" {
			t.Errorf("%s: good: %s %s %+v", mode, rec.Reason, rec.Detail, rec.Revocation)
		}
		rec := recs["revoked@example.com"]
		if rec.Reason != verify.ReasonCertRevoked || rec.Revocation == nil || rec.Revocation.Reason != "keyCompromise" {
			t.Errorf("%s: revoked: %s %s %+v", mode, rec.Reason, rec.Detail, rec.Revocation)
		}
		if _, err := os.Stat(filepath.Join(certs, "revoked@example.com.crt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the revoked certificate was stored", mode)
		}
	}

	// The responder and CRLs fail: soft passes with a warning, hard
	// refuses (scan does not retry) and stores nothing.
	p.srv.Fail(http.StatusServiceUnavailable)
	recs, _ = scan("soft")
	if rec := recs["good@example.com"]; rec.Reason != verify.ReasonOK || len(rec.Warnings) != 1 ||
		!strings.Contains(rec.Warnings[0], "revocation status unknown: OCSP http://") || rec.Revocation.Status != "unknown" {
		t.Errorf("soft, responder failing: %s %+v %q", rec.Reason, rec.Revocation, rec.Warnings)
	}
	recs, certs := scan("hard")
	if rec := recs["good@example.com"]; rec.Reason != verify.ReasonRevocationUnknown || !strings.Contains(rec.Detail, "503 Service Unavailable") {
		t.Errorf("hard, responder failing: %s %s", rec.Reason, rec.Detail)
	}
	if entries, _ := filepath.Glob(filepath.Join(certs, "*.crt")); len(entries) != 0 {
		t.Errorf("hard, responder failing: %d certificates stored", len(entries))
	}
}

// serve --revocation hard: while the responder is unreachable a message
// waits in new/ and is tried again, as a DNS failure is, with nothing
// stored; once it answers, the certificate is stored. A message whose
// status stays unknown past --retry-for is rejected, revocation_unknown,
// and its certificate never stored.
func TestServeRevocationHardRetries(t *testing.T) {
	t.Parallel()
	p := newRevocationPKI(t)
	msgs := t.TempDir()
	first, _ := p.message(t, msgs, "first@example.com")
	second, _ := p.message(t, msgs, "second@example.com")
	p.srv.Fail(http.StatusServiceUnavailable)
	hits := p.srv.OCSPHits()

	sv := startServe(t, t.TempDir(), append(p.flags, "--revocation", "hard", "--retry-first", "100ms", "--retry-for", "1h")...)
	data, _ := os.ReadFile(first)
	deliver(t, sv.maildir, "m1", data)
	sv.waitLog(t, "temporary failure: revocation_unknown")
	deadline := time.Now().Add(20 * time.Second)
	for p.srv.OCSPHits() < hits+3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := p.srv.OCSPHits() - hits; n < 3 {
		t.Fatalf("the responder was asked %d times, want retries", n)
	}
	if _, err := os.Stat(filepath.Join(sv.maildir, "new", "m1")); err != nil {
		t.Fatal("the message left new/ while its status was unknown:", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(sv.certs, "*.crt")); len(entries) != 0 {
		t.Fatalf("a certificate of unknown status was stored: %v", entries)
	}
	p.srv.Fail(0) // the responder is back
	sv.waitDrained(t, 30*time.Second)
	sv.stop(t)
	recs := readReport(t, sv.report)
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK || recs[0].Revocation == nil || recs[0].Revocation.Status != "good" {
		t.Fatalf("report %+v, want one line, accepted, good", recs)
	}
	if _, err := os.Stat(filepath.Join(sv.certs, "first@example.com.crt")); err != nil {
		t.Error("not stored once the responder answered:", err)
	}

	// Unknown until --retry-for ends: rejected, never stored.
	p.srv.Fail(http.StatusServiceUnavailable)
	sv = startServe(t, sv.dir, append(p.flags, "--revocation", "hard", "--retry-first", "100ms", "--retry-for", "1s")...)
	data, _ = os.ReadFile(second)
	deliver(t, sv.maildir, "m2", data)
	sv.waitDrained(t, 30*time.Second)
	sv.stop(t)
	recs = readReport(t, sv.report)
	if last := recs[len(recs)-1]; last.Reason != verify.ReasonRevocationUnknown || last.From != "second@example.com" {
		t.Errorf("after --retry-for: %s %s, want revocation_unknown", last.Reason, last.Detail)
	}
	if _, err := os.Stat(filepath.Join(sv.certs, "second@example.com.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a certificate of unknown status was stored after --retry-for")
	}
	if _, err := os.Stat(filepath.Join(sv.maildir, "cur", curName("m2", false))); err != nil {
		t.Error("not archived as rejected:", err)
	}
}

// revalidate moves a stored certificate that became revoked to the
// history, with the reason, in the folder store and in PostgreSQL, and
// reports each certificate; a replayed message does not bring it back.
func TestRevalidate(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"folder", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			p := newRevocationPKI(t)
			msgs, cache := t.TempDir(), t.TempDir()
			revokedMsg, revoked := p.message(t, msgs, "alice@example.com")
			p.message(t, msgs, "bob@example.com")
			dir := t.TempDir()
			var store []string
			var url string
			if kind == "folder" {
				store = []string{"--certs", filepath.Join(dir, "certs")}
			} else {
				var file string
				file, url = migratedStore(t)
				store = []string{"--store-file", file}
			}
			scan := append(append([]string{"scan", "--quiet", "--revocation", "soft", "--revocation-cache", cache,
				"--report", filepath.Join(dir, "scan.jsonl"), "--log", filepath.Join(dir, "scan.log")}, store...), p.flags...)
			if r := runBinary(t, append(scan, msgs)...); r.code != 0 {
				t.Fatalf("scan: exit %d\n%s", r.code, r.stderr)
			}

			// A week and a day later, past the statuses' nextUpdate, the CA
			// has revoked alice's certificate.
			later := testcorpus.At.Add(8 * 24 * time.Hour)
			p.clock.Store(&later)
			p.srv.Revoke(revoked.SerialNumber, later.Add(-24*time.Hour), 1)
			report := filepath.Join(dir, "revalidate.jsonl")
			revalidate := append([]string{"revalidate", "--revocation", "soft", "--revocation-cache", cache,
				"--trust", p.flags[1], "--at", later.Format(time.RFC3339), "--report", report, "--log", filepath.Join(dir, "revalidate.log")},
				store...)
			r := runBinary(t, revalidate...)
			if r.code != 0 || !strings.Contains(r.stderr, "revalidate: 2 certificates at "+later.Format(time.RFC3339)+": 1 ok, 1 revoked (moved to the history)") {
				t.Fatalf("revalidate: exit %d\n%s", r.code, r.stderr)
			}
			recs := map[string]output.Record{}
			for _, rec := range readReport(t, report) {
				recs[rec.From] = rec
			}
			alice, bob := recs["alice@example.com"], recs["bob@example.com"]
			if alice.Reason != verify.ReasonCertRevoked || alice.Action != output.ActionRetired || alice.Source != "revalidate" ||
				alice.Revocation == nil || alice.Revocation.Reason != "keyCompromise" || !strings.HasSuffix(alice.Detail, "; moved to the history") {
				t.Errorf("alice: %+v %+v", alice, alice.Revocation)
			}
			if bob.Reason != verify.ReasonOK || bob.Revocation == nil || bob.Revocation.Status != "good" || bob.Action != "" {
				t.Errorf("bob: %+v %+v", bob, bob.Revocation)
			}

			list := runBinary(t, append([]string{"list", "--at", later.Format(time.RFC3339)}, store...)...)
			if list.code != 0 || strings.Contains(list.stdout, "alice@example.com") || !strings.Contains(list.stdout, "bob@example.com") {
				t.Errorf("list after revalidate: exit %d\n%s%s", list.code, list.stdout, list.stderr)
			}
			sha := verify.DescribeCertificate(revoked).SHA256
			if kind == "folder" {
				certs := filepath.Join(dir, "certs")
				if _, err := os.Stat(filepath.Join(certs, "alice@example.com.crt")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("alice's certificate is still current: %v", err)
				}
				for _, f := range []string{sha + ".crt", sha + ".revoked"} {
					if _, err := os.Stat(filepath.Join(certs, "history", "alice@example.com", f)); err != nil {
						t.Errorf("history: %v", err)
					}
				}
			} else {
				if n := queryInt(t, url, "SELECT count(*) FROM certificates WHERE address = 'alice@example.com'"); n != 0 {
					t.Errorf("alice still has %d current certificate", n)
				}
				if n := queryInt(t, url, `SELECT count(*) FROM certificate_history WHERE address = 'alice@example.com'
					AND sha256 = $1 AND retired_reason = 'cert_revoked' AND revocation_reason = 'keyCompromise'`, sha); n != 1 {
					t.Errorf("%d retired history rows for alice, want 1", n)
				}
			}

			// The old message replayed, revocation off: not stored again.
			replay := append(append([]string{"scan", "--quiet", "--report", filepath.Join(dir, "replay.jsonl"),
				"--log", filepath.Join(dir, "replay.log")}, store...), p.flags...)
			if r := runBinary(t, append(replay, revokedMsg)...); r.code != 0 {
				t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
			}
			if rec := readReport(t, filepath.Join(dir, "replay.jsonl"))[0]; rec.Action != verify.ActionKeptExisting {
				t.Errorf("replayed: %s %s, want kept_existing", rec.Action, rec.Detail)
			}

			// Once more: only bob is left, still good (from the cache).
			r = runBinary(t, revalidate...)
			if r.code != 0 || !strings.Contains(r.stderr, "revalidate: 1 certificate at") {
				t.Errorf("second revalidate: exit %d\n%s", r.code, r.stderr)
			}
		})
	}
}

// revalidate without --revocation judges expiry only; without the cache
// folder that knows the issuers, a status is unknown: soft passes it with
// a warning, hard reports revocation_unknown, and nothing is moved.
func TestRevalidateExpiryAndUnknownIssuer(t *testing.T) {
	t.Parallel()
	p := newRevocationPKI(t)
	msgs, dir := t.TempDir(), t.TempDir()
	p.message(t, msgs, "carol@example.com")
	certs := filepath.Join(dir, "certs")
	scan := append([]string{"scan", "--quiet", "--certs", certs, "--report", filepath.Join(dir, "scan.jsonl"),
		"--log", filepath.Join(dir, "scan.log")}, p.flags...)
	if r := runBinary(t, append(scan, msgs)...); r.code != 0 {
		t.Fatalf("scan: exit %d\n%s", r.code, r.stderr)
	}
	run := func(args ...string) output.Record {
		t.Helper()
		r := runBinary(t, append([]string{"revalidate", "--certs", certs, "--trust", p.flags[1], "--log", filepath.Join(dir, "log")}, args...)...)
		if r.code != 0 {
			t.Fatalf("revalidate %v: exit %d\n%s", args, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 1 {
			t.Fatalf("revalidate %v: %d report lines on standard output", args, len(lines))
		}
		report := filepath.Join(t.TempDir(), "r.jsonl")
		os.WriteFile(report, []byte(r.stdout), 0o644)
		return readReport(t, report)[0]
	}
	if rec := run("--at", "2030-01-01T00:00:00Z"); rec.Reason != verify.ReasonCertExpired || rec.Revocation != nil {
		t.Errorf("expired: %s %s", rec.Reason, rec.Detail)
	}
	if rec := run("--at", testcorpus.At.Format(time.RFC3339)); rec.Reason != verify.ReasonOK || !strings.Contains(rec.Detail, "revocation not checked") {
		t.Errorf("off: %s %s", rec.Reason, rec.Detail)
	}
	at := testcorpus.At.Format(time.RFC3339)
	if rec := run("--at", at, "--revocation", "soft"); rec.Reason != verify.ReasonOK || len(rec.Warnings) != 1 ||
		!strings.Contains(rec.Warnings[0], "its issuer is not known") {
		t.Errorf("soft, issuer unknown: %s %s %q", rec.Reason, rec.Detail, rec.Warnings)
	}
	if rec := run("--at", at, "--revocation", "hard"); rec.Reason != verify.ReasonRevocationUnknown || rec.Action != "" {
		t.Errorf("hard, issuer unknown: %s %s", rec.Reason, rec.Detail)
	}
	if _, err := os.Stat(filepath.Join(certs, "carol@example.com.crt")); err != nil {
		t.Error("moved:", err)
	}
}

// revalidate checks a dual-key sender's signing certificate too, on a line
// of its own: revoked, it leaves <address>.sign.crt for the history, and
// <address>.crt, not revoked, stays.
func TestRevalidatePair(t *testing.T) {
	t.Parallel()
	p := newRevocationPKI(t)
	addr := "dual@example.com"
	issue := func(spec testcorpus.LeafSpec) *x509.Certificate {
		t.Helper()
		spec.Address, spec.SubjectEmail, spec.Issuer, spec.IssuerKey = addr, true, p.inter, p.key
		spec.OCSPServer, spec.CRLDistributionPoints = []string{p.srv.OCSPURL()}, []string{p.srv.CRLURL("inter")}
		c, err := p.f.IssueLeaf(spec)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sign, enc := issue(testcorpus.LeafSpec{SigningOnly: true}), issue(testcorpus.LeafSpec{Key: p.f.DecoyKey})
	dir, cache := t.TempDir(), t.TempDir()
	certs := filepath.Join(dir, "certs")
	store, err := output.OpenCertStore(certs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.StoreSet(ctx, addr, verify.CertSet{Encryption: enc, Signing: sign}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	// The intermediate in the cache folder, as serve's check leaves it.
	checker, err := revocation.NewChecker(cache, revocation.CheckerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := checker.CheckChain(ctx, []*x509.Certificate{enc, p.inter, p.f.Root}, testcorpus.At); r.Status != revocation.Good {
		t.Fatalf("priming the cache: %+v", r)
	}
	checker.Close()

	p.srv.Revoke(sign.SerialNumber, testcorpus.At.Add(-time.Hour), 1)
	report := filepath.Join(dir, "revalidate.jsonl")
	r := runBinary(t, "revalidate", "--certs", certs, "--revocation", "soft", "--revocation-cache", cache,
		"--trust", p.flags[1], "--at", testcorpus.At.Format(time.RFC3339), "--report", report, "--log", filepath.Join(dir, "log"))
	if r.code != 0 || !strings.Contains(r.stderr, "2 certificates") || !strings.Contains(r.stderr, "1 ok, 1 revoked (moved to the history)") {
		t.Fatalf("revalidate: exit %d\n%s", r.code, r.stderr)
	}
	recs := readReport(t, report)
	if len(recs) != 2 || recs[0].Reason != verify.ReasonOK || recs[1].Reason != verify.ReasonCertRevoked ||
		recs[1].Action != output.ActionRetired || !strings.HasPrefix(recs[1].Detail, "signing certificate: ") ||
		!strings.HasSuffix(recs[1].CertFile, addr+output.SignSuffix) {
		t.Fatalf("report: %+v", recs)
	}
	if _, err := os.Lstat(filepath.Join(certs, addr+output.SignSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the revoked signing certificate is still there: %v", err)
	}
	st, err := output.ReadCertStore(certs)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := st.Load(addr); err != nil || !c.Equal(enc) {
		t.Errorf("the certificate to encrypt to: %v", err)
	}
}
