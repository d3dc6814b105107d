package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// errHelp is returned once a command printed what was asked (--help,
// --print-config) and has nothing to run: exit status 0. It is not
// pflag.ErrHelp, on which cobra would print the help a second time.
var errHelp = errors.New("certharvest: printed what was asked")

// pipelineFlags are the flags every command that verifies shares. The
// values that have a form (an alignment, a size, a time, a level) are
// parsed when set, from the command line or a configuration file alike,
// so that config check refuses exactly what the commands refuse.
type pipelineFlags struct {
	trust     string
	dkimKeys  string
	align     parsedFlag[verify.Alignment]
	at        parsedFlag[time.Time]
	maxSize   parsedFlag[int64]
	maxHeader parsedFlag[int64]
	maxFields int
	logFile   string
	logLevel  parsedFlag[slog.Level]
	logFormat parsedFlag[string]
	dnsWait   time.Duration
	dnsServer parsedFlag[string]
	reference bool
	// trustAuthserv are the authserv-ids whose Authentication-Results
	// establish DKIM once a key is gone (authres.go).
	trustAuthserv parsedFlag[[]string]
	// requireProfile refuses certificates below an S/MIME BR profile
	// (verify/profile.go).
	requireProfile parsedFlag[verify.Profile]
	revocation     revocationFlags
}

func (f *pipelineFlags) register(fs *pflag.FlagSet) {
	f.align = newParsedFlag("strict", verify.ParseAlignment)
	f.at = newParsedFlag("", parseAt)
	f.maxSize = newParsedFlag(formatSize(verify.DefaultMaxSize), parseSize)
	f.maxHeader = newParsedFlag(formatSize(verify.DefaultMaxHeaderBytes), parseSize)
	f.logLevel = newParsedFlag("info", parseLogLevel)
	f.logFormat = newParsedFlag("text", parseLogFormat)
	f.dnsServer = newParsedFlag("", parseDNSServer)
	fs.StringVar(&f.trust, "trust", "", "PEM `file` of trusted root certificates (default: the system roots)")
	fs.StringVar(&f.dkimKeys, "dkim-keys", "", "DKIM keys `file` (lines NAME<TAB>TXT record) used instead of DNS: no network lookups at all")
	fs.Var(&f.align, "dkim-align", "DKIM `alignment` with From: strict (d= is the From domain) or relaxed")
	fs.Var(&f.at, "at", "verify certificates at this `time` (RFC 3339, e.g. 2026-06-01T00:00:00Z; default: now)")
	fs.Var(&f.maxSize, "max-size", "largest message accepted (`bytes`; suffixes KiB, MiB, GiB)")
	fs.Var(&f.maxHeader, "max-header-bytes", "largest header section accepted (`bytes`; message_malformed beyond)")
	positiveIntVar(fs, &f.maxFields, "max-header-fields", verify.DefaultMaxHeaderFields, "most header `fields` accepted (message_malformed beyond)")
	fs.StringVar(&f.logFile, "log", "", "write the log to `file` instead of standard error")
	fs.Var(&f.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&f.logFormat, "log-format", "log `format`: text (for people, one block per message) or json (one object per line)")
	fs.DurationVar(&f.dnsWait, "dns-timeout", 5*time.Second, "time allowed for one DKIM key lookup in DNS")
	fs.Var(&f.dnsServer, "dns-server", "DNS server (`host:port`) asked for DKIM keys (default: /etc/resolv.conf's)")
	fs.BoolVar(&f.reference, "reference-path", false, "verify on the reference path, for audits (slower, same verdicts)")
	f.trustAuthserv = newParsedFlag("", parseAuthservIDs)
	fs.Var(&f.trustAuthserv, "trust-authserv-id", "when a DKIM key is gone, trust the Authentication-Results of these `ids` (a,b)")
	f.requireProfile = newParsedFlag("", verify.ParseProfile)
	fs.Var(&f.requireProfile, "require-profile", "refuse certificates below this S/MIME BR `profile`: strict, multipurpose or legacy")
	f.revocation.register(fs)
}

