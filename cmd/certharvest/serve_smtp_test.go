package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certharvest/certharvest/output"
)

// smtpAddr reads the listener's address from the service's log.
func (s *service) smtpAddr(t *testing.T) string {
	t.Helper()
	return s.listeningAddr(t, "SMTP listening on ")
}

// smtpCRLF is what an SMTP client sends for data: every line ends in CRLF,
// and the last line too.
func smtpCRLF(data []byte) []byte {
	out := bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// Every sample message sent over SMTP gets the verdict it gets from a file
// (expected.tsv): the Received: header the listener adds changes no DKIM
// result. The stored message is the trace header and the bytes sent.
func TestServeSMTP(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-hostname", "mx.test")
	addr := s.smtpAddr(t)

	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	msgs := map[string][]byte{}
	for name := range expectedSample(t) {
		data, err := os.ReadFile(filepath.Join(sampleDir, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		msgs[name] = data
	}
	names := make([]string, 0, len(msgs))
	for name := range msgs {
		names = append(names, name)
	}
	sort.Strings(names)
	sent := map[string]string{} // spool name -> sample file
	for _, name := range names {
		resp, err := smtpSend(t, c, msgs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		spoolName, ok := strings.CutPrefix(resp.StatusText, "2.0.0 queued as ")
		if !ok {
			t.Fatalf("%s: reply %q", name, resp.StatusText)
		}
		sent[spoolName] = name
	}
	c.Quit()
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	want := expectedSample(t)
	recs := readReport(t, s.report)
	if len(recs) != len(msgs) {
		t.Fatalf("%d report lines, want %d", len(recs), len(msgs))
	}
	stored := 0
	for _, rec := range recs {
		spoolName := filepath.Base(rec.Path)
		name := sent[spoolName]
		if name == "" {
			t.Errorf("report line for %s, which was not sent", rec.Path)
			continue
		}
		if rec.Source != "smtp" || rec.EnvelopeFrom != "sender@example.net" ||
			strings.Join(rec.EnvelopeTo, ",") != "harvest@inbound.example.org" || !strings.HasPrefix(rec.RemoteAddr, "127.0.0.1:") ||
			rec.Context["helo"] != "client.example.net" || rec.Context["tls"] != "no" {
			t.Errorf("%s: context %q %q %q %q %v", name, rec.Source, rec.EnvelopeFrom, rec.EnvelopeTo, rec.RemoteAddr, rec.Context)
		}
		if string(rec.Reason) != want[name] {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, want[name])
		}
		if rec.Outcome == output.OutcomeAccepted {
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
			stored++
		}
		data, err := os.ReadFile(filepath.Join(s.maildir, "cur", curName(spoolName, rec.Outcome == output.OutcomeAccepted)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		data = unstamped(t, data, rec)
		if len(bytes.TrimSpace(msgs[name])) == 0 {
			// No header fields, no trace header: the verdict stays the
			// same as from the file.
			if string(data) != "\r\n" {
				t.Errorf("%s: stored %q, want the bare CRLF the client sends", name, data)
			}
			continue
		}
		if !bytes.HasPrefix(data, []byte("Received: from client.example.net ([127.0.0.1])\r\n\tby mx.test (certharvest) with ESMTP\r\n")) ||
			!bytes.HasSuffix(data, smtpCRLF(msgs[name])) ||
			len(data)-len(smtpCRLF(msgs[name])) > 200 {
			t.Errorf("%s: stored message is not a trace header and the bytes sent:\n%.300q", name, data)
		}
	}
	if _, err := os.Stat(filepath.Join(s.certs, "rsa.detached@example.com.crt")); err != nil {
		t.Errorf("01-ok-rsa-detached's certificate: %v", err)
	}
	if stored != 12 {
		t.Errorf("%d certificates stored, want 12", stored)
	}
	log, _ := os.ReadFile(s.log)
	for _, line := range []string{"SMTP connection from 127.0.0.1:", "SMTP 250 queued as ", "SMTP connection closed", "SMTP listener stopped"} {
		if !bytes.Contains(log, []byte(line)) {
			t.Errorf("log lacks %q", line)
		}
	}
}

// swaks (Debian's swaks package), a real SMTP client, against the built
// binary with STARTTLS required.
func TestServeSMTPSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("swaks is not installed (apt-get install swaks; .ci/run does it)")
		}
		t.Skip("swaks is not installed (apt-get install swaks)")
	}
	dir := t.TempDir()
	certFile, keyFile, _ := writeTLSPair(t, dir, "mx.test")
	s := startServe(t, dir, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org",
		"--smtp-rcpt", "harvest@inbound.example.org", "--smtp-require-tls", "--tls-cert", certFile, "--tls-key", keyFile)
	addr := s.smtpAddr(t)
	msg := filepath.Join(sampleDir, "messages", "01-ok-rsa-detached.eml")

	for _, tt := range []struct {
		name string
		args []string
		ok   bool
		want string
	}{
		{"delivered over STARTTLS", []string{"--tls", "--to", "harvest@inbound.example.org", "--data", "@" + msg}, true, "250 2.0.0 queued as "},
		{"no STARTTLS", []string{"--to", "harvest@inbound.example.org", "--data", "@" + msg}, false, "530 5.7.0"},
		{"unknown recipient", []string{"--tls", "--to", "nobody@inbound.example.org", "--data", "@" + msg}, false, "550 5.1.1"},
		{"relay attempt", []string{"--tls", "--to", "victim@example.com", "--data", "@" + msg}, false, "550 5.7.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--server", addr, "--ehlo", "client.example.net", "--from", "sender@example.net",
				"--timeout", "20"}, tt.args...)
			out, err := exec.Command(swaks, args...).CombinedOutput()
			if tt.ok != (err == nil) || !bytes.Contains(out, []byte(tt.want)) {
				t.Errorf("swaks %s: %v, want %q in\n%s", strings.Join(args, " "), err, tt.want, out)
			}
		})
	}
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 {
		t.Fatalf("%d report lines, want 1", len(recs))
	}
	if r := recs[0]; r.Source != "smtp" || r.Reason != "ok" || r.Context["tls"] != "yes" || r.Context["helo"] != "client.example.net" {
		t.Errorf("report line %+v", r)
	}
	checkPEM(t, recs[0].CertFile, recs[0].Cert.SHA256)
	log, _ := os.ReadFile(s.log)
	for _, line := range []string{"SMTP STARTTLS: TLS 1.3", "SMTP 530 5.7.0 refused", "SMTP 550 5.1.1 refused", "SMTP 550 5.7.1 refused"} {
		if !bytes.Contains(log, []byte(line)) {
			t.Errorf("log lacks %q", line)
		}
	}
}

