package ingest

// The SMTP server's connection: it applies the session's limits and sees
// the replies go out (smtp_reply.go).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpConn is one client connection.
type smtpConn struct {
	net.Conn
	ln        *smtpListener
	id        string
	log       *slog.Logger
	opened    time.Time
	client    netip.Prefix
	messages  atomic.Int64
	tlsLogged atomic.Bool
	refusals  atomic.Int32
	closing   atomic.Bool // close once idle: draining, or too many refusals
	closeOnce sync.Once

	// smtp is go-smtp's connection, once the client has said EHLO or
	// HELO: its Conn is the one replies are written to (after STARTTLS,
	// the TLS connection over this one).
	smtp atomic.Pointer[smtp.Conn]
	// Commands, counted as go-smtp starts waiting for each one (see
	// SetReadDeadline): progress is set by the session when a command
	// reaches it (MAIL, RCPT, DATA or BDAT), junk counts the others since
	// the last message queued.
	commands atomic.Int64
	progress atomic.Bool
	junk     atomic.Int32
	// ended is set when the connection has been ended with a reply of
	// its own: reads fail, and go-smtp closes it without another word.
	ended atomic.Bool

	mu     sync.Mutex
	inData bool
	// waitSince is when go-smtp began waiting for the current command;
	// dataSince when the current message's data began (Data).
	waitSince, dataSince time.Time
	evicted              bool // evictIfIdle ended the wait
	// deadline is the read deadline go-smtp last set (nextDeadline): for
	// the data, its bound on the whole transfer, which pacing only
	// shortens.
	deadline time.Time
	// dataRead counts the bytes read since dataSince; paced is set when
	// the read deadline in force is the pace's (dataDeadline).
	dataRead atomic.Int64
	paced    atomic.Bool

	// firstLine holds the first line of each message (Data), allocated
	// once per connection.
	firstLine []byte

	// The replies written, seen by Write while they are in plain text.
	wmu     sync.Mutex
	tlsOn   bool   // STARTTLS began: what is written now is TLS records
	pending []byte // the start of a line not complete yet
	replies int    // replies written in full
	lines   int    // lines written of the current reply
	first   string // the current reply's first line
	// logged is the last line of a reply certharvest's own code has
	// logged and not yet seen written.
	logged string
}

// connOf finds the smtpConn under a connection go-smtp may have wrapped in
// TLS.
func connOf(nc net.Conn) *smtpConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*smtpConn)
	return c
}

// errConnEnded is what reading a connection gives once it has been ended
// with a reply of its own (smtpConn.end). go-smtp closes a connection whose
// read fails with net.ErrClosed without another reply.
var errConnEnded = fmt.Errorf("smtp: connection ended: %w", net.ErrClosed)

// SetReadDeadline implements net.Conn. go-smtp calls it (itself, or
// through the TLS connection after STARTTLS) each time it starts waiting for
// a command, as Timeout is never zero, and nowhere else: this is where the
// command just answered is counted and the connection's limits are applied.
//
//   - Past MaxSession, or after smtpMaxJunkCommands commands that took no
//     mail transaction forward, the connection is ended here with 421 (RFC
//     5321 §3.8), and the error makes go-smtp close it at once, without
//     acting on commands the client has pipelined behind.
//   - An idle connection that is to be closed (shutdown, too many
//     refusals) gets a deadline of now, so go-smtp's wait for the next
//     command ends (with 421 4.4.2) and it closes the connection.
func (c *smtpConn) SetReadDeadline(t time.Time) error {
	reply, args, err := c.nextDeadline(t)
	if reply != nil {
		// Written without c.mu: a client that does not read would
		// otherwise hold up drain (shutdown) for the write's deadline.
		c.end(reply, args...)
	}
	return err
}

// nextDeadline applies the connection's limits before go-smtp waits for
// the next command, and sets the read deadline; it returns the reply that
// ends the connection instead, if one does (c.ended is set).
func (c *smtpConn) nextDeadline(t time.Time) (reply *smtp.SMTPError, args []any, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended.Load() {
		return nil, nil, errConnEnded
	}
	// The first call comes before the first command; during BDAT, the
	// commands are the message's chunks.
	if c.commands.Add(1) > 1 && !c.inData && !c.progress.Swap(false) {
		c.junk.Add(1)
	}
	c.waitSince = time.Now()
	switch {
	case time.Since(c.opened) >= c.ln.srv.opts.MaxSession:
		c.ended.Store(true)
		return errSessionTooLong, []any{"max_session", c.ln.srv.opts.MaxSession.String()}, errConnEnded
	case c.junk.Load() >= c.junkLimit() && !c.inData:
		c.ended.Store(true)
		return errTooManyJunkCommands, []any{"junk_commands", c.junk.Load()}, errConnEnded
	case c.closingNow():
		t = time.Now()
	}
	// Under c.mu, so that drain's deadline of now is not overwritten.
	c.deadline = t
	return nil, nil, c.Conn.SetReadDeadline(t)
}

// junkLimit is how many commands without mail the connection may send now:
// fewer while the server is busy.
func (c *smtpConn) junkLimit() int32 {
	if c.ln.busy() {
		return smtpBusyJunkCommands
	}
	return smtpMaxJunkCommands
}

