package ingest_test

import (
	"strings"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/emersion/go-smtp"
)

// The listener advertises SMTPUTF8 (RFC 6531), so that mail from an
// internationalised address is sent to it at all; such a transaction is
// delivered as its bytes, its envelope in UTF-8 kept, its trace header
// saying UTF8SMTP (RFC 6531 §4.3).
func TestSMTPUTF8(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	c := f.dial(t)
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("SMTPUTF8 not advertised")
	}
	msg := "From: Jörg Müller <jörg@bücher.example>\r\nTo: harvest@inbound.example.org\r\nSubject: Grüße\r\n\r\nbody\r\n"
	if err := c.Mail("jörg@bücher.example", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("harvest@inbound.example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(msg))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	name, _ := strings.CutPrefix(strings.TrimPrefix(resp.StatusText, "2.0.0 "), "queued as ")
	m, err := load(f.spool, name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(m.Raw), "\r\n\tid ")
	if !strings.HasSuffix(head, " with UTF8SMTP") || !strings.HasSuffix(body, "\r\n"+msg) {
		t.Errorf("stored %q", m.Raw)
	}
	if m.EnvelopeFrom != "jörg@bücher.example" {
		t.Errorf("envelope from %q", m.EnvelopeFrom)
	}
	// The next transaction, without SMTPUTF8, is ESMTP again.
	reply, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = load(f.spool, strings.TrimPrefix(reply, "queued as "), 1<<20); err != nil || !strings.Contains(string(m.Raw), " with ESMTP\r\n") {
		t.Errorf("%v: %q", err, m.Raw)
	}
}
