package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-smtp"
)

// Write implements net.Conn. Until STARTTLS it sees each reply line go-smtp
// writes, whole lines only (a line split over several writes is held back
// until its end), and adjusts it (smtpConn.replyLine). After STARTTLS the
// bytes are TLS records and pass as they are: go-smtp offers no hook above
// the TLS layer, so there its replies are its own.
func (c *smtpConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tlsOn {
		return c.Conn.Write(p)
	}
	c.pending = append(c.pending, p...)
	var out []byte
	for {
		i := bytes.Index(c.pending, []byte("\r\n"))
		if i < 0 {
			break
		}
		out = append(append(out, c.replyLine(c.pending[:i])...), '\r', '\n')
		c.pending = c.pending[i+2:]
	}
	if len(c.pending) > smtpMaxLineLength {
		// Not a reply line: pass it on as it is.
		out, c.pending = append(out, c.pending...), nil
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// plainOver reports whether STARTTLS has begun.
func (c *smtpConn) plainOver() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.tlsOn
}

// replyLine returns a reply line as it is to be sent, and follows the
// replies: after the 220 to STARTTLS (any 220 but the greeting), TLS begins
// (RFC 3207 §4). c.wmu is held.
func (c *smtpConn) replyLine(line []byte) []byte {
	if len(line) < 3 {
		return line
	}
	code, final := string(line[:3]), len(line) == 3 || line[3] != '-'
	if c.lines == 0 {
		if code == "250" {
			line = c.greeting(line)
		}
		c.first = string(line)
	}
	c.lines++
	if final {
		c.logReply(string(line))
		c.replies++
		c.lines = 0
		if code == "220" && c.replies > 1 {
			c.tlsOn = true
		}
	}
	return line
}

// logReply logs a reply, by its first line, unless certharvest's own code
// has logged it (smtpConn.loggedReply): go-smtp's replies (syntax errors,
// 452 past MaxRecipients, 552 for a SIZE= over the limit, 421 at a timeout
// or shutdown, ...) and the positive replies no other line tells. Refusals
// and errors are warnings, the rest debug. A reply holds no message content,
// but may echo what the client sent (a HELO name, an unknown command): it is
// logged printable and cut short. last is the reply's last line; c.wmu is
// held.
func (c *smtpConn) logReply(last string) {
	if last == c.logged {
		c.logged = ""
		return
	}
	text := strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, c.first)
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if len(text) > 4 {
		// "250-mx.example.org Hello": the separator after the code
		// says a reply has more lines; the log has them counted.
		text = text[:3] + " " + text[4:]
	}
	level, args := slog.LevelDebug, []any{}
	if c.first[0] >= '4' {
		level = slog.LevelWarn
	}
	if c.lines > 1 {
		args = append(args, "lines", c.lines)
	}
	c.log.Log(context.Background(), level, "SMTP "+text, args...)
}

// loggedReply notes that certharvest's code has logged reply, so that Write
// does not log it again when go-smtp writes it.
func (c *smtpConn) loggedReply(reply *smtp.SMTPError) {
	c.loggedLine(fmt.Sprintf("%d %d.%d.%d %s", reply.Code, reply.EnhancedCode[0], reply.EnhancedCode[1],
		reply.EnhancedCode[2], reply.Message))
}

func (c *smtpConn) loggedLine(line string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.logged = line
}

// greeting gives the first line of a reply to EHLO or HELO this server's
// name: go-smtp writes "250-Hello client" (EHLO) or "250 2.0.0 Hello
// client" (HELO), where RFC 5321 §4.1.1.1 wants "250 SP Domain [SP
// ehlo-greet]" with the server's own domain, and RFC 2034 §3 wants no
// enhanced status code in a reply to HELO or EHLO. Any other line is
// returned as it is: go-smtp's other 250 replies do not start with "Hello".
func (c *smtpConn) greeting(line []byte) []byte {
	if len(line) < 5 {
		return line
	}
	sep, text := line[3], line[4:]
	text = bytes.TrimPrefix(text, []byte("2.0.0 "))
	if !bytes.HasPrefix(text, []byte("Hello ")) {
		return line
	}
	return fmt.Appendf(nil, "250%c%s %s", sep, c.ln.srv.opts.Hostname, text)
}
