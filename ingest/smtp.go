package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
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

	"github.com/certharvest/certharvest/verify"
)

// SMTP defaults.
const (
	// DefaultSMTPMaxRecipients is the default limit of recipients per
	// message. RFC 5321 §4.5.3.1.8 asks a server to take at least 100; fewer
	// loses nothing, as the 452 for the others is temporary and the client
	// sends them in another transaction (§4.5.3.1.10), and certharvest has
	// few addresses to receive for.
	DefaultSMTPMaxRecipients = 50
	// DefaultSMTPMaxConns is the default limit of connections served at once.
	DefaultSMTPMaxConns = 100
	// DefaultSMTPMaxConnsPerIP is the default limit of connections served at
	// once for one client address, as Postfix's
	// smtpd_client_connection_count_limit: one host cannot take every slot.
	DefaultSMTPMaxConnsPerIP = 50
	// DefaultSMTPMaxSession is the default lifetime of a connection: ample
	// for many messages, and an end to clients that keep a slot by talking
	// without sending mail.
	DefaultSMTPMaxSession = 10 * time.Minute
	// DefaultSMTPTimeout is the default time allowed for each command, each
	// reply and a whole DATA transfer: RFC 5321 §4.5.3.2.7 suggests 5
	// minutes for a server waiting for the next command.
	DefaultSMTPTimeout = 5 * time.Minute
	// smtpMaxLineLength is the longest line accepted, in commands and in
	// DATA. RFC 5321 §4.5.3.1.6 and RFC 5322 §2.1.1 allow 1000 bytes with
	// CRLF; go-smtp doubles that for leniency, and so do we.
	smtpMaxLineLength = 2000
	// smtpMaxRefusals is how many commands of a connection may be refused
	// before it is closed (421 4.7.0), as Postfix's smtpd_hard_error_limit:
	// probing for addresses, or flooding the log, costs a new connection
	// every 20 tries.
	smtpMaxRefusals = 20
	// smtpMaxJunkCommands is how many commands that do not take a mail
	// transaction forward (NOOP, RSET, VRFY, HELP, EHLO again, ...) a
	// connection may send without a message being queued before it is
	// closed (421 4.7.0), as Postfix's smtpd_junk_command_limit.
	smtpMaxJunkCommands = 100
)

// SMTPOptions configure an SMTPServer.
type SMTPOptions struct {
	// Addr is the TCP address to listen on (host:port; port 0 picks a free
	// one, which Addr reports after Start).
	Addr string
	// Hostname names this server in its banner (RFC 5321 §4.3.1, the 220
	// greeting) and in the Received: trace header it adds. Default: the
	// machine's name.
	Hostname string
	// Domains lists the domains mail is accepted for: ASCII (A-labels),
	// compared case-insensitively. Required.
	Domains []string
	// Recipients, when not empty, restricts mail to these exact addresses
	// (compared case-insensitively); each must be in one of Domains.
	Recipients []string
	// TLS, when not nil, enables STARTTLS (RFC 3207).
	TLS *tls.Config
	// RequireTLS refuses MAIL before STARTTLS with 530 5.7.0 (RFC 3207 §4).
	RequireTLS bool
	// MaxMessageBytes is the largest message accepted, advertised with SIZE
	// (RFC 1870). Default verify.DefaultMaxSize.
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message; more get 452 4.5.3.
	// Default DefaultSMTPMaxRecipients.
	MaxRecipients int
	// MaxConns limits the connections served at once; one more gets
	// 421 4.7.0 and is closed. Default DefaultSMTPMaxConns.
	MaxConns int
	// MaxConnsPerIP limits the connections served at once from one client
	// address (an IPv6 address's /64, which one host usually has to
	// itself); one more gets 421 4.7.0 and is closed. Loopback is not
	// exempt: a relay on the same machine needs a higher limit. Default
	// DefaultSMTPMaxConnsPerIP, and never more than MaxConns.
	MaxConnsPerIP int
	// MaxSession limits the lifetime of a connection: once it is over,
	// the connection gets 421 4.4.2 when it next waits for a command and
	// is closed (a message being received with BDAT is abandoned; a client
	// that stays silent is closed by Timeout). Default
	// DefaultSMTPMaxSession.
	MaxSession time.Duration
	// Timeout bounds the wait for each command, the write of each reply,
	// and a whole DATA transfer. Default DefaultSMTPTimeout.
	Timeout time.Duration
	// Budget is the memory that the messages being received hold,
	// shared with the other inputs (the webhook). A message is held in
	// memory while the budget has room, it is at most DefaultSpillBytes
	// and its header within HeaderLimits; otherwise DATA is written to
	// the spool's tmp/ as it arrives, and delivered from that file.
	// Default: a budget of DefaultInputMemory of the server's own.
	Budget *MemoryBudget
	// HeaderLimits caps the header section of each message as DATA
	// arrives (verify.HeaderCounter): a message over a cap is no longer
	// held in memory and the session logs it; it is still spooled
	// whole, and the pipeline reports it message_malformed. The zero
	// value of a field means verify's default.
	HeaderLimits verify.HeaderLimits
	// Now is the clock of the trace header and the envelope; default
	// time.Now.
	Now func() time.Time
	// ObserveReply, when set, is called with the code of every reply that
	// settles a transaction, for metrics: 250 when a message is queued, and
	// each refusal the server makes itself (the connection over MaxConns,
	// MAIL, RCPT, the end of DATA). go-smtp's own protocol replies are not
	// seen: syntax errors, 452 beyond MaxRecipients, 552 for a SIZE=
	// declared over the limit, 421 at a timeout or shutdown. It must be
	// safe for concurrent use and return quickly.
	ObserveReply func(code int)
}

