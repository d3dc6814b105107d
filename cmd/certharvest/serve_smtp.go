package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// smtpFlags are the flags of the SMTP input: a receiving MX for
// certharvest's own addresses (ingest.SMTPServer).
type smtpFlags struct {
	addr          string
	domains       smtpList
	rcpts         smtpList
	requireTLS    bool
	hostname      string
	maxRecipients int
	maxConns      int
	maxConnsPerIP int
	maxSession    time.Duration
	timeout       time.Duration
	busyIdle      time.Duration
}

func (f *smtpFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "smtp", "", "listen for SMTP on `address` (e.g. :25, 127.0.0.1:2525) and spool the mail for --smtp-domain")
	fs.Var(&f.domains, "smtp-domain", "accept mail for this `domain` (repeatable; required with --smtp)")
	fs.Var(&f.rcpts, "smtp-rcpt", "accept mail only for this `address` (repeatable)")
	fs.BoolVar(&f.requireTLS, "smtp-require-tls", false, "refuse MAIL before STARTTLS (530 5.7.0); needs --tls-cert")
	fs.StringVar(&f.hostname, "smtp-hostname", "", "`name` in the SMTP banner and Received: field (default: the host name)")
	fs.IntVar(&f.maxRecipients, "smtp-max-recipients", ingest.DefaultSMTPMaxRecipients, "most recipients per message; more get 452 4.5.3")
	fs.IntVar(&f.maxConns, "smtp-max-conns", ingest.DefaultSMTPMaxConns, "most SMTP connections at once; more get 421 4.7.0")
	fs.IntVar(&f.maxConnsPerIP, "smtp-max-conns-per-ip", ingest.DefaultSMTPMaxConnsPerIP,
		"most SMTP connections at once from one address (IPv6: one /64)")
	fs.DurationVar(&f.maxSession, "smtp-max-session", ingest.DefaultSMTPMaxSession,
		"lifetime of an SMTP connection; then 421 4.4.2 at its next command")
	fs.DurationVar(&f.timeout, "smtp-timeout", ingest.DefaultSMTPTimeout, "time allowed for each SMTP command, reply, and a whole DATA transfer")
	fs.DurationVar(&f.busyIdle, "smtp-busy-idle", ingest.DefaultSMTPBusyIdle,
		"when over half the connections are taken, close one idle this long")
}

// build returns the SMTP input, or nil without --smtp.
func (f *smtpFlags) build(env *inputEnv) (input, error) {
	if f.addr == "" {
		if len(f.domains) > 0 || len(f.rcpts) > 0 || f.requireTLS || f.hostname != "" {
			return nil, usagef("--smtp-domain, --smtp-rcpt, --smtp-require-tls and --smtp-hostname need --smtp")
		}
		return nil, nil
	}
	if len(f.domains) == 0 {
		return nil, usagef("--smtp needs at least one --smtp-domain")
	}
	if f.requireTLS && env.TLS == nil {
		return nil, usagef("--smtp-require-tls needs --tls-cert and --tls-key")
	}
	if f.maxRecipients < 1 || f.maxConns < 1 || f.maxConnsPerIP < 1 || f.maxSession <= 0 || f.timeout <= 0 || f.busyIdle <= 0 {
		return nil, usagef("--smtp-max-recipients, --smtp-max-conns, --smtp-max-conns-per-ip, --smtp-max-session, --smtp-timeout and --smtp-busy-idle must be positive")
	}
	// Without SMTPUTF8 (RFC 6531) mail arrives with A-labels (RFC 5890):
	// an internationalised domain is given in that form.
	for _, a := range append(append([]string(nil), f.domains...), f.rcpts...) {
		for _, r := range a {
			if r >= 0x80 {
				return nil, usagef("%q: give an internationalised domain as its A-label (xn--...)", a)
			}
		}
	}
	for _, r := range f.rcpts {
		if at := strings.LastIndexByte(r, '@'); at <= 0 || at == len(r)-1 {
			return nil, usagef("--smtp-rcpt %q: want local@domain", r)
		}
	}
	var observe func(int)
	if env.Metrics != nil {
		observe = env.Metrics.SMTPReply
	}
	var headerLimits verify.HeaderLimits
	if env.Setup != nil {
		headerLimits = env.Setup.opts.HeaderLimits
	}
	opts := ingest.SMTPOptions{
		Addr:            f.addr,
		Hostname:        f.hostname,
		Domains:         f.domains,
		Recipients:      f.rcpts,
		TLS:             env.TLS,
		RequireTLS:      f.requireTLS,
		MaxMessageBytes: env.MaxSize,
		MaxRecipients:   f.maxRecipients,
		MaxConns:        f.maxConns,
		MaxConnsPerIP:   f.maxConnsPerIP,
		MaxSession:      f.maxSession,
		Timeout:         f.timeout,
		BusyIdle:        f.busyIdle,
		Budget:          env.Memory,
		HeaderLimits:    headerLimits,
		ObserveReply:    observe,
	}
	// The options are checked now, with the flags; the server is made
	// again on the spool when it starts.
	check, err := ingest.NewSMTPServer(nil, opts)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &smtpInput{opts: opts, desc: check.String()}, nil
}

// smtpInput is the SMTP input: a receiving MX for certharvest's own
// addresses (ingest.SMTPServer), delivering into the spool.
type smtpInput struct {
	opts ingest.SMTPOptions
	desc string
	srv  *ingest.SMTPServer // once started
}

func (in *smtpInput) String() string { return in.desc }

// Start listens on --smtp and serves in the background.
func (in *smtpInput) Start(ctx context.Context, sink ingest.Sink, log *slog.Logger) error {
	opts := in.opts
	opts.Logger = log
	srv, err := ingest.NewSMTPServer(sink, opts)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	in.srv = srv
	return nil
}

// Shutdown stops the server, once started (SMTPServer.Shutdown).
func (in *smtpInput) Shutdown(ctx context.Context) error {
	if in.srv == nil {
		return nil
	}
	return in.srv.Shutdown(ctx)
}

// smtpList is a repeatable string flag.
type smtpList []string

func (l *smtpList) String() string { return strings.Join(*l, ",") }

// Type is pflag.Value's: a list of strings, one per use of the flag.
func (l *smtpList) Type() string { return "strings" }

func (l *smtpList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
