package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/emersion/go-smtp"
)

// smtpLogBuffer is a log destination tests can read while the server writes.
type smtpLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *smtpLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *smtpLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// smtpFixture is a started SMTP listener over a fresh spool.
type smtpFixture struct {
	srv   *ingest.SMTPServer
	spool *maildir.Spool
	addr  string
	log   *smtpLogBuffer
}

var smtpTestTime = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

// startSMTP starts a listener on 127.0.0.1 for inbound.example.org with
// opts' other settings.
func startSMTP(t *testing.T, opts ingest.SMTPOptions) *smtpFixture {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	if opts.Hostname == "" {
		opts.Hostname = "mx.test"
	}
	if opts.Domains == nil {
		opts.Domains = []string{"inbound.example.org"}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	opts.Now = func() time.Time { return smtpTestTime }
	spool, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &smtpLogBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := ingest.NewSMTPServer(spool, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &smtpFixture{srv: srv, spool: spool, log: logBuf}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.addr = srv.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		spool.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", f.log)
		}
	})
	return f
}

// dial connects a go-smtp client and says EHLO.
func (f *smtpFixture) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	return c
}

// newMessages lists new/.
func (f *smtpFixture) newMessages(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.spool.Dir(), maildir.SubNew))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// send runs one transaction and returns the reply to the end of DATA.
func smtpSend(c *smtp.Client, from string, to []string, msg []byte) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	// The client keeps the enhanced code in the text.
	return strings.TrimPrefix(resp.StatusText, "2.0.0 "), nil
}

// wantSMTPError checks that err is the reply code.enhanced.
func wantSMTPError(t *testing.T, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want SMTP %d %v", err, code, enhanced)
	}
	if se.Code != code || se.EnhancedCode != enhanced {
		t.Fatalf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enhanced)
	}
}

const smtpTestMessage = "From: Robin <robin@example.com>\r\nTo: harvest@inbound.example.org\r\nSubject: test\r\n\r\nbody\r\n"

func TestSMTPRecipients(t *testing.T) {
	for _, tt := range []struct {
		name    string
		rcpts   []string // --smtp-rcpt
		to      string
		code    int
		enhance smtp.EnhancedCode
	}{
		{"accepted domain", nil, "anyone@inbound.example.org", 250, smtp.EnhancedCode{}},
		{"domain case-insensitive", nil, "anyone@INBOUND.Example.ORG", 250, smtp.EnhancedCode{}},
		{"listed address", []string{"harvest@inbound.example.org"}, "Harvest@inbound.example.org", 250, smtp.EnhancedCode{}},
		{"unknown address", []string{"harvest@inbound.example.org"}, "other@inbound.example.org", 550, smtp.EnhancedCode{5, 1, 1}},
		{"relay attempt", nil, "victim@example.com", 550, smtp.EnhancedCode{5, 7, 1}},
		{"relay to a subdomain", nil, "victim@sub.inbound.example.org", 550, smtp.EnhancedCode{5, 7, 1}},
		{"relay by source route", nil, "@inbound.example.org:victim@example.com", 550, smtp.EnhancedCode{5, 7, 1}},
		{"relay by percent hack", nil, "victim%example.com@other.example", 550, smtp.EnhancedCode{5, 7, 1}},
		{"postmaster without domain", []string{"harvest@inbound.example.org"}, "Postmaster", 250, smtp.EnhancedCode{}},
		{"postmaster of an accepted domain", []string{"harvest@inbound.example.org"}, "postmaster@inbound.example.org", 250, smtp.EnhancedCode{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startSMTP(t, ingest.SMTPOptions{Recipients: tt.rcpts})
			c := f.dial(t)
			if err := c.Mail("robin@example.com", nil); err != nil {
				t.Fatal(err)
			}
			err := c.Rcpt(tt.to, nil)
			if tt.code == 250 {
				if err != nil {
					t.Fatalf("RCPT %s: %v", tt.to, err)
				}
				return
			}
			wantSMTPError(t, err, tt.code, tt.enhance)
			// The refusal is logged, with the reply.
			want := fmt.Sprintf("SMTP %d %d.%d.%d refused", tt.code, tt.enhance[0], tt.enhance[1], tt.enhance[2])
			// (go-smtp drops a source route: the address is what follows it.)
			addr := tt.to[strings.LastIndexByte(tt.to, ':')+1:]
			if !strings.Contains(f.log.String(), want) || !strings.Contains(f.log.String(), "rcpt="+addr) {
				t.Errorf("log lacks %q for %s:\n%s", want, tt.to, f.log)
			}
			// Nothing can be sent without an accepted recipient.
			if _, err := c.Data(); err == nil {
				t.Error("DATA accepted without a recipient")
			}
			if n := f.newMessages(t); len(n) != 0 {
				t.Errorf("stored %v", n)
			}
		})
	}
}

func TestNewSMTPServerChecksOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts ingest.SMTPOptions
	}{
		{"no domain", ingest.SMTPOptions{}},
		{"recipient outside the domains", ingest.SMTPOptions{Domains: []string{"a.example"}, Recipients: []string{"x@b.example"}}},
		{"recipient without domain", ingest.SMTPOptions{Domains: []string{"a.example"}, Recipients: []string{"x"}}},
		{"require TLS without certificate", ingest.SMTPOptions{Domains: []string{"a.example"}, RequireTLS: true}},
		{"address as domain", ingest.SMTPOptions{Domains: []string{"x@a.example"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ingest.NewSMTPServer(nil, tt.opts); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// An accepted message is in new/ before the 250, exactly as sent after a
// Received: header, with its envelope beside it.
func TestSMTPDeliver(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	c := f.dial(t)
	// Several messages per session, and a recipient given twice.
	for i := range 3 {
		reply, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage))
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(reply, "queued as ")
		if !ok {
			t.Fatalf("reply %q, want queued as <name>", reply)
		}
		// Durable before the reply: the file is there when the client
		// reads it.
		m, err := load(f.spool, name, 1<<20)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		wantTrace := "Received: from client.example.net ([127.0.0.1])\r\n" +
			"\tby mx.test (certharvest) with ESMTP\r\n" +
			"\tid " + m.Extra["smtp_session"] + " for <harvest@inbound.example.org>; Mon, 01 Jun 2026 10:00:00 +0000\r\n"
		if string(m.Raw) != wantTrace+smtpTestMessage {
			t.Errorf("stored\n%q\nwant\n%q", m.Raw, wantTrace+smtpTestMessage)
		}
		if m.Source != "smtp" || m.EnvelopeFrom != "robin@example.com" || strings.Join(m.EnvelopeTo, ",") != "harvest@inbound.example.org" ||
			!strings.HasPrefix(m.RemoteAddr, "127.0.0.1:") || !m.Received.Equal(smtpTestTime) ||
			m.Extra["helo"] != "client.example.net" || m.Extra["tls"] != "no" || !strings.HasPrefix(m.Extra["smtp_session"], "smtp-") {
			t.Errorf("context: %+v", m)
		}
		if !strings.Contains(f.log.String(), "SMTP 250 queued as "+name) {
			t.Errorf("log lacks the 250 for %s", name)
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.newMessages(t)); n != 3 {
		t.Errorf("%d messages in new/, want 3", n)
	}
	// Two recipients, null reverse path (a bounce): no "for" clause.
	reply, err := smtpSend(c, "", []string{"a@inbound.example.org", "b@inbound.example.org"}, []byte(smtpTestMessage))
	if err != nil {
		t.Fatal(err)
	}
	m, err := load(f.spool, strings.TrimPrefix(reply, "queued as "), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(m.Raw[:bytes.Index(m.Raw, []byte(smtpTestMessage))], []byte(" for ")) {
		t.Errorf("trace names a recipient of several: %q", m.Raw)
	}
	if m.EnvelopeFrom != "" || len(m.EnvelopeTo) != 2 {
		t.Errorf("envelope %q %q", m.EnvelopeFrom, m.EnvelopeTo)
	}
	c.Quit()
	smtpWaitFor(t, func() bool { return strings.Contains(f.log.String(), "SMTP connection closed") })
	for _, want := range []string{"SMTP connection from 127.0.0.1:", "messages=4"} {
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// smtpWaitFor polls cond for up to 5 seconds.
func smtpWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

// smtpRawSession talks SMTP by hand, for what go-smtp's client will not send.
type smtpRawSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func smtpDialRaw(t *testing.T, addr string) *smtpRawSession {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &smtpRawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (s *smtpRawSession) reply() string {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading reply: %v (got %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// cmd sends raw bytes and returns the reply.
func (s *smtpRawSession) cmd(data string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.conn, data); err != nil {
		s.t.Fatal(err)
	}
	return s.reply()
}

// A bare-LF message (a sloppy client) gets a bare-LF trace header, so its
// line endings stay consistent; the message bytes are untouched.
func TestSMTPBareLFMessage(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO [127.0.0.1]\r\n")
	s.cmd("MAIL FROM:<robin@example.com>\r\n")
	s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	if r := s.cmd("DATA\r\n"); !strings.HasPrefix(r, "354") {
		t.Fatal(r)
	}
	msg := "From: robin@example.com\nSubject: lf\n\nbody\r\n"
	r := s.cmd(msg + ".\r\n")
	name, ok := strings.CutPrefix(r, "250 2.0.0 queued as ")
	if !ok {
		t.Fatal(r)
	}
	m, err := load(f.spool, name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := "Received: from [127.0.0.1] ([127.0.0.1])\n\tby mx.test (certharvest) with ESMTP\n\tid " +
		m.Extra["smtp_session"] + " for <harvest@inbound.example.org>; Mon, 01 Jun 2026 10:00:00 +0000\n" + msg
	if string(m.Raw) != want {
		t.Errorf("stored %q\nwant %q", m.Raw, want)
	}
}

// A message without header fields gets no trace header either: it would
// turn "no header" into "a header without From".
func TestSMTPNoTraceWithoutHeader(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	c := f.dial(t)
	for _, msg := range []string{"\r\nbody only\r\n", ""} {
		reply, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		m, err := load(f.spool, strings.TrimPrefix(reply, "queued as "), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		// The client ends the data with CRLF.
		if want := strings.TrimSuffix(msg, "\r\n") + "\r\n"; string(m.Raw) != want {
			t.Errorf("sent %q, stored %q", msg, m.Raw)
		}
	}
}

// BDAT (RFC 3030 CHUNKING, which go-smtp advertises) delivers like DATA;
// RSET in the middle of a BDAT transfer stores nothing.
func TestSMTPBDAT(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO client.example.net\r\n")
	s.cmd("MAIL FROM:<robin@example.com>\r\n")
	s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	half := len(smtpTestMessage) / 2
	if r := s.cmd(fmt.Sprintf("BDAT %d\r\n%s", half, smtpTestMessage[:half])); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	r := s.cmd(fmt.Sprintf("BDAT %d LAST\r\n%s", len(smtpTestMessage)-half, smtpTestMessage[half:]))
	name, ok := strings.CutPrefix(r, "250 2.0.0 queued as ")
	if !ok {
		t.Fatal(r)
	}
	m, err := load(f.spool, name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(m.Raw), "\r\n"+smtpTestMessage) || !strings.HasPrefix(string(m.Raw), "Received: ") {
		t.Errorf("stored %q", m.Raw)
	}

	s.cmd("MAIL FROM:<robin@example.com>\r\n")
	s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	s.cmd(fmt.Sprintf("BDAT %d\r\n%s", half, smtpTestMessage[:half]))
	if r := s.cmd("RSET\r\n"); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	smtpWaitFor(t, func() bool { return strings.Contains(f.log.String(), "message transfer interrupted") })
	if n := f.newMessages(t); len(n) != 1 {
		t.Errorf("new/ = %v, want the first message only", n)
	}
}

func TestSMTPOversize(t *testing.T) {
	const limit = 1000
	f := startSMTP(t, ingest.SMTPOptions{MaxMessageBytes: limit})
	c := f.dial(t)
	if size, ok := c.MaxMessageSize(); !ok || size != limit {
		t.Errorf("SIZE advertised %d %v, want %d", size, ok, limit)
	}
	big := []byte(smtpTestMessage + strings.Repeat("0123456789abcdef\r\n", 100))
	// Declared with SIZE (RFC 1870 §6.1): refused at MAIL.
	err := c.Mail("robin@example.com", &smtp.MailOptions{Size: int64(len(big))})
	wantSMTPError(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	// Not declared: refused at the end of DATA.
	_, err = smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, big)
	wantSMTPError(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	if n := f.newMessages(t); len(n) != 0 {
		t.Errorf("stored %v", n)
	}
	if !strings.Contains(f.log.String(), "SMTP 552 5.3.4 refused") {
		t.Errorf("refusal not logged")
	}
	// The session goes on: a message under the limit whose trace header
	// would take it over the limit is stored without it.
	small := []byte(smtpTestMessage + strings.Repeat("x", limit-len(smtpTestMessage)-10) + "\r\n")
	reply, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, small)
	if err != nil {
		t.Fatal(err)
	}
	m, err := load(f.spool, strings.TrimPrefix(reply, "queued as "), limit)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Raw, small) {
		t.Errorf("stored %d bytes, want the %d sent", len(m.Raw), len(small))
	}
}

func TestSMTPTooManyRecipients(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{MaxRecipients: 3})
	c := f.dial(t)
	if err := c.Mail("robin@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Rcpt(fmt.Sprintf("r%d@inbound.example.org", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Rcpt("r3@inbound.example.org", nil)
	wantSMTPError(t, err, 452, smtp.EnhancedCode{4, 5, 3})
	// The first three still get the message (RFC 5321 §4.5.3.1.10).
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, smtpTestMessage)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names := f.newMessages(t)
	if len(names) != 1 {
		t.Fatalf("new/ = %v", names)
	}
	m, _ := load(f.spool, names[0], 1<<20)
	if len(m.EnvelopeTo) != 3 {
		t.Errorf("envelope to %v", m.EnvelopeTo)
	}
}

// smtpSelfSigned returns a server certificate for mx.test and a pool trusting
// it.
func smtpSelfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	srv, err := testcorpus.SelfSignedTLS("mx.test")
	if err != nil {
		t.Fatal(err)
	}
	return srv.Cert, srv.Pool
}

func TestSMTPStartTLS(t *testing.T) {
	cert, pool := smtpSelfSigned(t)
	f := startSMTP(t, ingest.SMTPOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, RequireTLS: true})
	c := f.dial(t)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	// RFC 3207 §4: nothing but EHLO, STARTTLS, NOOP, QUIT before TLS.
	err := c.Mail("robin@example.com", nil)
	wantSMTPError(t, err, 530, smtp.EnhancedCode{5, 7, 0})
	if !strings.Contains(f.log.String(), "SMTP 530 5.7.0 refused") {
		t.Error("refusal not logged")
	}
	c.Close()

	c, err = smtp.DialStartTLS(f.addr, &tls.Config{ServerName: "mx.test", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS")
	}
	reply, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage))
	if err != nil {
		t.Fatal(err)
	}
	m, err := load(f.spool, strings.TrimPrefix(reply, "queued as "), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Extra["tls"] != "yes" {
		t.Errorf("context tls=%q", m.Extra["tls"])
	}
	if !bytes.Contains(m.Raw, []byte("with ESMTPS (TLS 1.3 TLS_")) {
		t.Errorf("trace header does not show TLS: %q", m.Raw[:200])
	}
	if !strings.Contains(f.log.String(), "SMTP STARTTLS: TLS 1.3") {
		t.Error("TLS not logged")
	}
}

// When the spool cannot be written, the client is told to retry (451
// 4.3.0) and nothing is left in the spool; the next MAIL is refused until
// the spool works again.
func TestSMTPSpoolUnwritable(t *testing.T) {
	t.Run("write fails", func(t *testing.T) {
		f := startSMTP(t, ingest.SMTPOptions{})
		// new/ becomes a file: every delivery fails, even as root
		// (written there unnamed, or renamed there from tmp/).
		newDir := filepath.Join(f.spool.Dir(), maildir.SubNew)
		if err := os.Rename(newDir, newDir+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(newDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		c := f.dial(t)
		_, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage))
		wantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
		smtpCheckSpoolEmpty(t, f.spool)
		if !strings.Contains(f.log.String(), "SMTP 451 4.3.0 not queued") {
			t.Error("failure not logged")
		}
		// While it is broken, MAIL is refused before the data is sent.
		err = c.Mail("robin@example.com", nil)
		wantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
		// Repaired: accepted again.
		os.Remove(newDir)
		if err := os.Rename(newDir+".away", newDir); err != nil {
			t.Fatal(err)
		}
		if _, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage)); err != nil {
			t.Fatalf("after repair: %v", err)
		}
	})
	t.Run("sync fails", func(t *testing.T) {
		f := startSMTP(t, ingest.SMTPOptions{})
		// A closed spool cannot sync its folders: Deliver removes what it
		// wrote.
		f.spool.Close()
		c := f.dial(t)
		_, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage))
		wantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
		smtpCheckSpoolEmpty(t, f.spool)
	})
}

func smtpCheckSpoolEmpty(t *testing.T, s *maildir.Spool) {
	t.Helper()
	for _, sub := range []string{maildir.SubTmp, maildir.SubNew, maildir.SubCur, maildir.SubMeta} {
		entries, _ := os.ReadDir(filepath.Join(s.Dir(), sub))
		if len(entries) != 0 {
			t.Errorf("%s/ holds %d files", sub, len(entries))
		}
	}
}

// Connections beyond the cap are answered 421 4.7.0 and closed; the slot is
// free again once a connection ends.
func TestSMTPConnectionLimit(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{MaxConns: 2})
	a, b := smtpDialRaw(t, f.addr), smtpDialRaw(t, f.addr)
	for _, s := range []*smtpRawSession{a, b} {
		if r := s.reply(); !strings.HasPrefix(r, "220 mx.test ") {
			t.Fatalf("banner %q", r)
		}
	}
	c := smtpDialRaw(t, f.addr)
	if r := c.reply(); !strings.HasPrefix(r, "421 4.7.0 ") {
		t.Fatalf("third connection: %q", r)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("third connection left open: %v", err)
	}
	smtpWaitFor(t, func() bool { return strings.Contains(f.log.String(), "SMTP 421 4.7.0 refused connection") })
	a.cmd("QUIT\r\n")
	smtpWaitFor(t, func() bool { return strings.Count(f.log.String(), "SMTP connection closed") == 1 })
	d := smtpDialRaw(t, f.addr)
	if r := d.reply(); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("after a slot freed: %q", r)
	}
}