// parsedFlag is a pflag.Value checked when it is set: its text is kept for
// printing, its parsed value for use. An invalid value is refused by Set,
// so the command line and a configuration file get the same error.
type parsedFlag[T any] struct {
	text  string
	value T
	parse func(string) (T, error)
}

// newParsedFlag returns a flag set to def, which must parse.
func newParsedFlag[T any](def string, parse func(string) (T, error)) parsedFlag[T] {
	v, err := parse(def)
	if err != nil {
		panic(fmt.Sprintf("default %q: %v", def, err))
	}
	return parsedFlag[T]{text: def, value: v, parse: parse}
}

func (f *parsedFlag[T]) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

// Type names the value in help text when the usage string has no
// `name` of its own (pflag.Value).
func (f *parsedFlag[T]) Type() string { return "string" }

func (f *parsedFlag[T]) Set(s string) error {
	v, err := f.parse(s)
	if err != nil {
		return err
	}
	f.text, f.value = s, v
	return nil
}

// parseAt parses --at: RFC 3339, or "" for the current time (a zero time).
func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339, like 2026-06-01T00:00:00Z")
	}
	return t, nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("want debug, info, warn or error")
	}
	return level, nil
}

// parseDNSServer checks a DNS server's address: an IP address and a port
// (a name would need DNS to be found).
func parseDNSServer(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || net.ParseIP(host) == nil || port == "" {
		return "", errors.New("want an IP address and a port, like 127.0.0.1:53 or [::1]:53")
	}
	return s, nil
}

func parseLogFormat(s string) (string, error) {
	if s != "text" && s != "json" {
		return "", errors.New("want text or json")
	}
	return s, nil
}

// positiveInt is an int flag that must be at least 1 (--workers, --batch).
type positiveInt struct{ p *int }

// positiveIntVar defines an int flag that refuses values below 1.
func positiveIntVar(fs *pflag.FlagSet, p *int, name string, value int, usage string) {
	*p = value
	fs.Var(positiveInt{p}, name, usage)
}

func (v positiveInt) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

// Type is pflag.Value's: a positive int is an int.
func (v positiveInt) Type() string { return "int" }

func (v positiveInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return errors.New("want a whole number, at least 1")
	}
	*v.p = n
	return nil
}

// pipelineSetup is what pipelineFlags build.
type pipelineSetup struct {
	opts      verify.Options
	logger    *slog.Logger
	closeLog  func() error
	reopenLog func() error
	trustDesc string
	keysDesc  string
}

