package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
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
	// smtpd_client_connection_count_limit: one host cannot take every slot,
	// nor can two, nor nine (each takes a tenth of DefaultSMTPMaxConns). A
	// real MTA sends to one MX over a few connections at most (Postfix's
	// default destination concurrency is 20 for a whole domain, spread
	// over its MX hosts, and it slows down on a 421); a relay on the same
	// machine needs a higher limit.
	DefaultSMTPMaxConnsPerIP = 10
	// DefaultSMTPBusyIdle is how long a connection may wait without
	// sending a command while more than half of the connection slots are
	// taken: then it is closed with 421 4.4.2, as Postfix's stress mode
	// cuts its smtpd_timeout from 300 s to 10 s. Silent connections then
	// hold slots for seconds, not for DefaultSMTPTimeout each; a real
	// client sends its next command within a round trip.
	DefaultSMTPBusyIdle = 10 * time.Second
	// DefaultSMTPBusyDataRate is the least average rate, in bytes per
	// second, at which a message's data must arrive while more than half
	// of the connection slots are taken, after DefaultSMTPDataGrace: a
	// client trickling its DATA is never idle, and held its slot for the
	// whole --smtp-timeout. It is the webhook's DefaultWebhookMinBodyRate,
	// 16 KiB/s (128 kbit/s): far below an MTA's link, and a client that
	// wants to hold every slot must send MaxConns × 16 KiB/s.
	DefaultSMTPBusyDataRate = DefaultWebhookMinBodyRate
	// DefaultSMTPDataGrace is the start of a message's data that is not
	// held to the rate (TCP slow start, a satellite link's round trips):
	// the webhook's DefaultWebhookBodyGrace.
	DefaultSMTPDataGrace = DefaultWebhookBodyGrace
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
	// smtpBusyJunkCommands replaces it while more than half the slots are
	// taken, as Postfix lowers smtpd_junk_command_limit under stress
	// (STRESS_README): a client that keeps its slot with a NOOP every few
	// seconds, under BusyIdle, holds it for 20 of them (under three minutes
	// at one every 8 s) instead of 100 (13 minutes). A real client sends a
	// handful (EHLO, STARTTLS, EHLO) before MAIL.
	smtpBusyJunkCommands = 20
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
	// BusyIdle: while more than half of MaxConns are taken, a connection
	// that has waited this long for its next command is closed with 421
	// 4.4.2 (RFC 5321 §3.8), to free its slot. A connection receiving a
	// message is never idle. Default DefaultSMTPBusyIdle.
	BusyIdle time.Duration
	// BusyDataRate and DataGrace: while more than half of MaxConns are
	// taken, a message's data must have arrived at BusyDataRate bytes a
	// second on average since DataGrace after its start, or the transfer
	// is cut (451 4.4.2) and the connection closed. Defaults
	// DefaultSMTPBusyDataRate and DefaultSMTPDataGrace.
	BusyDataRate int64
	DataGrace    time.Duration
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
	// Logger receives the server's log: connections, replies, refusals;
	// nil discards it.
	Logger *slog.Logger
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

	sink   Sink
	log    *slog.Logger
	server *smtp.Server
	ln     *smtpListener

	// ctx is the context of deliveries to the sink: it is cancelled only
	// when a graceful shutdown runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{} // closed when Serve returns

	// spoolFailing is set when a delivery failed, and cleared by the next
	// success: while it is set, MAIL first checks that the sink has room
	// (Sink.Room), so clients are turned away before they send the data.
	spoolFailing atomic.Bool
}

// NewSMTPServer checks opts and returns a server, ready to Start, that
// delivers into sink. The sink is first used by Start: a nil sink makes a
// server that checks opts and cannot start.
func NewSMTPServer(sink Sink, opts SMTPOptions) (*SMTPServer, error) {
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
	if opts.BusyDataRate <= 0 {
		opts.BusyDataRate = DefaultSMTPBusyDataRate
	}
	if opts.DataGrace <= 0 {
		opts.DataGrace = DefaultSMTPDataGrace
	}
	if opts.BusyIdle <= 0 {
		opts.BusyIdle = DefaultSMTPBusyIdle
	}
	if opts.Budget == nil {
		opts.Budget = NewMemoryBudget(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequireTLS && opts.TLS == nil {
		return nil, errors.New("smtp: requiring STARTTLS needs a TLS certificate")
	}
	s := &SMTPServer{opts: opts, sink: sink, log: opts.Logger, domains: map[string]bool{}, rcpts: map[string]bool{}}
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
		desc += fmt.Sprintf(" (%d %s)", len(s.rcpts), pluralWord(len(s.rcpts), "address", "addresses"))
	}
	return desc
}

// Start listens on opts.Addr and serves in the background. The sink must
// have room (Sink.Room). Deliveries in progress are not cancelled with ctx:
// Shutdown ends them.
func (s *SMTPServer) Start(ctx context.Context) error {
	if s.sink == nil {
		return errors.New("smtp: no sink to deliver into")
	}
	if err := s.sink.Room(ctx, 0); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	l, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	log := s.log
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
	// RFC 6531: a sender with an internationalised address (RFC 6532
	// header fields, a UTF-8 envelope) sends only to a server that
	// advertises SMTPUTF8; the message is kept as its bytes.
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = smtpErrorLog{log}
	s.server = srv

	log.Info("SMTP listening on "+l.Addr().String(), "hostname", s.opts.Hostname,
		"starttls", s.opts.TLS != nil, "require_tls", s.opts.RequireTLS, "max_size", s.opts.MaxMessageBytes,
		"max_recipients", s.opts.MaxRecipients, "max_conns", s.opts.MaxConns, "max_conns_per_ip", s.opts.MaxConnsPerIP,
		"max_session", s.opts.MaxSession.String(), "busy_idle", s.opts.BusyIdle.String())
	s.served = make(chan struct{})
	go s.ln.evictLoop(s.served)
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

// observe counts a reply (SMTPOptions.ObserveReply).
func (s *SMTPServer) observe(code int) {
	if s.opts.ObserveReply != nil {
		s.opts.ObserveReply(code)
	}
}

// smtpDefaultHostname is the machine's name, for the banner.
func smtpDefaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
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