func TestServeSMTPUsageErrors(t *testing.T) {
	dir := t.TempDir()
	_, keyFile, _ := writeTLSPair(t, dir, "mx.test")
	base := append([]string{"serve", "--maildir", filepath.Join(dir, "Maildir"), "--log", filepath.Join(dir, "log")}, sampleFlags()...)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"no domain", []string{"--smtp", "127.0.0.1:0"}},
		{"domain without --smtp", []string{"--smtp-domain", "inbound.example.org"}},
		{"require TLS without certificate", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-require-tls"}},
		{"recipient outside the domains", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-rcpt", "a@example.com"}},
		{"recipient without domain", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-rcpt", "harvest"}},
		{"unicode domain", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "bücher.example"}},
		{"zero connections", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-max-conns", "0"}},
		{"zero connections per address", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-max-conns-per-ip", "0"}},
		{"no session time", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-max-session", "0s"}},
		{"no busy idle time", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-busy-idle", "0s"}},
		{"key without certificate", []string{"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--tls-key", keyFile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, append(append([]string(nil), base...), tt.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
			}
		})
	}
}

// smtpSend sends data in one mail transaction from sender@example.net to
// harvest@inbound.example.org, and returns the reply to its end of data.
func smtpSend(t *testing.T, c *smtp.Client, data []byte) (*smtp.DataResponse, error) {
	t.Helper()
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("harvest@inbound.example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	return w.CloseWithResponse()
}