// One address cannot take every slot: beyond MaxConnsPerIP its connections
// get 421 4.7.0, while another address is still served; loopback is not
// exempt.
func TestSMTPConnectionLimitPerIP(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{MaxConns: 10, MaxConnsPerIP: 2})
	a, b := smtpDialRaw(t, f.addr), smtpDialRaw(t, f.addr)
	for _, s := range []*smtpRawSession{a, b} {
		if r := s.reply(); !strings.HasPrefix(r, "220 mx.test ") {
			t.Fatalf("banner %q", r)
		}
	}
	c := smtpDialRaw(t, f.addr)
	if r := c.reply(); r != "421 4.7.0 mx.test too many connections from your address, try again later" {
		t.Fatalf("third connection from 127.0.0.1: %q", r)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("third connection left open: %v", err)
	}
	smtpWaitFor(t, func() bool {
		return strings.Contains(f.log.String(), "refused connection from 127.0.0.1:") &&
			strings.Contains(f.log.String(), `too many connections from your address" max_conns_per_ip=2`)
	})
	// Another address (127.0.0.0/8 is all loopback on Linux) is served.
	d := smtpDialRawFrom(t, "127.0.0.2", f.addr)
	if r := d.reply(); !strings.HasPrefix(r, "220 mx.test ") {
		t.Fatalf("connection from 127.0.0.2: %q", r)
	}
	// A slot of the first address is free again once a connection ends.
	a.cmd("QUIT\r\n")
	smtpWaitFor(t, func() bool { return strings.Count(f.log.String(), "SMTP connection closed") == 1 })
	e := smtpDialRaw(t, f.addr)
	if r := e.reply(); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("after a slot freed: %q", r)
	}
}

