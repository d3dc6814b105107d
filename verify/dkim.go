package verify

import (
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/publicsuffix"

	"github.com/certharvest/certharvest/internal/dkimfast"
)

// Alignment says how a DKIM signing domain must relate to the From domain.
type Alignment int

const (
	// AlignStrict requires d= to equal the From domain (case-insensitive).
	AlignStrict Alignment = iota
	// AlignRelaxed accepts a d= with the same organisational domain as the
	// From domain, per the public suffix list (RFC 7489 §3.1.1).
	AlignRelaxed
)

// ParseAlignment parses "strict" or "relaxed".
func ParseAlignment(s string) (Alignment, error) {
	switch strings.ToLower(s) {
	case "strict":
		return AlignStrict, nil
	case "relaxed":
		return AlignRelaxed, nil
	}
	return 0, fmt.Errorf("unknown DKIM alignment %q: want strict or relaxed", s)
}

func (a Alignment) String() string {
	if a == AlignRelaxed {
		return "relaxed"
	}
	return "strict"
}

// LookupTXTFunc returns the TXT records of a DNS name, as
// net.Resolver.LookupTXT does. An error for which isTemporaryDNSError is true
// makes a signature temporarily unverifiable; any other error means the key
// does not exist.
type LookupTXTFunc func(ctx context.Context, name string) ([]string, error)

// defaultMaxDKIMVerifications caps the DKIM signatures verified per message:
// each may cost a DNS lookup and an RSA verification, and a hostile message
// can carry thousands.
const defaultMaxDKIMVerifications = 5

// maxDKIMKeyRecords and maxDKIMKeyRecordBytes bound the DKIM key records
// a Pipeline keeps parsed (dkimfast.KeyCache): a key per signing domain and
// selector, and a record of an RSA-4096 key is under 1 KB.
const (
	maxDKIMKeyRecords     = 1024
	maxDKIMKeyRecordBytes = 4 << 20
)

// DKIMResult is the signature that passed and aligned.
type DKIMResult struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	// Via says how DKIM was established: DKIMViaSignature (empty, left
	// out of the report) when the signature verified with its key,
	// DKIMViaAuthResults when its key no longer exists and a trusted
	// Authentication-Results field reports that it passed (authres.go).
	Via string `json:"via,omitempty"`
	// AuthservID is the authserv-id of that field (Via
	// DKIMViaAuthResults).
	AuthservID string `json:"authserv_id,omitempty"`

	b string // the signature's b= (no white space), for header.b
}

// dkimSignatureTags returns the d=, s=, a=, i= and b= tags of every
// DKIM-Signature field in header order, which is also the order of
// go-msgauth's verifications.
func dkimSignatureTags(p *parsedMessage) []map[string]string {
	var tags []map[string]string
	fields := p.header.FieldsByKey("Dkim-Signature")
	for fields.Next() {
		t := make(map[string]string, 5)
		for _, kv := range strings.Split(fields.Value(), ";") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			switch k = strings.TrimSpace(k); k {
			case "d", "s", "a", "i", "b":
				t[k] = strings.Join(strings.Fields(v), "")
			}
		}
		tags = append(tags, t)
	}
	return tags
}

// checkDKIM verifies the message's DKIM signatures (RFC 6376 §6) and requires
// one that passes to be aligned with the From domain.
func (p *Pipeline) checkDKIM(ctx context.Context, m *parsedMessage, from string, log *story) (*DKIMResult, error) {
	tags := dkimSignatureTags(m)
	if len(tags) == 0 {
		return nil, fail(ReasonDKIMMissing, "no DKIM-Signature header field")
	}
	// Which keys no longer exist matters only to trust an
	// Authentication-Results field (authres.go).
	var absence *keyAbsence
	if len(p.opts.TrustAuthservIDs) > 0 {
		absence = &keyAbsence{}
	}
	opts := &dkim.VerifyOptions{
		LookupTXT:        checkLookup(ctx, p.opts.LookupTXT, absence),
		MaxVerifications: p.opts.MaxDKIMVerifications,
	}
	// go-msgauth's verdicts, for less CPU (internal/dkimfast).
	verifications, err := dkimfast.VerifyWith(m.canonical, opts, dkimfast.Options{RSA: p.rsa, Keys: p.dkimKeys})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil, fail(ReasonDKIMInvalid, "verifying DKIM: %w", err)
	}
	if errors.Is(err, dkim.ErrTooManySignatures) {
		log.Warn("DKIM: too many signatures, only the first were verified", "verified", len(verifications), "present", len(tags))
	}

	fromDomain := domainOf(from)
	var (
		passedOther []string
		// tempErr is the first temporary failure of a signature aligned
		// with From: a later attempt may pass. otherTempErr is one of a
		// signature for another domain, which could never make the
		// message pass.
		tempErr, otherTempErr error
		lastErr               error
		// gone are the signatures aligned with From that failed because
		// their key record no longer exists.
		gone []int
	)
	for i, v := range verifications {
		var t map[string]string
		if i < len(tags) {
			t = tags[i]
		}
		domain := strings.ToLower(v.Domain)
		if v.Err != nil {
			log.Info("DKIM signature failed", "domain", domain, "selector", t["s"], "algorithm", t["a"], "error", v.Err)
			if dkimfast.IsTempFail(v.Err) {
				err := fmt.Errorf("d=%s s=%s: %w", domain, t["s"], v.Err)
				switch {
				case !p.aligned(domain, fromDomain):
					otherTempErr = cmp.Or(otherTempErr, err)
				case tempErr == nil:
					tempErr = err
				}
			} else if absence != nil && i < len(tags) && absence.absent(keyName(t)) && p.aligned(domain, fromDomain) {
				gone = append(gone, i)
			}
			lastErr = fmt.Errorf("d=%s s=%s: %w", domain, t["s"], v.Err)
			continue
		}
		if !p.aligned(domain, fromDomain) {
			log.Info("DKIM signature passed for another domain", "domain", domain, "selector", t["s"], "from_domain", fromDomain, "alignment", p.opts.Align)
			passedOther = append(passedOther, domain)
			continue
		}
		log.Info("from="+from+",DKIM passed", "domain", domain, "selector", t["s"], "algorithm", t["a"])
		return &DKIMResult{Domain: domain, Selector: t["s"], b: t["b"]}, nil
	}
	if tempErr == nil && len(gone) > 0 {
		if res := p.dkimFromAuthResults(m, tags, gone, log); res != nil {
			return res, nil
		}
	}
	switch {
	case tempErr != nil:
		// Before a mismatch: a message relayed by a mailing service
		// carries the service's signature too, which may pass while the
		// sender's own key could not be fetched this time.
		return nil, &Error{Reason: ReasonDKIMTempError, Err: tempErr}
	case len(passedOther) > 0:
		return nil, fail(ReasonDKIMDomainMismatch, "DKIM passed only for %s, not aligned (%s) with From domain %s",
			strings.Join(passedOther, ", "), p.opts.Align, fromDomain)
	case otherTempErr != nil:
		return nil, fail(ReasonDKIMInvalid, "no DKIM signature of the From domain %s; %v (temporary, but for another domain: a later attempt could not pass)",
			fromDomain, otherTempErr)
	case lastErr != nil:
		return nil, &Error{Reason: ReasonDKIMInvalid, Err: lastErr}
	}
	return nil, fail(ReasonDKIMInvalid, "no DKIM signature could be verified")
}