// SMTPServer is a receiving MX (RFC 5321) for certharvest's own addresses:
// it accepts mail for its domains only, so it is never an open relay
// (RFC 5321 §3.6.2), writes each message durably into the spool before it
// answers 250, and answers 451 when it cannot, so that the sending MTA
// retries. The conversation never reveals a verdict: verification happens
// later, when the service takes the message from the spool.
//
// What a message is stored with: its bytes as received after DATA (RFC
// 5321 §4.5.2 dot-stuffing removed), preceded by one Received: trace header
// (RFC 5321 §4.4) — DKIM takes the header fields it signs from the bottom
// up (RFC 6376 §5.4.2), so one added on top changes no signature — and,
// beside it in the spool, the envelope, the client's address and HELO name,
// and whether TLS was in use.
//
// The listener protects the service from slow or hostile clients: a cap on
// connections, in all and per client address, on recipients, on line and
// message length, on refused commands and on commands that send no mail, a
// limit on a connection's lifetime, and timeouts on every read and write.
type SMTPServer struct {
	opts    SMTPOptions
	domains map[string]bool
	rcpts   map[string]bool // empty: any address in domains

	spool  *Spool
	log    *slog.Logger
	server *smtp.Server
	ln     *smtpListener

	// ctx is the context of deliveries to the spool: it is cancelled only
	// when a graceful shutdown runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{} // closed when Serve returns

	// spoolFailing is set when a delivery failed, and cleared by the next
	// success: while it is set, MAIL first checks that the spool is
	// writable, so clients are turned away before they send the data.
	spoolFailing atomic.Bool
}