// smtpDialRawFrom is smtpDialRaw from a chosen local address.
func smtpDialRawFrom(t *testing.T, local, addr string) *smtpRawSession {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", local, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &smtpRawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// A client that talks without sending mail is closed after
// smtpMaxJunkCommands commands (421 4.7.0), and commands it pipelined
// behind are not acted on; a message queued starts the count again.
func TestSMTPJunkCommandLimit(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO client.example.net\r\n") // junk 1
	for i := range 60 {
		cmd := []string{"NOOP", "RSET", "VRFY harvest", "HELP"}[i%4]
		s.cmd(cmd + "\r\n")
	}
	// A message queued: the client is not idling.
	for _, c := range []string{"MAIL FROM:<robin@example.com>", "RCPT TO:<harvest@inbound.example.org>", "DATA"} {
		if r := s.cmd(c + "\r\n"); r[0] != '2' && r[0] != '3' {
			t.Fatalf("%s: %q", c, r)
		}
	}
	if r := s.cmd(smtpTestMessage + ".\r\n"); !strings.HasPrefix(r, "250 2.0.0 queued as ") {
		t.Fatalf("end of data: %q", r)
	}
	for i := range ingest.SMTPMaxJunkCommands - 1 {
		if r := s.cmd("NOOP\r\n"); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("NOOP %d: %q", i, r)
		}
	}
	// The last one allowed is answered, then the connection ends, with
	// a transaction pipelined behind it left alone.
	r := s.cmd("NOOP\r\nMAIL FROM:<robin@example.com>\r\nRCPT TO:<harvest@inbound.example.org>\r\nDATA\r\n" +
		smtpTestMessage + ".\r\n")
	if !strings.HasPrefix(r, "250 ") {
		t.Fatalf("NOOP %d: %q", ingest.SMTPMaxJunkCommands, r)
	}
	if r := s.reply(); r != "421 4.7.0 mx.test too many commands without mail, closing connection" {
		t.Fatalf("after %d junk commands: %q", ingest.SMTPMaxJunkCommands, r)
	}
	if rest, err := io.ReadAll(s.r); err != nil || len(rest) > 0 {
		t.Errorf("after 421: %q, %v", rest, err)
	}
	if n := f.newMessages(t); len(n) != 1 {
		t.Errorf("new/ = %v, want the one message before the limit", n)
	}
	smtpWaitFor(t, func() bool {
		return strings.Contains(f.log.String(), `msg="SMTP 421 4.7.0 too many commands without mail, closing connection"`) &&
			strings.Contains(f.log.String(), "junk_commands=100 messages=1")
	})
}