// build turns the flags into pipeline options. logTo is where the log goes
// when --log is not given.
func (f *pipelineFlags) build(logTo io.Writer) (*pipelineSetup, error) {
	s := &pipelineSetup{closeLog: func() error { return nil }, reopenLog: func() error { return nil }}
	// The values were parsed as they were set (see parsedFlag).
	align, maxSize, level := f.align.value, f.maxSize.value, f.logLevel.value
	now := time.Now
	if at := f.at.value; !at.IsZero() {
		now = func() time.Time { return at }
	}
	if f.logFile != "" {
		lf, err := output.OpenReopenable(f.logFile)
		if err != nil {
			return nil, fmt.Errorf("opening log: %w", err)
		}
		logTo, s.closeLog, s.reopenLog = lf, lf.Close, lf.Reopen
	}
	if f.logFormat.value == "json" {
		s.logger = slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: level}))
	} else {
		s.logger = slog.New(output.NewLogHandler(logTo, level))
	}

	roots, n, err := loadTrust(f.trust)
	if err != nil {
		return nil, err
	}
	// The system pool does not tell its size (x509.CertPool hides the
	// system roots from Subjects): it is described without a count.
	s.trustDesc = "system roots"
	if f.trust != "" {
		s.trustDesc = fmt.Sprintf("%s (%s)", f.trust, plural(n, "root"))
	}

	var lookup verify.LookupTXTFunc
	if f.dkimKeys != "" {
		kf, err := os.Open(f.dkimKeys)
		if err != nil {
			return nil, fmt.Errorf("DKIM keys: %w", err)
		}
		keys, err := verify.ParseDKIMKeys(kf)
		kf.Close()
		if err != nil {
			return nil, fmt.Errorf("DKIM keys %s: %w", f.dkimKeys, err)
		}
		lookup = keys.LookupTXT
		s.keysDesc = fmt.Sprintf("%s (%s, no DNS)", f.dkimKeys, plural(keys.Len(), "key"))
	} else {
		var resolver *net.Resolver // the system's
		s.keysDesc = "DNS"
		if server := f.dnsServer.value; server != "" {
			var d net.Dialer
			resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, server)
			}}
			s.keysDesc = "DNS server " + server
		}
		lookup = verify.DNSLookup(resolver, f.dnsWait)
	}
	s.opts = verify.Options{
		Roots:     roots,
		LookupTXT: lookup,
		Align:     align,
		Now:       now,
		MaxSize:   maxSize,
		HeaderLimits: verify.HeaderLimits{
			MaxBytes:  f.maxHeader.value,
			MaxFields: f.maxFields,
		},
		Logger:           s.logger,
		BlockPrefix:      f.logFormat.value == "text",
		Reference:        f.reference,
		TrustAuthservIDs: f.trustAuthserv.value,
		RequireProfile:   f.requireProfile.value,
	}
	if err := f.revocation.apply(&s.opts, s.logger); err != nil {
		return nil, err
	}
	if f.reference {
		// Said once, so that the log of an audit shows how it was run.
		s.logger.Info("verifying on the reference path: no CMS fast path, no chain link cache")
	}
	return s, nil
}

// loadTrust reads a PEM bundle of trust anchors and counts them, or returns
// the system roots, uncounted (0), for an empty path. Certificates Go cannot
// parse (a negative serial number, say) are skipped, as AppendCertsFromPEM
// does.
func loadTrust(path string) (*x509.CertPool, int, error) {
	if path == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, 0, fmt.Errorf("system trust roots: %w", err)
		}
		return pool, 0, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("trust bundle: %w", err)
	}
	pool := x509.NewCertPool()
	n, skipped := 0, 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			skipped++
			continue
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("trust bundle %s holds no usable certificate (%d could not be parsed)", path, skipped)
	}
	return pool, n, nil
}

// parseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive number of bytes, like 26214400 or 25MiB")
	}
	return n * mult, nil
}

// defaultWorkers is the default size of the worker pool.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// command is a subcommand's flag set and its usage text. Every command
// takes --config (a configuration file whose values the command line
// overrides) and --print-config. The command line is read by cobra (see
// newRootCommand), which shares the flags of fs.
type command struct {
	name        string
	fs          *pflag.FlagSet
	usage       string
	stdout      io.Writer
	configPath  *string
	printConfig *bool
}

// newCommand returns a command with its --config and --print-config flags.
func newCommand(name, usage string, stdout io.Writer) *command {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &command{name: name, fs: fs, usage: usage, stdout: stdout}
	c.configPath = fs.String("config", "", "configuration `file` (TOML, or the original webapp.ini); flags override it")
	c.printConfig = fs.Bool("print-config", false, "print the effective configuration and exit")
	return c
}

// configure applies the configuration file to the flags the command line
// did not set, once the command line is read. With --print-config it
// prints the configuration and returns errHelp.
func (c *command) configure() error {
	if *c.configPath != "" {
		cfg, err := loadConfig(*c.configPath)
		if err != nil {
			return err
		}
		problems := cfg.checkKeys(commandFlagSets())
		problems = append(problems, cfg.applyProblems(c.name, c.fs)...)
		if err := cfg.errorOf(problems); err != nil {
			return err
		}
	}
	if *c.printConfig {
		printConfig(c.stdout, c.fs)
		return errHelp
	}
	return nil
}