// NewSMTPServer checks opts and returns a server ready to Start.
func NewSMTPServer(opts SMTPOptions) (*SMTPServer, error) {
	if opts.Hostname == "" {
		opts.Hostname = smtpDefaultHostname()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = verify.DefaultMaxSize
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultSMTPMaxRecipients
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultSMTPMaxConns
	}
	if opts.MaxConnsPerIP <= 0 {
		opts.MaxConnsPerIP = DefaultSMTPMaxConnsPerIP
	}
	opts.MaxConnsPerIP = min(opts.MaxConnsPerIP, opts.MaxConns)
	if opts.MaxSession <= 0 {
		opts.MaxSession = DefaultSMTPMaxSession
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSMTPTimeout
	}
	if opts.Budget == nil {
		opts.Budget = NewMemoryBudget(0)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequireTLS && opts.TLS == nil {
		return nil, errors.New("smtp: requiring STARTTLS needs a TLS certificate")
	}
	s := &SMTPServer{opts: opts, domains: map[string]bool{}, rcpts: map[string]bool{}}
	for _, d := range opts.Domains {
		d = normalizeDomain(d)
		if d == "" || strings.ContainsAny(d, "@ \t<>") {
			return nil, fmt.Errorf("smtp: %q is not a domain", d)
		}
		s.domains[d] = true
	}
	if len(s.domains) == 0 {
		return nil, errors.New("smtp: no domain to accept mail for")
	}
	for _, a := range opts.Recipients {
		local, domain, ok := splitAddress(a)
		if !ok || local == "" {
			return nil, fmt.Errorf("smtp: recipient %q is not an address", a)
		}
		if !s.domains[domain] {
			return nil, fmt.Errorf("smtp: recipient %s is not in an accepted domain", a)
		}
		s.rcpts[strings.ToLower(local)+"@"+domain] = true
	}
	if opts.TLS != nil {
		// The configuration is shared with other inputs (HTTPS may set
		// NextProtos): STARTTLS gets its own copy.
		s.opts.TLS = opts.TLS.Clone()
	}
	return s, nil
}

// String describes the input for the start-up log.
func (s *SMTPServer) String() string {
	domains := make([]string, len(s.opts.Domains))
	for i, d := range s.opts.Domains {
		domains[i] = normalizeDomain(d)
	}
	desc := fmt.Sprintf("smtp %s for %s", s.opts.Addr, strings.Join(domains, " "))
	if len(s.rcpts) > 0 {
		desc += fmt.Sprintf(" (%d addresses)", len(s.rcpts))
	}
	return desc
}

// Start listens on opts.Addr and serves in the background. The spool must
// be writable. Deliveries in progress are not cancelled with ctx: Shutdown
// ends them.
func (s *SMTPServer) Start(ctx context.Context, spool *Spool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := spool.Writable(); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	l, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	s.spool, s.log = spool, log
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.ln = &smtpListener{Listener: l, srv: s, slots: make(chan struct{}, s.opts.MaxConns), conns: map[*smtpConn]struct{}{},
		perIP: map[netip.Prefix]int{}}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.opts.Hostname
	// go-smtp counts the data without the final ".", but wants room for it:
	// a message of exactly MaxMessageBytes gets 552 too.
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = smtpMaxLineLength
	srv.ReadTimeout = s.opts.Timeout
	srv.WriteTimeout = s.opts.Timeout
	srv.TLSConfig = s.opts.TLS
	srv.ErrorLog = smtpErrorLog{log}
	s.server = srv

	log.Info("SMTP listening on "+l.Addr().String(), "hostname", s.opts.Hostname,
		"starttls", s.opts.TLS != nil, "require_tls", s.opts.RequireTLS, "max_size", s.opts.MaxMessageBytes,
		"max_recipients", s.opts.MaxRecipients, "max_conns", s.opts.MaxConns, "max_conns_per_ip", s.opts.MaxConnsPerIP,
		"max_session", s.opts.MaxSession.String())
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := srv.Serve(s.ln); err != nil {
			log.Error("SMTP listener failed; no more connections are taken", "error", err)
		}
	}()
	return nil
}

// Addr returns the address the server listens on, once started.
func (s *SMTPServer) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops taking connections and closes the open ones as soon as
// they are idle: a client waiting to send its next command gets 421 4.4.2
// (it will retry), a message being received or written to the spool is
// finished and answered first. When ctx ends first, the remaining
// connections are cut, without a 250 for their message.
func (s *SMTPServer) Shutdown(ctx context.Context) error {
	if s.server == nil {
		return nil
	}
	s.ln.drain()
	err := s.server.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	// Serve may not have registered the listener with go-smtp yet (a
	// signal right after Start): close it here too, so it returns.
	s.ln.Listener.Close()
	if err != nil {
		// go-smtp's Close does nothing after Shutdown: cut the
		// connections here.
		s.cancel()
		s.ln.closeAll()
	}
	select {
	case <-s.served:
	case <-ctx.Done():
	}
	s.cancel()
	if err != nil {
		s.log.Warn("SMTP listener stopped; connections cut", "error", err)
		return fmt.Errorf("smtp: %w", err)
	}
	s.log.Info("SMTP listener stopped")
	return nil
}

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
}

// Reset implements smtp.Session: RSET, a new EHLO, or the end of DATA.
func (ss *smtpSession) Reset() {
	ss.from, ss.to = "", nil
}

// Logout implements smtp.Session. The connection logs its own end.
func (ss *smtpSession) Logout() error { return nil }

// Mail implements smtp.Session.
func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.conn.progress.Store(true)
	if ss.srv.opts.RequireTLS && ss.tls == nil {
		// RFC 3207 §4: "530 Must issue a STARTTLS command first".
		return ss.refused(errTLSRequired, "from", from)
	}
	if ss.srv.spoolFailing.Load() {
		if err := ss.srv.spool.Writable(); err != nil {
			ss.log.Error("SMTP 451 4.3.0 refused: the spool is not writable", "error", err, "from", from)
			ss.conn.loggedReply(errSpoolUnavailable)
			ss.srv.observe(errSpoolUnavailable.Code)
			return errSpoolUnavailable
		}
	}
	ss.from, ss.to = from, nil
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

