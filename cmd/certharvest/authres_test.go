package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
	"github.com/spf13/pflag"
)

// hostAuthservID is serve's default --authserv-id: the host name.
func hostAuthservID(t *testing.T) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(host)
}

// stampRE is the Authentication-Results field serve puts on top of an
// archived message, with the line ending of the message.
var stampRE = regexp.MustCompile(`^Authentication-Results: ([^;\s]+);(\r?\n)\tdkim=([a-z]+)([^\r\n]*)(\r?\n)`)

// unstamped checks that an archived message starts with serve's
// Authentication-Results field (the host name's authserv-id), recording
// the DKIM result of rec, and returns what follows it: the bytes received.
func unstamped(t *testing.T, data []byte, rec output.Record) []byte {
	t.Helper()
	m := stampRE.FindSubmatch(data)
	if m == nil {
		t.Errorf("%s: archived without serve's Authentication-Results field on top:\n%.200q", rec.Path, data)
		return data
	}
	if id := string(m[1]); id != hostAuthservID(t) {
		t.Errorf("%s: authserv-id %s, want the host name %s", rec.Path, id, hostAuthservID(t))
	}
	if !bytes.Equal(m[2], m[5]) {
		t.Errorf("%s: the field's line endings differ: %q", rec.Path, m[0])
	}
	want := "permerror"
	switch {
	case rec.DKIM != nil:
		want = "pass"
		if props := " header.d=" + rec.DKIM.Domain + " header.s=" + rec.DKIM.Selector + ` header.b="`; !strings.HasPrefix(string(m[4]), props) {
			t.Errorf("%s: %q does not name the signature (%s)", rec.Path, m[4], props)
		}
	case rec.Reason == verify.ReasonDKIMMissing:
		want = "none"
	case rec.Reason == verify.ReasonDKIMInvalid, rec.Reason == verify.ReasonDKIMDomainMismatch:
		want = "fail"
	}
	if string(m[3]) != want {
		t.Errorf("%s: dkim=%s for %s, want %s", rec.Path, m[3], rec.Reason, want)
	}
	return data[len(m[0]):]
}

// The serve round trip of an archive whose DKIM keys are gone: serve
// archives a message with its Authentication-Results field; a scan of cur/
// with a keys file that lacks the key rejects it (dkim_invalid), unless it
// trusts serve's authserv-id; then it is accepted, and the report line says
// how. serve refuses to trust its own authserv-id in the mail it receives.
func TestServeArchiveAuthResults(t *testing.T) {
	dir := t.TempDir()
	const self = "certharvest.test"
	s := startServe(t, dir, "--authserv-id", self)
	msg, err := os.ReadFile(filepath.Join(sampleDir, "messages", "01-ok-rsa-detached.eml"))
	if err != nil {
		t.Fatal(err)
	}
	// Delivered as an MTA does (tmp/, then new/), with a forged field of
	// serve's id that came with it.
	forged := append([]byte("Authentication-Results: "+self+"; dkim=pass header.d=example.com\r\n"), msg...)
	tmp := filepath.Join(s.maildir, "tmp", "1780272000.M1P1Q1.mta")
	if err := os.WriteFile(tmp, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.maildir, "new", "1780272000.M1P1Q1.mta")); err != nil {
		t.Fatal(err)
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("serve's report: %+v", recs)
	}
	archived, err := os.ReadFile(filepath.Join(s.maildir, "cur", "1780272000.M1P1Q1.mta:2,S"))
	if err != nil {
		t.Fatal(err)
	}
	field := stampRE.Find(archived)
	if field == nil || !bytes.Equal(archived[len(field):], forged) || !bytes.HasPrefix(field, []byte("Authentication-Results: "+self+";\r\n\tdkim=pass header.d=example.com header.s=")) {
		t.Fatalf("archived copy:\n%.400q", archived)
	}

	// The keys are gone.
	keys := filepath.Join(dir, "no-keys.txt")
	os.WriteFile(keys, []byte("# rotated away\n"), 0o600)
	scan := func(extra ...string) output.Record {
		t.Helper()
		report := filepath.Join(t.TempDir(), "report.jsonl")
		args := append([]string{"scan", "--quiet", "--trust", sampleDir + "/trust.pem", "--dkim-keys", keys, "--at", "2026-06-01T00:00:00Z",
			"--certs", t.TempDir(), "--report", report, filepath.Join(s.maildir, "cur")}, extra...)
		if res := runBinary(t, args...); res.code != 0 {
			t.Fatalf("scan: exit %d: %s", res.code, res.stderr)
		}
		recs := readReport(t, report)
		if len(recs) != 1 {
			t.Fatalf("scan's report: %+v", recs)
		}
		return recs[0]
	}
	if rec := scan(); rec.Reason != verify.ReasonDKIMInvalid || !strings.Contains(rec.Detail, "no key") {
		t.Errorf("without trust: %s (%s), want dkim_invalid", rec.Reason, rec.Detail)
	}
	rec := scan("--trust-authserv-id", "mx.example.org,"+strings.ToUpper(self))
	if rec.Reason != verify.ReasonOK || rec.DKIM == nil || rec.DKIM.Via != verify.DKIMViaAuthResults || rec.DKIM.AuthservID != self || rec.DKIM.Domain != "example.com" {
		t.Errorf("trusting %s: %s (%s), DKIM %+v", self, rec.Reason, rec.Detail, rec.DKIM)
	}

	// serve will not trust its own id: the mail it receives may claim it.
	res := runBinary(t, "serve", "--maildir", filepath.Join(dir, "other"), "--authserv-id", self, "--trust-authserv-id", self)
	if res.code != 2 || !strings.Contains(res.stderr, "is serve's own --authserv-id") {
		t.Errorf("serve trusting its own id: exit %d: %s", res.code, res.stderr)
	}
	for _, bad := range [][]string{{"scan", "--trust-authserv-id", "mx example", "x.eml"}, {"serve", "--maildir", dir, "--authserv-id", "a;b"}} {
		if res := runBinary(t, bad...); res.code != 2 || !strings.Contains(res.stderr, "authserv-id") {
			t.Errorf("%v: exit %d: %s", bad, res.code, res.stderr)
		}
	}
}

// --authserv-id none archives as received: no field, and no refusal of a
// trusted id.
func TestAuthservIDNone(t *testing.T) {
	f := &authservFlags{}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Set("authserv-id", "none"); err != nil {
		t.Fatal(err)
	}
	id, err := f.resolve([]string{"none", "mx.example.org"})
	if err != nil || id != "" {
		t.Errorf("resolve = %q, %v; want no id (no field)", id, err)
	}
}