// checkDKIMKeySize refuses a key record (RFC 6376 §3.6.1) whose RSA key is
// over maxRSABits. The signing domain publishes the key, so the sender
// chooses its size, and go-msgauth verifies with any RSA key of 1,024 bits
// or more: a 65,536-bit key with the largest exponent crypto/rsa takes
// costs seconds per verification. RFC 8301 §3.2 asks verifiers for keys up
// to 4,096 bits. A record this cannot read is left to go-msgauth, which
// refuses it with its own explanation.
func checkDKIMKeySize(record string) error {
	for _, tag := range strings.Split(record, ";") {
		name, value, ok := strings.Cut(tag, "=")
		if !ok || strings.TrimSpace(name) != "p" {
			continue
		}
		// The modulus is inside the key's DER: a key of no more than
		// maxRSABits/8 bytes of it is within the limit, known without
		// decoding it (every usual key; go-msgauth parses it anyway).
		if base64.StdEncoding.DecodedLen(len(value)-whiteSpace(value)) <= maxRSABits/8 {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(value), ""))
		if err != nil {
			return nil
		}
		// SubjectPublicKeyInfo or RSAPublicKey, as go-msgauth accepts
		// (RFC 6376 erratum 3017).
		var n *big.Int
		if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
			if k, ok := pub.(*rsa.PublicKey); ok {
				n = k.N
			}
		} else if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
			n = k.N
		}
		if n != nil && n.BitLen() > maxRSABits {
			return fmt.Errorf("RSA key of %d bits exceeds the %d-bit limit", n.BitLen(), maxRSABits)
		}
	}
	return nil
}

// whiteSpace counts the white-space bytes of s.
func whiteSpace(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			n++
		}
	}
	return n
}

// aligned reports whether a DKIM signing domain is aligned with the From
// domain under the pipeline's alignment mode (RFC 7489 §3.1.1). The From
// domain is normalised, in A-labels; so is d=, which names the key's DNS
// domain (RFC 8616 §4), and a d= written with U-labels is converted first.
func (p *Pipeline) aligned(signing, from string) bool {
	if !isASCII(signing) {
		if a, err := domainToASCII(signing); err == nil {
			signing = a
		}
	}
	if strings.EqualFold(signing, from) {
		return true
	}
	if p.opts.Align != AlignRelaxed {
		return false
	}
	a, errA := publicsuffix.EffectiveTLDPlusOne(strings.ToLower(signing))
	b, errB := publicsuffix.EffectiveTLDPlusOne(strings.ToLower(from))
	return errA == nil && errB == nil && a == b
}

// temporaryError marks an error as a temporary net.Error for go-msgauth.
type temporaryError struct{ err error }

func (e temporaryError) Error() string   { return e.err.Error() }
func (e temporaryError) Unwrap() error   { return e.err }
func (e temporaryError) Timeout() bool   { return false }
func (e temporaryError) Temporary() bool { return true }

var _ net.Error = temporaryError{}

// isTemporaryDNSError reports whether err is a DNS failure that a later
// attempt may not have: a timeout or a server failure, but not NXDOMAIN.
func isTemporaryDNSError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound && (dnsErr.IsTimeout || dnsErr.IsTemporary)
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) {
		return tmp.Temporary()
	}
	return errors.Is(err, context.DeadlineExceeded)
}