// A connection that keeps talking is ended once MaxSession is over, also
// after STARTTLS (the 421 goes through TLS).
func TestSMTPSessionLimit(t *testing.T) {
	cert, pool := smtpSelfSigned(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			f := startSMTP(t, ingest.SMTPOptions{MaxSession: 2 * time.Second, Timeout: 10 * time.Second,
				TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
			var c *smtp.Client
			if useTLS {
				var err error
				c, err = smtp.DialStartTLS(f.addr, &tls.Config{ServerName: "mx.test", RootCAs: pool})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
			} else {
				c = f.dial(t)
			}
			start := time.Now()
			var err error
			for err == nil && time.Since(start) < 10*time.Second {
				time.Sleep(50 * time.Millisecond)
				err = c.Noop()
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 421 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 2}) ||
				se.Message != "mx.test session time limit reached, closing connection" {
				t.Fatalf("after %v: %v, want 421 4.4.2 session time limit", time.Since(start), err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("ended after %v", d)
			}
			smtpWaitFor(t, func() bool {
				return strings.Contains(f.log.String(), `msg="SMTP 421 4.4.2 session time limit reached, closing connection"`) &&
					strings.Contains(f.log.String(), "max_session=2s") &&
					strings.Contains(f.log.String(), "SMTP connection closed")
			})
		})
	}
}

