package ingest_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// Under the defaults, two addresses cannot take every slot: 50 silent
// connections from 127.0.0.1 and 50 from 127.0.0.2 get 10 slots each (the
// others 421 4.7.0 at once), and 127.0.0.3 is still served. Before, the
// hundred took all DefaultSMTPMaxConns and a third address got 421 for as
// long as they stayed silent (DefaultSMTPTimeout), again and again.
func TestSMTPTwoAddressesCannotTakeEverySlot(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{})
	served := map[string]int{}
	for i := range 100 {
		local := "127.0.0.1"
		if i%2 == 1 {
			local = "127.0.0.2"
		}
		s := smtpDialRawFrom(t, local, f.addr)
		switch r := s.reply(); {
		case strings.HasPrefix(r, "220 "):
			served[local]++
		case r != "421 4.7.0 mx.test too many connections from your address, try again later":
			t.Fatalf("connection %d from %s: %q", i, local, r)
		}
	}
	if served["127.0.0.1"] != ingest.DefaultSMTPMaxConnsPerIP || served["127.0.0.2"] != ingest.DefaultSMTPMaxConnsPerIP {
		t.Errorf("served %v, want %d from each address", served, ingest.DefaultSMTPMaxConnsPerIP)
	}
	third := smtpDialRawFrom(t, "127.0.0.3", f.addr)
	if r := third.reply(); !strings.HasPrefix(r, "220 mx.test ") {
		t.Fatalf("a third address: %q", r)
	}
	if r := third.cmd("EHLO client.example.net\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("a third address: EHLO %q", r)
	}
}

// While more than half of the slots are taken, a connection that has sent
// no command for BusyIdle is closed with 421 4.4.2: silent after the
// banner, after EHLO, in the middle of a command, or between BDAT chunks.
// Active connections are kept: one sending commands, one receiving DATA
// slowly (it is answered 250). While half or fewer are taken, silent
// connections stay.
func TestSMTPBusyIdle(t *testing.T) {
	const idle = 500 * time.Millisecond
	codes := &codeCounter{}
	f := startSMTP(t, ingest.SMTPOptions{MaxConns: 10, MaxConnsPerIP: 10, BusyIdle: idle, ObserveReply: codes.observe})
	dial := func() *smtpRawSession {
		s := smtpDialRaw(t, f.addr)
		if r := s.reply(); !strings.HasPrefix(r, "220 ") {
			t.Fatalf("banner %q", r)
		}
		return s
	}
	// Five of ten: not busy. Silent, they stay.
	var silent []*smtpRawSession
	for i := range 5 {
		s := dial()
		switch i {
		case 1:
			s.cmd("EHLO client.example.net\r\n")
		case 2:
			io.WriteString(s.conn, "EHLO client.exa") // a command cut short
		case 3:
			s.cmd("EHLO client.example.net\r\n")
			s.cmd("MAIL FROM:<robin@example.com>\r\n")
			s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
			if r := s.cmd("BDAT 5\r\nFrom:"); !strings.HasPrefix(r, "250 ") {
				t.Fatalf("BDAT: %q", r)
			}
		}
		silent = append(silent, s)
	}
	time.Sleep(3 * idle)
	if n := strings.Count(f.log.String(), "closing an idle connection"); n != 0 {
		t.Fatalf("%d idle connections closed while half the slots were free", n)
	}

	// A sixth: busy. One client keeps talking, one sends a message slowly.
	active := dial()
	active.cmd("EHLO client.example.net\r\n")
	slow := dial()
	slow.cmd("EHLO client.example.net\r\n")
	slow.cmd("MAIL FROM:<robin@example.com>\r\n")
	slow.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
	if r := slow.cmd("DATA\r\n"); !strings.HasPrefix(r, "354") {
		t.Fatal(r)
	}
	io.WriteString(slow.conn, "From: robin@example.com\r\n")
	// A command every fifth of BusyIdle: a margin for a loaded machine.
	for range 8 {
		time.Sleep(idle / 5)
		if r := active.cmd("NOOP\r\n"); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("an active connection: NOOP %q", r)
		}
	}
	for i, s := range silent {
		r := s.reply()
		if i == 2 {
			// go-smtp takes what it had of a line when its read fails
			// (bufio.Reader.ReadLine) as the command, and answers it,
			// then 421.
			r = s.reply()
		}
		if r != "421 4.4.2 Idle timeout, bye bye" {
			t.Errorf("silent connection %d: %q, want 421", i, r)
		}
		if _, err := s.r.ReadByte(); err != io.EOF {
			t.Errorf("silent connection %d left open: %v", i, err)
		}
	}
	if r := slow.cmd("\r\nbody\r\n.\r\n"); !strings.HasPrefix(r, "250 2.0.0 queued as ") {
		t.Errorf("the slow message: %q", r)
	}
	if r := active.cmd("QUIT\r\n"); !strings.HasPrefix(r, "221 ") {
		t.Errorf("the active connection: QUIT %q", r)
	}
	smtpWaitFor(t, func() bool {
		return strings.Count(f.log.String(), "closing an idle connection: the server is busy") == len(silent)
	})
	if got := codes.get()[421]; got != len(silent) {
		t.Errorf("observed %d replies 421, want %d", got, len(silent))
	}
	// The reply is logged once, by the line that gives the reason.
	if n := strings.Count(f.log.String(), "Idle timeout, bye bye"); n != 0 {
		t.Errorf("go-smtp's reply logged %d times besides the reason", n)
	}
	if !strings.Contains(f.log.String(), fmt.Sprintf("busy_idle=%s", idle)) {
		t.Errorf("log:\n%s", f.log)
	}
}

