package ingest

// White-box tests of the SMTP server: its helpers, its connections alone.

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestSMTPReceivedHELO(t *testing.T) {
	for _, tt := range []struct {
		helo string
		want bool
	}{
		{"mail.example.net", true},
		{"[192.0.2.1]", true},
		{"[IPv6:2001:db8::1]", true},
		{"[not an address]", false},
		{"evil(comment", false},
		{"a;b", false},
		{strings.Repeat("a", 256), false},
		{"", false},
	} {
		if got := validHelo(tt.helo); got != tt.want {
			t.Errorf("validHelo(%q) = %v", tt.helo, got)
		}
	}
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1:25", "[192.0.2.1]"},
		{"[2001:db8::1]:25", "[IPv6:2001:db8::1]"},
		{"[::ffff:192.0.2.1]:25", "[192.0.2.1]"},
	} {
		a, _ := net.ResolveTCPAddr("tcp", tt.addr)
		if got := addressLiteral(a); got != tt.want {
			t.Errorf("addressLiteral(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestSMTPMaxConnsPerIPBoundedByMaxConns(t *testing.T) {
	for _, tt := range []struct {
		name         string
		conns, perIP int
		wantPerIP    int
	}{
		{"default under the cap", 100, 0, DefaultSMTPMaxConnsPerIP},
		{"default over the cap", 2, 0, 2},
		{"set over the cap", 10, 20, 10},
		{"set under the cap", 10, 3, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewSMTPServer(nil, SMTPOptions{Domains: []string{"a.example"}, MaxConns: tt.conns, MaxConnsPerIP: tt.perIP})
			if err != nil {
				t.Fatal(err)
			}
			if srv.opts.MaxConnsPerIP != tt.wantPerIP {
				t.Errorf("MaxConnsPerIP = %d, want %d", srv.opts.MaxConnsPerIP, tt.wantPerIP)
			}
		})
	}
}

// smtpRecordConn is a net.Conn that records what is written to it.
type smtpRecordConn struct {
	net.Conn
	written bytes.Buffer
}

func (c *smtpRecordConn) Write(p []byte) (int, error) { return c.written.Write(p) }

// A reply line written in pieces is rewritten whole; after STARTTLS's 220
// the bytes pass untouched.
func TestSMTPConnWriteSplitLines(t *testing.T) {
	srv := &SMTPServer{opts: SMTPOptions{Hostname: "mx.test"}, log: slog.New(slog.DiscardHandler)}
	rec := &smtpRecordConn{}
	c := &smtpConn{Conn: rec, ln: &smtpListener{srv: srv}, log: srv.log}
	in := "220 mx.test ESMTP Service Ready\r\n" +
		"250-Hello client.example.net\r\n250-PIPELINING\r\n250 SIZE 100\r\n" +
		"250 2.0.0 Hello again.example.net\r\n" +
		"220 2.0.0 Ready to start TLS\r\n" +
		"250-Hello records\r\n"
	for i := range len(in) {
		if n, err := c.Write([]byte{in[i]}); n != 1 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	want := "220 mx.test ESMTP Service Ready\r\n" +
		"250-mx.test Hello client.example.net\r\n250-PIPELINING\r\n250 SIZE 100\r\n" +
		"250 mx.test Hello again.example.net\r\n" +
		"220 2.0.0 Ready to start TLS\r\n" +
		"250-Hello records\r\n"
	if got := rec.written.String(); got != want {
		t.Errorf("written:\n%q\nwant:\n%q", got, want)
	}
}

// A connection ended at its session limit by a client that no longer
// reads: the 421's write may block, but neither shutdown's drain nor the
// other connections wait for it, and it gives up within a second, not
// after --smtp-timeout.
func TestSMTPEndDoesNotHoldUpDrain(t *testing.T) {
	srv := &SMTPServer{opts: SMTPOptions{Hostname: "mx.test", Timeout: time.Minute, MaxSession: time.Minute},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l := &smtpListener{srv: srv, slots: make(chan struct{}, 4), conns: map[*smtpConn]struct{}{}, perIP: map[netip.Prefix]int{}}
	server, client := net.Pipe() // the client never reads
	defer client.Close()
	c := &smtpConn{Conn: server, ln: l, id: "t1", opened: time.Now().Add(-time.Hour), log: srv.log}
	l.conns[c] = struct{}{}

	ended := make(chan error, 1)
	start := time.Now()
	go func() { ended <- c.SetReadDeadline(time.Now().Add(time.Minute)) }()
	time.Sleep(100 * time.Millisecond) // the 421 is being written, to nobody
	drained := make(chan struct{})
	go func() { l.drain(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("drain waited for a connection's blocked write")
	}
	select {
	case err := <-ended:
		if !errors.Is(err, errConnEnded) {
			t.Errorf("SetReadDeadline = %v, want the connection ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the 421's write did not give up")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("ending took %v", d)
	}
}