// The reply to EHLO and HELO starts with the server's name (RFC 5321
// §4.1.1.1), without an enhanced status code (RFC 2034 §3).
func TestSMTPGreetingNamesServer(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	io.WriteString(s.conn, "EHLO client.example.net\r\n")
	if line, _ := s.r.ReadString('\n'); line != "250-mx.test Hello client.example.net\r\n" {
		t.Errorf("first line of the EHLO reply %q", line)
	}
	if r := s.reply(); !strings.HasPrefix(r, "250 LIMITS RCPTMAX=") {
		t.Errorf("last line of the EHLO reply %q", r)
	}
	if r := s.cmd("HELO other.example.net\r\n"); r != "250 mx.test Hello other.example.net" {
		t.Errorf("HELO reply %q", r)
	}
	// Other replies are as go-smtp writes them.
	if r := s.cmd("NOOP\r\n"); r != "250 2.0.0 I have successfully done nothing" {
		t.Errorf("NOOP reply %q", r)
	}
	// go-smtp's client still reads the extensions.
	c := f.dial(t)
	if ok, size := c.Extension("SIZE"); !ok || size == "" {
		t.Errorf("SIZE extension %v %q", ok, size)
	}
}

// Every reply is in the log once, with the connection's id: go-smtp's own
// as warnings (refusals) or debug lines, certharvest's as it logs them; the
// message itself is not.
func TestSMTPLogsEveryReply(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{MaxRecipients: 1, MaxMessageBytes: 1000})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO client.example.net\r\n")
	for _, tt := range []struct{ cmd, reply string }{
		{"MAIL FROM:<robin@example.com> SIZE=5000", "552 5.3.4 "},
		{"MAIL FROM:<robin@example.com> SIZE=100", "250 "},
		{"RCPT TO:<victim@example.com>", "550 5.7.1 "},
		{"RCPT TO:<harvest@inbound.example.org>", "250 "},
		{"RCPT TO:<other@inbound.example.org>", "452 4.5.3 "},
		{"DATA", "354 "},
		{smtpTestMessage + "secret body text\r\n.", "250 2.0.0 queued as "},
		{"QUIT", "221 "},
	} {
		if r := s.cmd(tt.cmd + "\r\n"); !strings.HasPrefix(r, tt.reply) {
			t.Fatalf("%s: %q, want %s", tt.cmd, r, tt.reply)
		}
	}
	smtpWaitFor(t, func() bool { return strings.Contains(f.log.String(), "SMTP connection closed") })
	log := f.log.String()
	for _, want := range []string{
		`level=DEBUG msg="SMTP 220 mx.test ESMTP Service Ready" id=smtp-`,
		`level=DEBUG msg="SMTP 250 mx.test Hello client.example.net" id=smtp-`,
		`level=WARN msg="SMTP 552 5.3.4 Max message size exceeded" id=smtp-`,
		`level=WARN msg="SMTP 452 4.5.3 Maximum limit of 1 recipients reached" id=smtp-`,
		`level=DEBUG msg="SMTP 354 Go ahead. End your data with <CR><LF>.<CR><LF>" id=smtp-`,
		`level=DEBUG msg="SMTP 221 2.0.0 Bye" id=smtp-`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	// Logged by certharvest's code, and not again.
	for _, once := range []string{`msg="SMTP 550 5.7.1 `, "queued as"} {
		if n := strings.Count(log, once); n != 1 {
			t.Errorf("%s logged %d times", once, n)
		}
	}
	if strings.Contains(log, "secret") {
		t.Error("message content in the log")
	}
}