// observe counts a reply (SMTPOptions.ObserveReply).
func (s *SMTPServer) observe(code int) {
	if s.opts.ObserveReply != nil {
		s.opts.ObserveReply(code)
	}
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

// Data implements smtp.Session: it reads the message (at most
// MaxMessageBytes), writes it durably into the spool, and only then answers
// 250 with the spool name (RFC 5321 §6.1: once it has answered 250, the
// server is responsible for the message).
func (ss *smtpSession) Data(r io.Reader) error {
	ss.conn.progress.Store(true)
	ss.conn.setInData(true)
	defer ss.conn.setInData(false)
	srv := ss.srv
	now := srv.opts.Now()
	// The transaction is read before the data: with BDAT (RFC 3030)
	// go-smtp runs Data in a goroutine of its own while the connection
	// reads the next chunk's command, which may be RSET.
	from, to, helo := ss.from, append([]string(nil), ss.to...), ss.c.Hostname()
	if len(helo) > 255 {
		helo = helo[:255]
	}
	rcpts := strings.Join(to, " ")

	// The message arrives into the spool's hands: held in memory while the
	// inputs' budget has room, it is small and its header within the caps,
	// else written to a file in tmp/ as it comes.
	w := srv.spool.NewMessageWriter(MessageWriterOptions{Budget: srv.opts.Budget, Header: &srv.opts.HeaderLimits})
	defer w.Close()
	limit := srv.opts.MaxMessageBytes
	lr := &io.LimitedReader{R: r, N: limit + 1}
	// The trace header goes first, with the line ending of the message's
	// first line (a bare-LF message gets a bare-LF trace): that line is
	// read first. A message without header fields gets none (below).
	first, err := readFirstLine(lr, ss.conn.firstLineBuf())
	trace := ""
	if startsHeader(first) {
		trace = ss.received(now, helo, to, lineEnding(first))
		w.Write([]byte(trace))
	}
	w.Write(first)
	if err == nil {
		_, err = w.ReadFrom(lr)
	}
	size := w.Size() - int64(len(trace))
	var spoolErr error
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge) || err == nil && size > limit:
		return ss.refused(smtp.ErrDataTooLarge, "from", from, "to", rcpts, "limit", limit)
	case errors.Is(err, smtp.ErrTooLongLine):
		return ss.refused(errLineTooLong, "from", from, "to", rcpts)
	case w.Err() != nil:
		spoolErr = w.Err() // the spool's failure, not the sender's
	case err != nil:
		ss.log.Warn("SMTP 451 4.4.2 message transfer interrupted", "error", err, "from", from, "received", size)
		ss.conn.loggedReply(errDataAborted)
		srv.observe(errDataAborted.Code)
		return errDataAborted
	}
	if herr := w.HeaderErr(); herr != nil {
		// Spooled all the same, and reported message_malformed by the
		// pipeline: the sender never learns a verdict here.
		ss.log.Warn("SMTP message header over the cap: written to the spool as it came, for the pipeline to report",
			"from", from, "to", rcpts, "cap", capDetail(herr))
	}
	// The pipeline refuses a file larger than the limit: keep the
	// message, drop the trace. So too a message that is blank through
	// and through: the trace would make it look like one with a header
	// and no From.
	if trace != "" && spoolErr == nil && (w.Size() > limit || !w.Spilled() && !hasHeaderFields(w.Bytes()[len(trace):])) {
		spoolErr = w.DropPrefix(int64(len(trace)))
	}
	tlsUsed := "no"
	if ss.tls != nil {
		tlsUsed = "yes"
	}
	env := Envelope{
		Source:       "smtp",
		EnvelopeFrom: from,
		EnvelopeTo:   to,
		RemoteAddr:   ss.conn.RemoteAddr().String(),
		Received:     now,
		Extra:        map[string]string{"helo": helo, "tls": tlsUsed, "smtp_session": ss.conn.id},
	}
	name, err := "", spoolErr
	if err == nil {
		name, err = srv.spool.DeliverWriter(srv.ctx, w, env)
	}
	if err != nil {
		srv.spoolFailing.Store(true)
		ss.log.Error("SMTP 451 4.3.0 not queued: "+err.Error(), "from", from, "to", rcpts, "size", size)
		ss.conn.loggedReply(errSpoolUnavailable)
		srv.observe(errSpoolUnavailable.Code)
		return errSpoolUnavailable
	}
	srv.spoolFailing.Store(false)
	ss.conn.messages.Add(1)
	ss.conn.junk.Store(0)
	ss.log.Info("SMTP 250 queued as "+name, "from", from, "to", rcpts, "size", size, "helo", helo, "tls", tlsUsed)
	srv.observe(250)
	// go-smtp answers an SMTPError as given: this is how a backend chooses
	// its 250 text.
	queued := &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + name}
	ss.conn.loggedReply(queued)
	return queued
}