// While the server is busy, a client that keeps its slot with NOOPs, each
// within BusyIdle, is closed after smtpBusyJunkCommands of them instead of
// smtpMaxJunkCommands; while it is not, the usual limit holds.
func TestSMTPBusyJunkLimit(t *testing.T) {
	f := startSMTP(t, ingest.SMTPOptions{MaxConns: 4, MaxConnsPerIP: 4})
	noops := func(s *smtpRawSession) (answered int, last string) {
		s.cmd("EHLO client.example.net\r\n") // junk 1
		for answered < ingest.SMTPMaxJunkCommands {
			last = s.cmd("NOOP\r\n")
			if !strings.HasPrefix(last, "250 ") {
				return answered, last
			}
			answered++
		}
		return answered, last
	}
	quiet := smtpDialRaw(t, f.addr)
	quiet.reply()
	if n, last := noops(quiet); n != ingest.SMTPMaxJunkCommands-1 {
		t.Fatalf("not busy: %d NOOPs answered, then %q; want %d", n, last, ingest.SMTPMaxJunkCommands-1)
	}
	// Three of four slots taken: busy.
	for range 2 {
		s := smtpDialRaw(t, f.addr)
		s.reply()
	}
	busy := smtpDialRaw(t, f.addr)
	busy.reply()
	n, last := noops(busy)
	if n != ingest.SMTPBusyJunkCommands-1 || last != "421 4.7.0 mx.test too many commands without mail, closing connection" {
		t.Errorf("busy: %d NOOPs answered, then %q; want %d, then 421", n, last, ingest.SMTPBusyJunkCommands-1)
	}
}

// While the server is busy, a message's data trickled below BusyDataRate
// after DataGrace is cut (451 4.4.2) and the connection closed, so that a
// client cannot keep its slot by sending a message a byte at a time; at
// the same rate while the server is not busy, the message is received.
func TestSMTPBusyDataRate(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			f := startSMTP(t, ingest.SMTPOptions{MaxConns: 4, MaxConnsPerIP: 4, BusyDataRate: 1 << 10, DataGrace: 200 * time.Millisecond})
			if busy {
				for range 2 {
					s := smtpDialRaw(t, f.addr)
					s.reply()
				}
			}
			s := smtpDialRaw(t, f.addr)
			s.reply()
			s.cmd("EHLO client.example.net\r\n")
			s.cmd("MAIL FROM:<robin@example.com>\r\n")
			s.cmd("RCPT TO:<harvest@inbound.example.org>\r\n")
			if r := s.cmd("DATA\r\n"); !strings.HasPrefix(r, "354") {
				t.Fatal(r)
			}
			// 10 bytes every 50 ms: 200 bytes a second, under the 1 KiB/s.
			msg := smtpTestMessage
			start := time.Now()
			for i := 0; i < len(msg); i += 10 {
				if _, err := io.WriteString(s.conn, msg[i:min(i+10, len(msg))]); err != nil {
					break // closed: the cut
				}
				time.Sleep(50 * time.Millisecond)
				if time.Since(start) > 3*time.Second {
					break
				}
			}
			io.WriteString(s.conn, ".\r\n")
			r := s.reply()
			if !busy {
				if !strings.HasPrefix(r, "250 2.0.0 queued as ") {
					t.Errorf("not busy: %q, want the message queued", r)
				}
				return
			}
			if r != "451 4.4.2 message transfer interrupted, try again later" {
				t.Errorf("busy: %q, want 451 4.4.2", r)
			}
			if _, err := s.r.ReadByte(); err != io.EOF {
				t.Errorf("busy: the connection was left open: %v", err)
			}
			if n := f.newMessages(t); len(n) != 0 {
				t.Errorf("busy: new/ = %v, want nothing", n)
			}
		})
	}
}