// A client probing addresses is cut off after smtpMaxRefusals refusals:
// its log lines and its guesses are bounded per connection.
func TestSMTPTooManyRefusals(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{Recipients: []string{"harvest@inbound.example.org"}})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO client.example.net\r\n")
	s.cmd("MAIL FROM:<robin@example.com>\r\n")
	for i := range ingest.SMTPMaxRefusals {
		if r := s.cmd(fmt.Sprintf("RCPT TO:<guess%d@inbound.example.org>\r\n", i)); !strings.HasPrefix(r, "550 5.1.1") {
			t.Fatalf("guess %d: %q", i, r)
		}
	}
	if r := s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n"); !strings.HasPrefix(r, "250") {
		t.Fatalf("a valid recipient among the guesses: %q", r)
	}
	if r := s.cmd("RCPT TO:<one-more@inbound.example.org>\r\n"); !strings.HasPrefix(r, "421 4.7.0") {
		t.Fatalf("after %d refusals: %q", ingest.SMTPMaxRefusals, r)
	}
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(s.r)
	if err != nil {
		t.Fatalf("connection not closed: %v (read %q)", err, rest)
	}
}

// A client that says nothing is dropped after the timeout with 421.
func TestSMTPIdleTimeout(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{Timeout: 200 * time.Millisecond})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	start := time.Now()
	if r := s.reply(); !strings.HasPrefix(r, "421 4.4.2") {
		t.Fatalf("got %q, want 421 4.4.2", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dropped after %v", d)
	}
	smtpWaitFor(t, func() bool {
		return strings.Contains(f.log.String(), `level=WARN msg="SMTP 421 4.4.2 Idle timeout, bye bye"`)
	})
}

