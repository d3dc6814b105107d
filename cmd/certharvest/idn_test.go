package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// idnCorpus writes the corpus and returns its internationalised cases (a
// UTF-8 From or certificate address) by file name, and the folder that
// holds only them.
func idnCorpus(t *testing.T, dir string) (*corpusDir, map[string]testcorpus.Case, string) {
	t.Helper()
	corpus := writeCorpus(t, filepath.Join(dir, "corpus"))
	only := filepath.Join(dir, "idn")
	if err := os.MkdirAll(only, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string]testcorpus.Case{}
	for name, c := range corpus.files {
		if !strings.Contains(c.Name, "smtputf8") && !strings.Contains(c.Name, "idn") && !strings.Contains(c.Name, "utf8") {
			continue
		}
		cases[name] = c
		if err := os.WriteFile(filepath.Join(only, name), c.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(cases) < 10 {
		t.Fatalf("%d internationalised cases", len(cases))
	}
	return corpus, cases, only
}

// Internationalised addresses through the binary: scan accepts the
// SmtpUTF8Mailbox cases and refuses the others with their reasons; the
// certificates are stored under NFC UTF-8 local part and A-label domain;
// list, show (given the U-label spelling) and export read them.
func TestScanInternationalised(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	corpus, cases, only := idnCorpus(t, dir)
	certs, report := filepath.Join(dir, "certs"), filepath.Join(dir, "report.jsonl")
	r := runBinary(t, append(append([]string{"scan"}, corpus.flags...), "--certs", certs, "--report", report, "--quiet", only)...)
	if r.code != 0 {
		t.Fatalf("scan: exit %d\n%s", r.code, r.stderr)
	}
	var stored []string
	for _, rec := range readReport(t, report) {
		c := cases[filepath.Base(rec.Path)]
		if string(rec.Reason) != c.Reason {
			t.Errorf("%s: %s (%s), want %s", c.Name, rec.Reason, rec.Detail, c.Reason)
		}
		if rec.Outcome == output.OutcomeAccepted {
			if rec.From != c.Address || rec.CertFile != filepath.Join(certs, c.Address+".crt") {
				t.Errorf("%s: from %q file %q, want %q", c.Name, rec.From, rec.CertFile, c.Address)
			}
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
			stored = append(stored, c.Address)
		}
	}
	slices.Sort(stored)
	if !slices.Contains(stored, "jörg@"+testcorpus.IDNDomain) || !slices.Contains(stored, "anna@"+testcorpus.IDNDomain) {
		t.Fatalf("stored %q", stored)
	}

	r = runBinary(t, "list", "--certs", certs, "--json")
	var list []struct{ Address string }
	if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil {
		t.Fatalf("list: exit %d %v\n%s", r.code, err, r.stderr)
	}
	var listed []string
	for _, c := range list {
		listed = append(listed, c.Address)
	}
	if !slices.Equal(listed, stored) {
		t.Errorf("list %q, want %q", listed, stored)
	}
	if r = runBinary(t, "list", "--certs", certs); r.code != 0 || !strings.Contains(r.stdout, "jörg@"+testcorpus.IDNDomain) {
		t.Errorf("list table: exit %d\n%s", r.code, r.stdout)
	}
	r = runBinary(t, "show", "--certs", certs, "jörg@"+testcorpus.IDNDomainU)
	if r.code != 0 || !strings.Contains(r.stdout, "Addresses:    jörg@"+testcorpus.IDNDomain) {
		t.Errorf("show: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runBinary(t, "show", "--certs", certs, "Jörg@"+testcorpus.IDNDomainU); r.code != 1 {
		t.Errorf("show Jörg@ (another address): exit %d\n%s", r.code, r.stderr)
	}
	r = runBinary(t, "export", "--certs", certs, "--format", "smimea")
	if r.code != 0 || strings.Count(r.stdout, "._smimecert.") != len(stored) || !strings.Contains(r.stdout, "; jörg@"+testcorpus.IDNDomain+"\n") {
		t.Errorf("export smimea: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// The live input: mail from an internationalised address arrives over SMTP
// as an SMTPUTF8 transaction (MAIL FROM:<jörg@bücher.example> SMTPUTF8)
// and gets the verdict scan gives it; the lookup API finds the stored
// certificate by the U-label spelling.
func TestServeSMTPUTF8(t *testing.T) {
	dir := t.TempDir()
	corpus, cases, _ := idnCorpus(t, dir)
	tokenFile := filepath.Join(dir, "lookup-token")
	os.WriteFile(tokenFile, []byte("lk-idn-5e1f\n"), 0o600)
	args := append(corpus.flags, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org",
		"--http", "127.0.0.1:0", "--lookup-token-file", tokenFile)
	s := startServe(t, dir, args...)

	c, err := smtp.Dial(s.smtpAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	byFrom := map[string]testcorpus.Case{}
	for _, cc := range cases {
		from := headerFrom(t, cc.Data)
		byFrom[from] = cc
		if err := c.Mail(from, &smtp.MailOptions{UTF8: true}); err != nil {
			t.Fatalf("%s: MAIL FROM:<%s> SMTPUTF8: %v", cc.Name, from, err)
		}
		if err := c.Rcpt("harvest@inbound.example.org", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(cc.Data)
		if err := w.Close(); err != nil {
			t.Fatalf("%s: %v", cc.Name, err)
		}
	}
	c.Quit()
	s.waitDrained(t, 30*time.Second)
	waitLines(t, s.report, len(cases))

	accepted := 0
	for _, rec := range readReport(t, s.report) {
		cc, ok := byFrom[rec.EnvelopeFrom]
		if !ok || rec.Source != "smtp" {
			t.Errorf("report line from %q (%s)", rec.EnvelopeFrom, rec.Source)
			continue
		}
		if string(rec.Reason) != cc.Reason {
			t.Errorf("%s: %s (%s), want %s", cc.Name, rec.Reason, rec.Detail, cc.Reason)
		}
		if rec.Outcome == output.OutcomeAccepted {
			accepted++
			if rec.From != cc.Address {
				t.Errorf("%s: from %q, want %q", cc.Name, rec.From, cc.Address)
			}
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
		}
	}
	if accepted == 0 {
		t.Error("nothing accepted")
	}
	base := "http://" + s.webhookAddr(t)
	client := &http.Client{Timeout: 30 * time.Second}
	code, _, body := lookupGet(t, client, base+"/certs/"+url.PathEscape("jörg@"+testcorpus.IDNDomainU)+"?format=json", "lk-idn-5e1f")
	if code != 200 || !strings.Contains(string(body), `"address":"jörg@`+testcorpus.IDNDomain+`"`) {
		t.Errorf("lookup: %d %s", code, body)
	}
	s.stop(t)
}

// headerFrom returns the addr-spec of a message's From field, as written.
func headerFrom(t *testing.T, msg []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(msg), "\r\n") {
		if v, ok := strings.CutPrefix(line, "From: "); ok {
			if i := strings.LastIndexByte(v, '<'); i >= 0 {
				v = strings.TrimSuffix(v[i+1:], ">")
			}
			return strings.TrimSpace(v)
		}
		if line == "" {
			break
		}
	}
	t.Fatalf("no From in %.200q", msg)
	return ""
}
