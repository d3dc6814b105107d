package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Status is what is known of a certificate's revocation.
type Status int

// The statuses.
const (
	// Unknown: no answer could be had, or none that passed the checks.
	Unknown Status = iota
	// Good: the issuer says the certificate is not revoked.
	Good
	// Revoked: the issuer says the certificate is revoked.
	Revoked
)

// String returns "unknown", "good" or "revoked".
func (s Status) String() string {
	switch s {
	case Good:
		return "good"
	case Revoked:
		return "revoked"
	}
	return "unknown"
}

// The sources of a status.
const (
	SourceOCSP = "ocsp"
	SourceCRL  = "crl"
)

// CertStatus is the revocation status of one certificate.
type CertStatus struct {
	Status Status
	// Source is how it is known, SourceOCSP or SourceCRL; "" when unknown.
	Source string
	// URL is the responder or the CRL that said it.
	URL string
	// ThisUpdate and NextUpdate bound the answer's validity (NextUpdate:
	// thisUpdate + CheckerOptions.NoNextUpdateFor for an answer without
	// one); it is kept in the cache until NextUpdate.
	ThisUpdate, NextUpdate time.Time
	// RevokedAt and Reason (CRLReason, RFC 5280 §5.3.1: 1 keyCompromise,
	// 4 superseded…) for a revoked certificate.
	RevokedAt time.Time
	Reason    int
	// Cached is set for a status that came from the cache: nothing was
	// fetched.
	Cached bool
	// Err says why the status is unknown: each URL tried and what failed.
	Err error
}

// ReasonName returns the name of a CRLReason (RFC 5280 §5.3.1), e.g.
// "keyCompromise".
func ReasonName(reason int) string {
	names := []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}
	if reason >= 0 && reason < len(names) && names[reason] != "" {
		return names[reason]
	}
	return fmt.Sprintf("reason %d", reason)
}

// Result is the revocation status of a chain.
type Result struct {
	// Status is the chain's: Revoked when a certificate of it is, else
	// Unknown when the status of one is unknown, else Good.
	Status Status
	// Cert is the certificate Status is about: the first revoked one, else
	// the first whose status is unknown, else the chain's first (the
	// signer's).
	Cert *x509.Certificate
	// Depth is Cert's place in the chain: 0 for the first.
	Depth int
	// CertStatus is Cert's status.
	CertStatus
}

// Defaults of CheckerOptions, besides the fetch's (fetch.go) and the
// cache's (cache.go).
const (
	// DefaultSkew is how far after the verification time an answer's
	// thisUpdate may be: the responder's clock may be ahead.
	DefaultSkew = 5 * time.Minute
	// DefaultNoNextUpdateFor is how long an answer without nextUpdate is
	// taken as valid after its thisUpdate, and kept.
	DefaultNoNextUpdateFor = 24 * time.Hour
	// maxChainChecked bounds the certificates of a chain checked: a path
	// longer than any real one is checked at its first few.
	maxChainChecked = 8
)

// CheckerOptions configure a Checker. The zero value of each field means
// its default.
type CheckerOptions struct {
	// Client's Transport fetches (nil: http.DefaultTransport's, with the
	// proxies of the environment). Its redirect policy and timeout are
	// replaced by the Checker's own.
	Client *http.Client
	// FetchTimeout bounds one fetch (DefaultFetchTimeout), CheckTimeout
	// the check of one chain (DefaultCheckTimeout).
	FetchTimeout, CheckTimeout time.Duration
	// MaxOCSPBytes and MaxCRLBytes bound an answer (DefaultMaxOCSPBytes,
	// DefaultMaxCRLBytes).
	MaxOCSPBytes, MaxCRLBytes int64
	// MaxURLs bounds the OCSP responders, and the CRL distribution points,
	// tried per certificate (DefaultMaxURLs).
	MaxURLs int
	// Skew (DefaultSkew) and NoNextUpdateFor (DefaultNoNextUpdateFor):
	// see their defaults.
	Skew, NoNextUpdateFor time.Duration
	// MaxMemoryEntries bounds the statuses kept in memory
	// (DefaultMaxMemoryEntries), MaxCacheFiles those on disk
	// (DefaultMaxCacheFiles).
	MaxMemoryEntries, MaxCacheFiles int
	// MaxCRLs and MaxCRLEntries bound the CRLs kept in memory, in number
	// and in serial numbers listed (DefaultMaxCRLs, DefaultMaxCRLEntries).
	MaxCRLs, MaxCRLEntries int
	// Logger receives what the cache could not do (a full disk); nil
	// discards it.
	Logger *slog.Logger
}