// Read implements net.Conn: once the connection has been ended, it fails as
// if closed.
func (c *smtpConn) Read(p []byte) (int, error) {
	if c.ended.Load() {
		return 0, errConnEnded
	}
	if c.dataDeadline() {
		n, err := c.Conn.Read(p)
		c.dataRead.Add(int64(n))
		if err != nil && c.paced.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			// Too slow while the server is busy: go-smtp answers the
			// transfer's error (451 4.4.2), then its next read fails and
			// it closes the connection, so that what the client goes on
			// sending is never taken for commands.
			c.ended.Store(true)
			c.log.Warn("SMTP message data too slow while the server is busy: transfer cut",
				"received", c.dataRead.Load(), "min_rate", c.ln.srv.opts.BusyDataRate)
			c.ln.srv.observe(451)
		}
		return n, err
	}
	return c.Conn.Read(p)
}

// dataDeadline sets the read deadline of a message's data, when one is
// being received: go-smtp's bound on the whole transfer, shortened, while
// the server is busy, to when the data would fall below BusyDataRate after
// DataGrace (as the webhook paces a request body). It reports whether a
// message's data is being received.
func (c *smtpConn) dataDeadline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inData || c.waitSince.After(c.dataSince) {
		return false // a command, or a wait between BDAT chunks
	}
	due, paced := c.deadline, false
	if opts := c.ln.srv.opts; c.ln.busy() {
		pace := c.dataSince.Add(opts.DataGrace + time.Duration((c.dataRead.Load()+1)*int64(time.Second)/opts.BusyDataRate))
		if due.IsZero() || pace.Before(due) {
			due, paced = pace, true
		}
	}
	c.paced.Store(paced)
	c.Conn.SetReadDeadline(due)
	return true
}

// end answers reply on the connection, logs it with args, and makes the
// connection's reads fail so go-smtp closes it. It is called from go-smtp's
// goroutine between commands (SetReadDeadline), when go-smtp has written
// its last reply in full and writes nothing else, so the reply goes out
// whole; after STARTTLS it goes through the TLS connection. c.mu is not
// held, and the write has a short deadline (as refuse's): a client that does
// not read holds nothing up for long.
func (c *smtpConn) end(reply *smtp.SMTPError, args ...any) {
	c.ended.Store(true)
	line := fmt.Sprintf("%d %d.%d.%d %s %s\r\n", reply.Code, reply.EnhancedCode[0], reply.EnhancedCode[1],
		reply.EnhancedCode[2], c.ln.srv.opts.Hostname, reply.Message)
	var w net.Conn = c
	if gc := c.smtp.Load(); gc != nil {
		w = gc.Conn()
	} else if c.plainOver() {
		// STARTTLS before EHLO: the TLS connection is not to hand.
		w = nil
	}
	if w != nil {
		c.loggedLine(strings.TrimSuffix(line, "\r\n"))
		w.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(w, line); err != nil {
			args = append(args, "error", err)
		}
	}
	c.log.Warn(fmt.Sprintf("SMTP %d %d.%d.%d %s", reply.Code, reply.EnhancedCode[0], reply.EnhancedCode[1],
		reply.EnhancedCode[2], reply.Message), append(args, "messages", c.messages.Load())...)
	c.ln.srv.observe(reply.Code)
}

// closingNow reports whether the connection should end at its next wait
// for a command. c.mu is held.
func (c *smtpConn) closingNow() bool {
	return (c.ln.draining.Load() || c.closing.Load()) && !c.inData
}

// closeSoon ends the connection at its next wait for a command.
func (c *smtpConn) closeSoon() {
	c.closing.Store(true)
}

// SetDeadline implements net.Conn like SetReadDeadline.
func (c *smtpConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// firstLineBuf returns the connection's buffer for the first line of a
// message: one message at a time is received on a connection.
func (c *smtpConn) firstLineBuf() []byte {
	if c.firstLine == nil {
		c.firstLine = make([]byte, smtpFirstLineMax)
	}
	return c.firstLine
}

// evictIfIdle ends the connection's wait for a command when it has lasted
// idle or longer (now minus waitSince): the read fails at once, and
// go-smtp answers 421 4.4.2 and closes the connection. A connection
// receiving DATA, or whose reading a command has not started, is left
// alone. It returns how long the connection was idle, and whether it ended
// the wait.
func (c *smtpConn) evictIfIdle(now time.Time, idle time.Duration) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	waited := now.Sub(c.waitSince)
	// During BDAT the connection waits for the next chunk's command while
	// the message's data is open: idle all the same.
	receiving := c.inData && !c.waitSince.After(c.dataSince)
	if c.evicted || c.ended.Load() || receiving || waited < idle {
		return waited, false
	}
	c.evicted = true
	c.closing.Store(true) // should go-smtp start another wait meanwhile
	// go-smtp's reply, logged by the caller with the reason.
	c.loggedLine("421 4.4.2 Idle timeout, bye bye")
	c.Conn.SetReadDeadline(time.Now())
	return waited, true
}

func (c *smtpConn) setInData(in bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData = in
	if in {
		c.dataSince = time.Now()
		c.dataRead.Store(0)
	}
	if c.closingNow() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

func (c *smtpConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inData {
		c.Conn.SetReadDeadline(time.Now())
	}
}

// Close implements net.Conn; go-smtp may call it more than once.
func (c *smtpConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.ln.mu.Lock()
		delete(c.ln.conns, c)
		if c.ln.perIP[c.client]--; c.ln.perIP[c.client] <= 0 {
			delete(c.ln.perIP, c.client)
		}
		c.ln.mu.Unlock()
		<-c.ln.slots
		c.log.Info("SMTP connection closed", "remote", c.RemoteAddr().String(), "messages", c.messages.Load(),
			"duration", time.Since(c.opened).Round(time.Millisecond).String())
	})
	return err
}