// smtpFirstLineMax is the most Data reads of a message before it chooses
// the trace header's line ending: a DATA line is at most smtpMaxLineLength
// bytes, so the first line's end is in it. (A BDAT message whose first
// line is longer gets a CRLF trace.)
const smtpFirstLineMax = 4 << 10

// readFirstLine reads from r into buf until the end of the first line (or
// of r, or of buf), and returns what it read. The end of r is not an
// error.
func readFirstLine(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if bytes.IndexByte(buf[n-m:n], '\n') >= 0 || errors.Is(err, io.EOF) {
			return buf[:n], nil
		}
		if err != nil {
			return buf[:n], err
		}
	}
	return buf[:n], nil
}

// startsHeader reports whether a message whose first bytes are first can
// have header fields: it does not start with the blank line that ends the
// header section (RFC 5322 §2.1), and is not empty.
func startsHeader(first []byte) bool {
	return len(first) > 0 && !bytes.HasPrefix(first, []byte("\r\n")) && first[0] != '\n'
}

// hasHeaderFields reports whether data starts with a header field rather
// than the blank line that ends the header section (RFC 5322 §2.1), and is
// not blank altogether.
func hasHeaderFields(data []byte) bool {
	return len(bytes.TrimSpace(data)) > 0 && !bytes.HasPrefix(data, []byte("\r\n")) && !bytes.HasPrefix(data, []byte("\n"))
}

// lineEnding returns the line ending of data's first line: "\n" for a bare
// LF, else "\r\n".
func lineEnding(data []byte) string {
	i := bytes.IndexByte(data, '\n')
	if i > 0 && data[i-1] != '\r' || i == 0 {
		return "\n"
	}
	return "\r\n"
}

// received returns the trace header of a message from helo to to (RFC 5321
// §4.4, RFC 5322 §3.6.7), folded, with eol line endings:
//
//	Received: from mail.example.net ([192.0.2.1])
//		by mx.example.org (certharvest) with ESMTPS (TLS 1.3 TLS_AES_128_GCM_SHA256)
//		id smtp-1a2b3c4d for <user@example.org>; Mon, 01 Jun 2026 10:00:00 +0000
//
// The for clause names the recipient only when there is one (RFC 5321
// §7.2: never disclose the other recipients).
func (ss *smtpSession) received(now time.Time, helo string, to []string, eol string) string {
	var b strings.Builder
	literal := addressLiteral(ss.conn.RemoteAddr())
	from := helo
	if !validHelo(from) {
		from = "unknown"
	}
	// RFC 3848: ESMTP, ESMTPS after STARTTLS; plain SMTP after HELO is not
	// told apart from EHLO by go-smtp.
	proto, tlsInfo := "ESMTP", ""
	if ss.tls != nil {
		proto = "ESMTPS"
		tlsInfo = fmt.Sprintf(" (%s %s)", tls.VersionName(ss.tls.Version), tls.CipherSuiteName(ss.tls.CipherSuite))
	}
	fmt.Fprintf(&b, "Received: from %s (%s)%s\tby %s (certharvest) with %s%s%s\tid %s",
		from, literal, eol, ss.srv.opts.Hostname, proto, tlsInfo, eol, ss.conn.id)
	if len(to) == 1 {
		fmt.Fprintf(&b, " for <%s>", to[0])
	}
	fmt.Fprintf(&b, "; %s%s", now.Format(time.RFC1123Z), eol)
	return b.String()
}

// validHelo reports whether a HELO argument can be written in a trace
// header as is: a domain name or an address literal (RFC 5321 §4.1.3), at
// most 255 characters.
func validHelo(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		lit := strings.TrimPrefix(h[1:len(h)-1], "IPv6:")
		_, err := netip.ParseAddr(lit)
		return err == nil
	}
	for _, c := range []byte(h) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// addressLiteral formats a peer's address as an RFC 5321 §4.1.3 address
// literal: [192.0.2.1] or [IPv6:2001:db8::1].
func addressLiteral(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "[unknown]"
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		return "[IPv6:" + ip.WithZone("").String() + "]"
	}
	return "[" + ip.String() + "]"
}

