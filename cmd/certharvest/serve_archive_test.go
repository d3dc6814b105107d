package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testfs"
	"github.com/emersion/go-smtp"
)

// junkMessage is an unsigned message of about size bytes, distinct for n:
// what anyone on the internet can send to certharvest's MX.
func junkMessage(n, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: junk%d@example.net\r\nTo: harvest@inbound.example.org\r\nSubject: junk %d\r\nMessage-ID: <junk%d@example.net>\r\n\r\n", n, n, n)
	line := strings.Repeat("x", 76) + "\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// sendSMTP sends one message over a connection of its own and returns the
// reply code to its DATA (250 when queued).
func sendSMTP(t *testing.T, addr string, msg []byte) int {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	code := func(err error) int {
		if e, ok := errors.AsType[*smtp.SMTPError](err); ok {
			return e.Code
		}
		t.Fatal(err)
		return 0
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		return code(err)
	}
	if err := c.Rcpt("harvest@inbound.example.org", nil); err != nil {
		return code(err)
	}
	w, err := c.Data()
	if err != nil {
		return code(err)
	}
	w.Write(msg)
	if _, err := w.CloseWithResponse(); err != nil {
		return code(err)
	}
	c.Quit()
	return 250
}

// waitReported waits until the report has n lines.
func (s *service) waitReported(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if got := countLines(s.report); got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d report lines after %v, want %d\n%s", countLines(s.report), timeout, n, s.ownLog())
}

// Junk does not fill the spool's disk for ever (issue 13, item 3): on a
// spool of 2 MiB, twelve unsigned messages of 250 KB sent one after the
// other are all queued (250) and reported dkim_missing. Before the archive
// gave way, the seventh filled the disk with rejected mail kept in cur/, and
// every later sender got 451 (and /healthz 503 "spool low on space").
func TestFaultSpoolFullOfRejected(t *testing.T) {
	small := testfs.MountTmpfs(t, "2m")
	dir := t.TempDir()
	maildir := filepath.Join(small, "Maildir")
	s := startServe(t, dir, "--maildir", maildir, "--max-size", "300KiB",
		"--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org", "--smtp-hostname", "mx.test",
		"--http", "127.0.0.1:0", "--max-request-bytes", "400KiB")
	s.maildir = maildir // the flag given last wins
	addr := s.smtpAddr(t)
	for i := range 12 {
		if code := sendSMTP(t, addr, junkMessage(i, 250_000)); code != 250 {
			t.Fatalf("message %d: SMTP %d, want 250\n%s", i+1, code, s.ownLog())
		}
		// One after the other: each is verified and archived before the
		// next is sent, so what fills the disk is rejected mail only.
		s.waitReported(t, i+1, 20*time.Second)
	}
	resp, err := http.Get("http://" + s.webhookAddr(t) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d with a disk full of rejected mail, want 200\n%s", resp.StatusCode, s.ownLog())
	}
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 12 {
		t.Fatalf("%d report lines, want 12", len(recs))
	}
	for _, rec := range recs {
		if rec.Reason != "dkim_missing" || rec.Source != "smtp" {
			t.Errorf("%s: %s from %s, want dkim_missing from smtp", rec.Path, rec.Reason, rec.Source)
		}
	}
}

// countLines counts the lines of the file at path (0 when absent).
func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}

// curName is the name serve gives the message name in cur/: the Maildir
// flags S, and T (trashed) for a rejected message.
func curName(name string, accepted bool) string {
	if accepted {
		return name + ":2,S"
	}
	return name + ":2,ST"
}

// inCur reports whether the message name is archived in maildir's cur/,
// whatever its verdict.
func inCur(maildir, name string) bool {
	for _, accepted := range []bool{true, false} {
		if _, err := os.Stat(filepath.Join(maildir, "cur", curName(name, accepted))); err == nil {
			return true
		}
	}
	return false
}
