package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/pgstore"
	"github.com/certharvest/certharvest/verify"
	"github.com/certharvest/certharvest/verify/revocation"
)

const revalidateUsage = `Usage: certharvest revalidate [--certs DIR | --store URL] [--revocation soft|hard]
                              [--revocation-cache DIR] [--trust FILE] [--at TIME] [--report FILE]

Check every stored certificate again, for a daily cron (the certificate to
encrypt to, and a dual-key sender's signing certificate beside it): its
expiry at --at (default: now) and, with --revocation soft or hard, whether
its issuer has revoked it (OCSP, then CRLs, as serve checks a new
certificate). A revoked
certificate is moved to the history with the reason (history/<address>/
<sha256>.revoked beside it; in PostgreSQL, the history row's
retired_reason): its address has no certificate until its owner sends a
message signed with a new one, and only a later certificate is stored for
it. An expired certificate is reported and left: a newer one replaces it.

Each certificate gets a line in the JSON-lines report (--report, standard
output by default): source "revalidate", reason ok, cert_expired,
cert_not_yet_valid, cert_revoked (action "retired" once moved),
revocation_unknown (hard: nothing moved), cert_untrusted; an unknown
status under soft is ok with a warning.

A stored certificate's chain is rebuilt from the trust roots (--trust) and
the intermediate CA certificates kept in the revocation cache folder when
a message of it was verified with --revocation: give revalidate serve's
--revocation-cache. A certificate whose issuer is unknown there has an
unknown status.

Exit status: 0 when every certificate was checked, whatever the verdicts;
1 on an operational error (a store that cannot be read, a certificate that
could not be moved); 2 on a usage error.

Examples:
  certharvest revalidate --certs /var/lib/certharvest/certs --revocation soft \
      --revocation-cache /var/cache/certharvest/revocation --report /var/log/certharvest/revalidate.jsonl
  certharvest revalidate --config /etc/certharvest/certharvest.toml
`

// revalidateArgs are revalidate's flags.
type revalidateArgs struct {
	certs, trust, report, logFile string
	at                            parsedFlag[time.Time]
	logLevel                      parsedFlag[slog.Level]
	workers                       int
	store                         storeFlags
	revocation                    revocationFlags
}

// defaultRevalidateWorkers is how many certificates revalidate checks at
// once: the checks wait on responders, not on the CPU.
const defaultRevalidateWorkers = 8

func newRevalidateCommand(stdout io.Writer) (*command, *revalidateArgs) {
	cmd := newCommand("revalidate", revalidateUsage, stdout)
	a := &revalidateArgs{}
	a.at = newParsedFlag("", parseAt)
	a.logLevel = newParsedFlag("info", parseLogLevel)
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	a.store.register(cmd.fs)
	cmd.fs.StringVar(&a.trust, "trust", "", "PEM `file` of trusted root certificates (default: the system roots)")
	cmd.fs.Var(&a.at, "at", "judge certificates at this `time` (RFC 3339; default: now)")
	cmd.fs.StringVar(&a.report, "report", "-", "JSON-lines report `file`, appended to; - for standard output")
	cmd.fs.StringVar(&a.logFile, "log", "", "write the log to `file` instead of standard error")
	cmd.fs.Var(&a.logLevel, "log-level", "log `level`: debug, info, warn or error")
	positiveIntVar(cmd.fs, &a.workers, "workers", defaultRevalidateWorkers, "certificates checked at once")
	a.revocation.register(cmd.fs)
	return cmd, a
}

// revalidateStore is what revalidate needs of a store: the folder
// (output.CertStore) or PostgreSQL (pgstore.Store).
type revalidateStore interface {
	Path(addr string) (string, error)
	Each(ctx context.Context, since time.Time, fn output.EachFunc) error
	Retire(ctx context.Context, addr string, cert *x509.Certificate, why output.Retirement) (bool, error)
	// SigningOf returns addr's signing certificate when it is kept beside
	// the one to encrypt to (a dual-key sender), and its file; nil when
	// there is none.
	SigningOf(ctx context.Context, addr string) (*x509.Certificate, string, error)
}

// folderRevalidate is the folder store as revalidate reads it.
type folderRevalidate struct{ *output.CertStore }

func (f folderRevalidate) SigningOf(_ context.Context, addr string) (*x509.Certificate, string, error) {
	st, err := f.LoadStored(addr)
	if err != nil || st.Signing == nil {
		return nil, "", err
	}
	path, err := f.Path(addr)
	return st.Signing, strings.TrimSuffix(path, ".crt") + output.SignSuffix, err
}

// pgRevalidate is the PostgreSQL store as revalidate reads it.
type pgRevalidate struct{ *pgstore.Store }

func (p pgRevalidate) SigningOf(ctx context.Context, addr string) (*x509.Certificate, string, error) {
	st, err := p.LoadStored(ctx, addr)
	if err != nil || st.Signing == nil {
		return nil, "", err
	}
	path, err := p.Path(addr + ".sign") // as StoreSet names it
	return st.Signing, path, err
}