// smtpListener wraps the TCP listener: it caps the connections served at
// once, in all and per client address, gives each one an id and a logger,
// and closes them on shutdown.
type smtpListener struct {
	net.Listener
	srv      *SMTPServer
	slots    chan struct{}
	draining atomic.Bool

	mu    sync.Mutex
	conns map[*smtpConn]struct{}
	perIP map[netip.Prefix]int // connections served, by clientPrefix
}

// Accept implements net.Listener. A connection beyond MaxConns, or beyond
// MaxConnsPerIP from its address, is answered 421 4.7.0 and closed here
// (RFC 5321 §3.1: a server may refuse a connection with 421), without
// reaching go-smtp.
func (l *smtpListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.refuse(nc, "too many connections", "max_conns", cap(l.slots))
			continue
		}
		client := clientPrefix(nc.RemoteAddr())
		l.mu.Lock()
		if l.perIP[client] >= l.srv.opts.MaxConnsPerIP {
			l.mu.Unlock()
			<-l.slots
			l.refuse(nc, "too many connections from your address", "max_conns_per_ip", l.srv.opts.MaxConnsPerIP)
			continue
		}
		l.perIP[client]++
		c := &smtpConn{Conn: nc, ln: l, id: newSMTPID(), opened: time.Now(), client: client}
		c.log = l.srv.log.With("id", c.id)
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		c.log.Info("SMTP connection from "+nc.RemoteAddr().String(), "conns", len(l.slots))
		return c, nil
	}
}

// refuse answers a connection over a cap and closes it. A fresh socket's
// send buffer is empty, so the write does not block; the deadline makes
// sure of it.
func (l *smtpListener) refuse(nc net.Conn, why string, args ...any) {
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(nc, "421 4.7.0 %s %s, try again later\r\n", l.srv.opts.Hostname, why)
	nc.Close()
	l.srv.log.Warn("SMTP 421 4.7.0 refused connection from "+nc.RemoteAddr().String()+": "+why, args...)
	l.srv.observe(421)
}

// clientPrefix is what MaxConnsPerIP counts connections by: an IPv4
// address, or an IPv6 address's /64 (RFC 4291 §2.5.4: the interface
// identifier is the host's own to choose, so one host has them all).
func clientPrefix(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}

// drain makes every idle connection's wait for a command end now (go-smtp
// then answers 421 4.4.2 and closes it); a connection in DATA is drained
// when its message is answered.
func (l *smtpListener) drain() {
	l.draining.Store(true)
	l.mu.Lock()
	conns := make([]*smtpConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Not under l.mu: a connection busy in its own c.mu must not hold up
	// the others' Close.
	for _, c := range conns {
		c.drain()
	}
}

// closeAll closes every connection.
func (l *smtpListener) closeAll() {
	l.mu.Lock()
	conns := make([]*smtpConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

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
	switch {
	case time.Since(c.opened) >= c.ln.srv.opts.MaxSession:
		c.ended.Store(true)
		return errSessionTooLong, []any{"max_session", c.ln.srv.opts.MaxSession.String()}, errConnEnded
	case c.junk.Load() >= smtpMaxJunkCommands && !c.inData:
		c.ended.Store(true)
		return errTooManyJunkCommands, []any{"junk_commands", c.junk.Load()}, errConnEnded
	case c.closingNow():
		t = time.Now()
	}
	// Under c.mu, so that drain's deadline of now is not overwritten.
	return nil, nil, c.Conn.SetReadDeadline(t)
}

// Read implements net.Conn: once the connection has been ended, it fails as
// if closed.
func (c *smtpConn) Read(p []byte) (int, error) {
	if c.ended.Load() {
		return 0, errConnEnded
	}
	return c.Conn.Read(p)
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

func (c *smtpConn) setInData(in bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData = in
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

// smtpDefaultHostname is the machine's name, for the banner.
func smtpDefaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// newSMTPID returns a connection id for the log: smtp- and 8 hex digits.
func newSMTPID() string {
	var b [4]byte
	rand.Read(b[:])
	return "smtp-" + hex.EncodeToString(b[:])
}

// smtpErrorLog sends go-smtp's own messages (a failed TLS handshake, a
// connection error, a recovered panic) to the log.
type smtpErrorLog struct{ log *slog.Logger }

func (l smtpErrorLog) Printf(format string, v ...any) {
	l.log.Warn("SMTP: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l smtpErrorLog) Println(v ...any) {
	l.log.Warn("SMTP: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
