package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// testdata/sample is a frozen copy of the corpus as it was generated once;
// the tests here run the binary over a corpus generated now, with every
// case the generator knows (the *-signingtime-* ones, for instance, are
// not in the sample).

// corpusDir is a freshly generated corpus written to disk.
type corpusDir struct {
	flags []string                   // --trust, --dkim-keys and --at for it
	files map[string]testcorpus.Case // file name in messages/ -> case
	dir   string                     // holds messages/
}

// writeCorpus generates a corpus and writes its trust bundle, DKIM keys and
// messages under dir, as scripts/gencorpus does.
func writeCorpus(t *testing.T, dir string) *corpusDir {
	t.Helper()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "messages"), 0o755); err != nil {
		t.Fatal(err)
	}
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, f.KeysFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &corpusDir{
		flags: []string{"--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339)},
		files: map[string]testcorpus.Case{},
		dir:   dir,
	}
	for i, cc := range f.Cases() {
		name := fmt.Sprintf("%02d-%s.eml", i+1, cc.Name)
		if err := os.WriteFile(filepath.Join(dir, "messages", name), cc.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.files[name] = cc
	}
	return c
}

// scan gives every case of a freshly generated corpus its expected reason.
func TestScanCorpus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	corpus := writeCorpus(t, filepath.Join(dir, "corpus"))
	certs, report := filepath.Join(dir, "certs"), filepath.Join(dir, "report.jsonl")
	args := append(append([]string{"scan"}, corpus.flags...),
		"--certs", certs, "--report", report, "--log", filepath.Join(dir, "log"), filepath.Join(corpus.dir, "messages"))
	r := runBinary(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	recs := readReport(t, report)
	if len(recs) != len(corpus.files) {
		t.Fatalf("%d report lines, want %d", len(recs), len(corpus.files))
	}
	signingTime := 0
	for _, rec := range recs {
		name := filepath.Base(rec.Path)
		c, ok := corpus.files[name]
		if !ok {
			t.Errorf("report line for %s", rec.Path)
			continue
		}
		if string(rec.Reason) != c.Reason {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, c.Reason)
		}
		if rec.Outcome == output.OutcomeAccepted {
			if rec.From != c.Address || string(rec.Action) != c.Action {
				t.Errorf("%s: from %s action %s, want %s %s", name, rec.From, rec.Action, c.Address, c.Action)
			}
			want := rec.Cert
			if rec.EncryptionCert != nil {
				want = rec.EncryptionCert // a dual-key sender (TestScanEncryptionCertificates)
			}
			checkPEM(t, rec.CertFile, want.SHA256)
		}
		if strings.Contains(c.Name, "-signingtime-") {
			signingTime++
		}
	}
	if signingTime == 0 {
		t.Error("no *-signingtime-* case in the corpus")
	}
}

// Mail whose signingTime lies outside the signer certificate's validity, as
// mail clients send it when the certificate has expired or is not yet
// valid, gets the chain's verdict at --at from every live input: SMTP, the
// relay webhook and a Maildir delivery, into one running service.
func TestServeSigningTime(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t, filepath.Join(dir, "corpus"))
	byFrom := map[string]testcorpus.Case{} // the From address -> case
	var cases []testcorpus.Case
	for _, c := range corpus.files {
		if strings.Contains(c.Name, "-signingtime-") {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		t.Fatal("no *-signingtime-* case in the corpus")
	}
	// The corpus's trust bundle and DKIM keys come after the sample's, and
	// the later value of a flag wins.
	args := append(corpus.flags, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--http", "127.0.0.1:0")
	s := startServe(t, dir, args...)

	c, err := smtp.Dial(s.smtpAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	var posted []relayed
	for i, cc := range cases {
		from := fromAddress(t, cc.Data)
		byFrom[from] = cc
		if _, err := smtpSend(t, c, cc.Data); err != nil {
			t.Fatalf("%s: %v", cc.Name, err)
		}
		posted = append(posted, relayed{raw: cc.Data, base64: i%2 == 0, rcptTo: "certs@inbound.example.org"})
		deliver(t, s.maildir, cc.Name, cc.Data)
	}
	c.Quit()
	code, resp := postRelay(t, &http.Client{Timeout: 30 * time.Second}, "http://"+s.webhookAddr(t)+"/", "", sparkPostPayload(t, posted...))
	if code != 200 {
		t.Fatalf("relay POST: %d %s", code, resp)
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	seen := map[string]int{}
	for _, rec := range readReport(t, s.report) {
		cc, ok := byFrom[rec.From]
		if !ok {
			t.Errorf("report line from %q (%s)", rec.From, rec.Source)
			continue
		}
		seen[rec.Source]++
		if string(rec.Reason) != cc.Reason {
			t.Errorf("%s from %s: reason %s (%s), want %s", cc.Name, rec.Source, rec.Reason, rec.Detail, cc.Reason)
		}
		if rec.Outcome == output.OutcomeAccepted {
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
		}
	}
	for _, source := range []string{"smtp", "webhook", "maildir"} {
		if seen[source] != len(cases) {
			t.Errorf("%d report lines from %s, want %d", seen[source], source, len(cases))
		}
	}
}

// fromAddress returns the From address of a corpus message, lower case, as
// the report gives it.
func fromAddress(t *testing.T, msg []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(msg), "\r\n") {
		if v, ok := strings.CutPrefix(line, "From: "); ok {
			return strings.ToLower(strings.TrimSpace(v))
		}
		if line == "" {
			break
		}
	}
	t.Fatalf("no From in %.200q", msg)
	return ""
}

// scan --reference-path (no CMS fast path, no chain link cache) gives the
// sample the verdicts a plain scan gives (expected.tsv, TestScanSample), and
// its log says which path it took. verify TestReferencePathCorpus compares
// the two paths in detail.
func TestScanReferencePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	report, log := filepath.Join(dir, "report.jsonl"), filepath.Join(dir, "log")
	args := append(append([]string{"scan"}, sampleFlags()...), "--reference-path",
		"--certs", filepath.Join(dir, "certs"), "--report", report, "--log", log, sampleDir+"/messages")
	if r := runBinary(t, args...); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if data, err := os.ReadFile(log); err != nil || !strings.Contains(string(data), "verifying on the reference path") {
		t.Errorf("the log does not say it is on the reference path (%v)", err)
	}
	want := expectedSample(t)
	recs := readReport(t, report)
	if len(recs) != len(want) {
		t.Fatalf("%d report lines, want %d", len(recs), len(want))
	}
	for _, rec := range recs {
		name := filepath.Base(rec.Path)
		if string(rec.Reason) != want[name] {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, want[name])
		}
		if rec.Outcome == output.OutcomeAccepted && (rec.Action != "stored" || rec.Cert == nil) {
			t.Errorf("%s: accepted, action %q, certificate %v", name, rec.Action, rec.Cert)
		}
	}
}