// A line longer than the limit inside DATA is refused permanently.
func TestSMTPLineTooLong(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	s := smtpDialRaw(t, f.addr)
	s.reply()
	s.cmd("EHLO client.example.net\r\n")
	s.cmd("MAIL FROM:<robin@example.com>\r\n")
	s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	s.cmd("DATA\r\n")
	r := s.cmd("Subject: x\r\n\r\n" + strings.Repeat("a", 3000) + "\r\n.\r\n")
	if !strings.HasPrefix(r, "554 5.6.0") {
		t.Errorf("got %q, want 554 5.6.0", r)
	}
	// go-smtp cannot find the end of the line, so it closes the connection
	// after saying so (docs/SMTP.md tells).
	if r := s.reply(); r != "500 5.4.0 Too long line, closing connection" {
		t.Errorf("after the 554: %q", r)
	}
	if rest, err := io.ReadAll(s.r); err != nil || len(rest) > 0 {
		t.Errorf("connection not closed: %q, %v", rest, err)
	}
	if n := f.newMessages(t); len(n) != 0 {
		t.Errorf("stored %v", n)
	}
}

// Shutdown ends idle connections with 421 at once, but answers a message
// that is being received before closing its connection.
func TestSMTPShutdown(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	idle := smtpDialRaw(t, f.addr)
	idle.reply()
	idle.cmd("EHLO client.example.net\r\n")

	busy := smtpDialRaw(t, f.addr)
	busy.reply()
	busy.cmd("EHLO client.example.net\r\n")
	busy.cmd("MAIL FROM:<robin@example.com>\r\n")
	busy.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	busy.cmd("DATA\r\n")
	io.WriteString(busy.conn, "Subject: half\r\n")
	smtpWaitFor(t, f.srv.ReceivingData)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	if r := idle.reply(); !strings.HasPrefix(r, "421 ") {
		t.Errorf("idle connection got %q, want 421", r)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a message in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if r := busy.cmd("\r\nbody\r\n.\r\n"); !strings.HasPrefix(r, "250 2.0.0 queued as ") {
		t.Errorf("message in flight got %q", r)
	}
	if r := busy.reply(); !strings.HasPrefix(r, "421 ") {
		t.Errorf("after its message, the connection got %q, want 421", r)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", f.addr); err == nil {
		t.Error("still listening after Shutdown")
	}
	if n := f.newMessages(t); len(n) != 1 {
		t.Errorf("new/ = %v", n)
	}
}

// A shutdown right after Start (a signal during start-up) returns.
func TestSMTPShutdownRightAfterStart(t *testing.T) {
	spool, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	for range 50 {
		srv, err := ingest.NewSMTPServer(spool, ingest.SMTPOptions{Addr: "127.0.0.1:0", Domains: []string{"inbound.example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}
