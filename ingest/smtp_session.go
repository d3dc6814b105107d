package ingest

// An SMTP session: one client's mail transactions, from EHLO to QUIT, and
// the replies of the server's own policy (smtp_data.go: a message's DATA).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-smtp"
)

// Recipient policy replies, RFC 5321 §4.2.2 and §3.6.2, enhanced status
// codes from RFC 3463.
var (
	errRcptUnknown = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "no such recipient here"}
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "relay access denied"}
)

// checkRecipient returns nil when mail for addr is accepted, else the
// reply: 550 5.1.1 for an unknown address in an accepted domain, 550 5.7.1
// for any other domain (no relaying).
func (s *SMTPServer) checkRecipient(addr string) *smtp.SMTPError {
	local, domain, ok := splitAddress(addr)
	if !ok {
		// "Postmaster" without a domain must be accepted (RFC 5321
		// §4.1.1.3); go-smtp passes it as given.
		if strings.EqualFold(addr, "postmaster") {
			return nil
		}
		return errRelayDenied
	}
	if !s.domains[domain] {
		return errRelayDenied
	}
	// RFC 5321 §4.5.1: postmaster@ every domain the server accepts mail
	// for must be accepted.
	if strings.EqualFold(local, "postmaster") {
		return nil
	}
	if len(s.rcpts) > 0 && !s.rcpts[strings.ToLower(local)+"@"+domain] {
		return errRcptUnknown
	}
	return nil
}

// splitAddress splits local@domain at the last @ and normalises the domain.
func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", "", false
	}
	return addr[:i], normalizeDomain(addr[i+1:]), true
}

// normalizeDomain lower-cases a domain and drops a trailing dot.
func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// newSession is the go-smtp backend: it is called at the first EHLO/HELO,
// and again after STARTTLS (RFC 3207 §4.2: the client starts over).
func (s *SMTPServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	sc := connOf(c.Conn())
	if sc == nil {
		return nil, errors.New("smtp: unexpected connection type")
	}
	sc.smtp.Store(c)
	sess := &smtpSession{srv: s, c: c, conn: sc, log: sc.log}
	if st, ok := c.TLSConnectionState(); ok {
		sess.tls = &st
		if sc.tlsLogged.CompareAndSwap(false, true) {
			sc.log.Info("SMTP STARTTLS: "+tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite),
				"helo", c.Hostname())
		}
	}
	return sess, nil
}

// smtpSession is one client's mail transactions, from EHLO (or STARTTLS)
// to QUIT.
type smtpSession struct {
	srv  *SMTPServer
	c    *smtp.Conn
	conn *smtpConn
	log  *slog.Logger
	tls  *tls.ConnectionState // nil before STARTTLS

	// The current transaction (RFC 5321 §3.3).
	from string
	to   []string
	utf8 bool // MAIL FROM said SMTPUTF8 (RFC 6531 §3.4)
}

// Reset implements smtp.Session: RSET, a new EHLO, or the end of DATA.
func (ss *smtpSession) Reset() {
	ss.from, ss.to, ss.utf8 = "", nil, false
}

// Logout implements smtp.Session. The connection logs its own end.
func (ss *smtpSession) Logout() error { return nil }

// Mail implements smtp.Session.
func (ss *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.conn.progress.Store(true)
	if ss.srv.opts.RequireTLS && ss.tls == nil {
		// RFC 3207 §4: "530 Must issue a STARTTLS command first".
		return ss.refused(errTLSRequired, "from", from)
	}
	if ss.srv.spoolFailing.Load() {
		if err := ss.srv.sink.Room(ss.srv.ctx, 0); err != nil {
			ss.log.Error("SMTP 451 4.3.0 refused: the spool is not writable", "error", err, "from", from)
			ss.conn.loggedReply(errSpoolUnavailable)
			ss.srv.observe(errSpoolUnavailable.Code)
			return errSpoolUnavailable
		}
	}
	ss.from, ss.to, ss.utf8 = from, nil, opts != nil && opts.UTF8
	return nil
}

// Rcpt implements smtp.Session.
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.conn.progress.Store(true)
	if err := ss.srv.checkRecipient(to); err != nil {
		return ss.refused(err, "rcpt", to, "from", ss.from)
	}
	ss.to = append(ss.to, to)
	return nil
}

// refused logs a refusal with the reply given, and returns the reply:
// err, or 421 4.7.0 once the connection has had too many refusals (the
// connection is then closed).
func (ss *smtpSession) refused(err *smtp.SMTPError, args ...any) *smtp.SMTPError {
	if ss.conn.refusals.Add(1) > smtpMaxRefusals {
		err = errTooManyRefusals
		ss.conn.closeSoon()
	}
	ss.log.Warn(fmt.Sprintf("SMTP %d %d.%d.%d refused: %s", err.Code, err.EnhancedCode[0], err.EnhancedCode[1],
		err.EnhancedCode[2], err.Message), args...)
	ss.conn.loggedReply(err)
	ss.srv.observe(err.Code)
	return err
}

// Replies other than go-smtp's own.
var (
	// RFC 3207 §4.
	errTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	// RFC 5321 §3.8: 421, then the server closes the connection.
	errTooManyRefusals = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "too many refused commands, closing connection"}
	// RFC 5321 §3.8, RFC 3463 4.7.0: a policy ends the connection.
	errTooManyJunkCommands = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "too many commands without mail, closing connection"}
	// RFC 3463 4.4.2: bad connection; the client retries on a new one.
	errSessionTooLong = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "session time limit reached, closing connection"}
	// RFC 3463 4.3.0: other or undefined mail system status; the client
	// keeps the message and retries.
	errSpoolUnavailable = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "cannot queue the message now, try again later"}
	// RFC 3463 4.4.2: bad connection.
	errDataAborted = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "message transfer interrupted, try again later"}
	// RFC 5322 §2.1.1: a line is at most 998 characters.
	errLineTooLong = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: fmt.Sprintf("message has a line longer than %d bytes", smtpMaxLineLength)}
)