// revalidator checks stored certificates.
type revalidator struct {
	at      time.Time
	roots   *x509.CertPool
	checker *revocation.Checker // nil: expiry only
	mode    verify.RevocationMode
	store   revalidateStore
	report  *output.Report
	log     *slog.Logger
	run     string // this run's start, in the report ids

	mu     sync.Mutex
	counts map[string]int
	errs   []error
}

func runRevalidate(ctx context.Context, a *revalidateArgs, args []string, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	logTo := stderr
	if a.logFile != "" {
		lf, err := output.OpenReopenable(a.logFile)
		if err != nil {
			return fmt.Errorf("opening log: %w", err)
		}
		defer lf.Close()
		logTo = lf
	}
	log := slog.New(output.NewLogHandler(logTo, a.logLevel.value))
	at := a.at.value
	if at.IsZero() {
		at = time.Now()
	}
	roots, _, err := loadTrust(a.trust)
	if err != nil {
		return err
	}
	checker, err := a.revocation.checker(log)
	if err != nil {
		return err
	}
	if checker != nil {
		defer checker.Close()
	}
	store, desc, closeStore, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	report, err := output.OpenReport(a.report)
	if err != nil {
		return err
	}
	defer report.Close()

	r := &revalidator{at: at, roots: roots, checker: checker, mode: a.revocation.mode.value, store: store,
		report: report, log: log, run: time.Now().UTC().Format(time.RFC3339Nano), counts: map[string]int{}}
	log.Info("revalidate starting", "store", desc, "at", at.UTC().Format(time.RFC3339), "revocation", string(r.mode))
	jobs := make(chan output.StoredCertificate)
	var wg sync.WaitGroup
	for range a.workers {
		wg.Go(func() {
			for sc := range jobs {
				r.check(ctx, sc)
			}
		})
	}
	eachErr := store.Each(ctx, time.Time{}, func(sc output.StoredCertificate, err error) error {
		if err != nil {
			r.failed(fmt.Errorf("%s: %w", sc.Address, err))
			return nil
		}
		select {
		case jobs <- sc:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if eachErr != nil {
		r.failed(fmt.Errorf("reading %s: %w", desc, eachErr))
	}
	if err := report.Sync(); err != nil {
		r.failed(err)
	}
	log.Info("revalidate done: " + r.summary())
	fmt.Fprintln(stderr, "revalidate: "+r.summary())
	return errors.Join(r.errs...)
}

// openStore opens the store the flags name, for reading and retiring.
func (a *revalidateArgs) openStore(ctx context.Context) (revalidateStore, string, func(), error) {
	spec, err := a.store.spec(a.certs)
	if err != nil {
		return nil, "", nil, err
	}
	if spec.pgURL != "" {
		s, err := openCheckedPostgres(ctx, spec.pgURL, nil)
		if err != nil {
			return nil, "", nil, err
		}
		return pgRevalidate{s}, s.String(), s.Close, nil
	}
	folder, err := openExistingStore(spec.folder)
	if err != nil {
		return nil, "", nil, err
	}
	return folderRevalidate{folder}, spec.folder, func() { folder.Close() }, nil
}

// check judges an address's stored certificates, the one to encrypt to
// (<address>.crt) and the signing certificate kept beside it, if any, and
// reports each.
func (r *revalidator) check(ctx context.Context, sc output.StoredCertificate) {
	path, _ := r.store.Path(sc.Address)
	r.checkOne(ctx, sc.Address, sc.Cert, path, "")
	sign, signPath, err := r.store.SigningOf(ctx, sc.Address)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Retired or replaced meanwhile.
	case err != nil:
		r.failed(fmt.Errorf("%s: reading the signing certificate: %w", sc.Address, err))
	case sign != nil:
		r.checkOne(ctx, sc.Address, sign, signPath, "signing certificate: ")
	}
}

// checkOne judges one stored certificate of addr, in its file path, and
// reports it; prefix begins the detail.
func (r *revalidator) checkOne(ctx context.Context, addr string, cert *x509.Certificate, path, prefix string) {
	start := time.Now()
	info := verify.DescribeCertificate(cert)
	id := sha256.Sum256([]byte("certharvest revalidate " + r.run + "\x00" + info.SHA256))
	rec := &output.Record{ID: hex.EncodeToString(id[:6]), Source: "revalidate", Path: path, From: addr,
		Outcome: output.OutcomeAccepted, Reason: verify.ReasonOK, Cert: info, CertFile: path, VerifiedAt: r.at.UTC()}
	r.judge(ctx, addr, cert, rec)
	rec.Detail = prefix + rec.Detail
	if rec.Reason != verify.ReasonOK {
		rec.Outcome = output.OutcomeRejected
	}
	rec.Time = time.Now().UTC()
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	level := slog.LevelInfo
	if rec.Reason != verify.ReasonOK || len(rec.Warnings) > 0 {
		level = slog.LevelWarn
	}
	r.log.Log(ctx, level, addr+": "+string(rec.Reason)+": "+rec.Detail, "id", rec.ID, "path", path)
	if err := r.report.Write(rec); err != nil {
		r.failed(err)
	}
	r.mu.Lock()
	key := string(rec.Reason)
	if rec.Action == output.ActionRetired {
		key = "retired"
	}
	r.counts[key]++
	r.mu.Unlock()
}

// judge sets the verdict of rec, for cert of addr: expiry, then
// revocation.
func (r *revalidator) judge(ctx context.Context, addr string, cert *x509.Certificate, rec *output.Record) {
	switch {
	case r.at.After(cert.NotAfter):
		rec.Reason, rec.Detail = verify.ReasonCertExpired, fmt.Sprintf("expired at %s; kept until a newer certificate replaces it",
			cert.NotAfter.UTC().Format(time.RFC3339))
		return
	case r.at.Before(cert.NotBefore):
		rec.Reason, rec.Detail = verify.ReasonCertNotYetValid, "valid from "+cert.NotBefore.UTC().Format(time.RFC3339)
		return
	}
	if r.checker == nil {
		rec.Detail = "valid until " + cert.NotAfter.UTC().Format(time.RFC3339) + "; revocation not checked (--revocation off)"
		return
	}
	chain, err := r.chain(cert)
	var res revocation.Result
	switch {
	case errors.Is(err, errIssuerUnknown):
		res = revocation.Result{Status: revocation.Unknown, Cert: cert, CertStatus: revocation.CertStatus{Err: err}}
	case err != nil:
		rec.Reason, rec.Detail = verify.ReasonCertUntrusted, "no chain to a trusted root any more: "+err.Error()
		return
	default:
		res = r.checker.CheckChain(ctx, chain, r.at)
	}
	rec.Revocation, err = verify.RevocationVerdict(res, r.mode)
	switch res.Status {
	case revocation.Good:
		rec.Detail = "not revoked (" + res.Source + " " + res.URL + "), valid until " + cert.NotAfter.UTC().Format(time.RFC3339)
	case revocation.Unknown:
		if err == nil {
			rec.Detail = "revocation status unknown: accepted all the same (--revocation soft)"
			rec.Warnings = append(rec.Warnings, "revocation status unknown: "+rec.Revocation.Detail)
			return
		}
		rec.Reason, rec.Detail = verify.ReasonOf(err), detailOf(err)
	case revocation.Revoked:
		rec.Reason, rec.Detail = verify.ReasonCertRevoked, detailOf(err)
		why := output.Retirement{Reason: verify.ReasonCertRevoked, Detail: rec.Detail, RevokedAt: res.RevokedAt.UTC(),
			RevocationReason: revocation.ReasonName(res.Reason), At: time.Now().UTC()}
		moved, err := r.store.Retire(ctx, addr, cert, why)
		switch {
		case err != nil:
			r.failed(fmt.Errorf("moving the revoked certificate of %s to the history: %w", addr, err))
			rec.Detail += "; moving it to the history failed: " + err.Error()
		case moved:
			rec.Action = output.ActionRetired
			rec.Detail += "; moved to the history"
		default:
			rec.Detail += "; the address has another certificate now: nothing moved"
		}
	}
}

// detailOf is a pipeline error's explanation, without its reason code, as
// the report's detail has it.
func detailOf(err error) string {
	var e *verify.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// errIssuerUnknown: no issuer of a stored certificate is known.
var errIssuerUnknown = errors.New("its issuer is not known: neither a trust root nor an intermediate kept in the revocation cache folder (--revocation-cache: serve's, which keeps those of the chains it checks)")

// maxIssuerWalk bounds the intermediate certificates gathered for one
// chain.
const maxIssuerWalk = 16

// chain rebuilds and verifies a stored certificate's chain, at the
// verification time, from the roots and the intermediate certificates the
// revocation cache kept.
func (r *revalidator) chain(cert *x509.Certificate) ([]*x509.Certificate, error) {
	pool := x509.NewCertPool()
	seen := map[string]bool{}
	queue := []*x509.Certificate{cert}
	for len(queue) > 0 && len(seen) < maxIssuerWalk {
		c := queue[0]
		queue = queue[1:]
		for _, is := range r.checker.Issuers(c) {
			if !seen[string(is.Raw)] {
				seen[string(is.Raw)] = true
				pool.AddCert(is)
				queue = append(queue, is)
			}
		}
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: r.roots, Intermediates: pool, CurrentTime: r.at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) && len(seen) == 0 {
		return nil, errIssuerUnknown
	}
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

func (r *revalidator) failed(err error) {
	r.log.Error(err.Error())
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// summary counts the verdicts.
func (r *revalidator) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.counts {
		n += c
	}
	var parts []string
	for _, k := range []string{"ok", "retired", string(verify.ReasonCertRevoked), string(verify.ReasonRevocationUnknown),
		string(verify.ReasonCertExpired), string(verify.ReasonCertNotYetValid), string(verify.ReasonCertUntrusted)} {
		if c := r.counts[k]; c > 0 {
			name := k
			if k == "retired" {
				name = "revoked (moved to the history)"
			}
			parts = append(parts, fmt.Sprintf("%d %s", c, name))
		}
	}
	s := fmt.Sprintf("%s at %s", plural(n, "certificate"), r.at.UTC().Format(time.RFC3339))
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}