func (o *CheckerOptions) withDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.FetchTimeout, DefaultFetchTimeout)
	def(&o.CheckTimeout, DefaultCheckTimeout)
	def(&o.Skew, DefaultSkew)
	def(&o.NoNextUpdateFor, DefaultNoNextUpdateFor)
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&o.MaxURLs, DefaultMaxURLs)
	defInt(&o.MaxMemoryEntries, DefaultMaxMemoryEntries)
	defInt(&o.MaxCacheFiles, DefaultMaxCacheFiles)
	defInt(&o.MaxCRLs, DefaultMaxCRLs)
	defInt(&o.MaxCRLEntries, DefaultMaxCRLEntries)
	if o.MaxOCSPBytes <= 0 {
		o.MaxOCSPBytes = DefaultMaxOCSPBytes
	}
	if o.MaxCRLBytes <= 0 {
		o.MaxCRLBytes = DefaultMaxCRLBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Checker tells the revocation status of certificates. It keeps each
// status it learnt until the answer's nextUpdate, in memory and, given a
// folder, on disk, so that one status is fetched once per validity
// window whatever the traffic; concurrent checks of one certificate share
// one fetch. It is safe for concurrent use.
type Checker struct {
	opts     CheckerOptions
	fetch    *fetcher
	mem      memCache
	disk     *diskCache // nil: memory only
	crls     crlCache
	statuses flight[CertStatus]
	keys     issuerKeys
}

// maxIssuerKeys bounds the issuer keys an issuerKeys remembers.
const maxIssuerKeys = 1024

// issuerKeys remembers issuerKey by certificate: the pipeline gives every
// message signed under one intermediate the same parsed certificate (its
// cache of CA certificates), whose digest is then made once.
type issuerKeys struct {
	mu   sync.Mutex
	keys map[*x509.Certificate]string
}

func (ik *issuerKeys) of(issuer *x509.Certificate) string {
	ik.mu.Lock()
	defer ik.mu.Unlock()
	if k, ok := ik.keys[issuer]; ok {
		return k
	}
	if ik.keys == nil || len(ik.keys) >= maxIssuerKeys {
		ik.keys = map[*x509.Certificate]string{}
	}
	k := issuerKey(issuer)
	ik.keys[issuer] = k
	return k
}

// NewChecker returns a Checker whose cache is kept in the folder
// cacheDir, created if missing (mode 0700); "" keeps it in memory only.
func NewChecker(cacheDir string, opts CheckerOptions) (*Checker, error) {
	opts.withDefaults()
	c := &Checker{
		opts:  opts,
		fetch: newFetcher(opts.Client, opts.FetchTimeout),
		mem:   memCache{max: opts.MaxMemoryEntries, skew: opts.Skew},
		crls:  crlCache{maxLists: opts.MaxCRLs, maxEntries: opts.MaxCRLEntries, skew: opts.Skew},
	}
	if cacheDir != "" {
		d, err := openDiskCache(cacheDir, opts.MaxCacheFiles, opts.Skew, opts.Logger)
		if err != nil {
			return nil, err
		}
		c.disk = d
	}
	return c, nil
}

// Close closes the cache folder.
func (c *Checker) Close() error {
	if c.disk == nil {
		return nil
	}
	return c.disk.close()
}

// CheckChain checks the certificates of a verified chain, signer first,
// each against the next (its issuer), all but the last (the trust anchor),
// at the verification time at, within CheckerOptions.CheckTimeout. The
// chain's intermediate certificates are remembered in the cache folder,
// for Issuers.
func (c *Checker) CheckChain(ctx context.Context, chain []*x509.Certificate, at time.Time) Result {
	if len(chain) < 2 {
		var first *x509.Certificate
		if len(chain) == 1 {
			first = chain[0]
		}
		return Result{Status: Unknown, Cert: first, CertStatus: CertStatus{Err: errors.New("no issuer: a chain of one certificate")}}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.CheckTimeout)
	defer cancel()
	if c.disk != nil {
		c.disk.rememberIssuers(chain[1 : len(chain)-1])
	}
	var res Result
	unknown := false
	for i := range min(len(chain)-1, maxChainChecked) {
		st := c.Check(ctx, chain[i], chain[i+1], at)
		switch {
		case st.Status == Revoked:
			return Result{Status: Revoked, Cert: chain[i], Depth: i, CertStatus: st}
		case st.Status == Unknown && !unknown:
			res, unknown = Result{Status: Unknown, Cert: chain[i], Depth: i, CertStatus: st}, true
		case i == 0 && st.Status == Good:
			res = Result{Status: Good, Cert: chain[0], CertStatus: st}
		}
	}
	return res
}

// Check returns the revocation status of cert, issued by issuer, at the
// verification time at: from the cache when it holds an answer valid at
// at, else from the OCSP responders of cert's Authority Information Access
// (RFC 5280 §4.2.2.1), else from its CRL distribution points (§4.2.1.13),
// at most CheckerOptions.MaxURLs of each, http and https only. A good or
// revoked status is kept; an unknown one is not, so the next check tries
// again.
func (c *Checker) Check(ctx context.Context, cert, issuer *x509.Certificate, at time.Time) CertStatus {
	key := c.keys.of(issuer) + "-" + serialHex(cert.SerialNumber)
	if st, ok := c.mem.get(key, at); ok {
		st.Cached = true
		return st
	}
	// The folder is read without waiting for a fetch in flight: a read is
	// cheap, and any number may run at once.
	if c.disk != nil {
		if st, ok := c.disk.get(key, at); ok {
			c.mem.put(key, st, at)
			st.Cached = true
			return st
		}
	}
	// The fetch outlives a caller that gives up (the others may still
	// wait for it), but not the caller's deadline.
	fctx := context.WithoutCancel(ctx)
	st, err := c.statuses.do(ctx, key, func() (CertStatus, error) {
		if st, ok := c.mem.get(key, at); ok {
			st.Cached = true
			return st, nil
		}
		qctx, cancel := context.WithTimeout(fctx, c.opts.CheckTimeout)
		if d, ok := ctx.Deadline(); ok {
			cancel()
			qctx, cancel = context.WithDeadline(fctx, d)
		}
		defer cancel()
		st := c.query(qctx, cert, issuer, at)
		if st.Status != Unknown {
			c.mem.put(key, st, at)
			if c.disk != nil {
				c.disk.put(key, st)
			}
		}
		return st, nil
	})
	if err != nil {
		return CertStatus{Err: err}
	}
	return st
}

// query asks cert's OCSP responders, then its CRL distribution points,
// and returns the first good or revoked status.
func (c *Checker) query(ctx context.Context, cert, issuer *x509.Certificate, at time.Time) CertStatus {
	var failures []string
	try := func(kind string, urls []string, q func(context.Context, string, *x509.Certificate, *x509.Certificate, time.Time) (CertStatus, error)) (CertStatus, bool) {
		for i, raw := range urls {
			if i == c.opts.MaxURLs {
				failures = append(failures, fmt.Sprintf("%d more %s URLs not tried", len(urls)-i, kind))
				break
			}
			st, err := q(ctx, raw, cert, issuer, at)
			if err == nil {
				return st, true
			}
			failures = append(failures, kind+" "+truncate(raw, 100)+": "+err.Error())
		}
		return CertStatus{}, false
	}
	if st, ok := try("OCSP", cert.OCSPServer, c.queryOCSP); ok {
		return st
	}
	if st, ok := try("CRL", cert.CRLDistributionPoints, c.queryCRL); ok {
		return st
	}
	if len(failures) == 0 {
		failures = append(failures, "the certificate names no OCSP responder and no CRL distribution point")
	}
	return CertStatus{Status: Unknown, Err: errors.New(strings.Join(failures, "; "))}
}

// issuerKey identifies an issuer: a digest of its name and public key, as
// an OCSP CertID does.
func issuerKey(issuer *x509.Certificate) string {
	h := sha256.New()
	h.Write(issuer.RawSubject)
	h.Write(issuer.RawSubjectPublicKeyInfo)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// serialKey is a serial number's bytes, "-" first for a negative one.
func serialKey(n *big.Int) string {
	if n.Sign() < 0 {
		return "-" + string(n.Bytes())
	}
	return string(n.Bytes())
}

// statusKey is the cache key of a certificate: its issuer's key, "-",
// its serial number in hex (serialHex).
func statusKey(issuer *x509.Certificate, serial *big.Int) string {
	return issuerKey(issuer) + "-" + serialHex(serial)
}

// serialHex is a serial number in hex, "n" first when negative.
func serialHex(serial *big.Int) string {
	s := hex.EncodeToString(serial.Bytes())
	if serial.Sign() < 0 {
		s = "n" + s
	}
	return s
}
