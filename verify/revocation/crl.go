package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CRL extensions (RFC 5280 §5.2, §5.3) and what is made of them.
var (
	oidCRLNumber           = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator   = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistribution = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidAuthorityKeyID      = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidFreshestCRL         = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidIssuerAltName       = asn1.ObjectIdentifier{2, 5, 29, 18}
	oidAuthorityInfoAccess = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidReasonCode          = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate      = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertificateIssuer   = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// crlInfo is what a verified CRL says: its window, its scope, and the
// serial numbers it lists. It is shared by every certificate of its
// issuer, and never modified once made.
type crlInfo struct {
	thisUpdate, nextUpdate time.Time
	// The issuing distribution point (RFC 5280 §5.2.5), when present.
	idp *issuingDistributionPoint
	// revoked maps a serial number (big.Int.Bytes, with a leading "-" for
	// a negative one) to its entry.
	revoked map[string]revokedEntry
}

type revokedEntry struct {
	at     time.Time
	reason int
}

// issuingDistributionPoint is the scope a CRL declares (RFC 5280 §5.2.5).
type issuingDistributionPoint struct {
	uris            []string // the distributionPoint's fullName URIs
	otherName       bool     // a distributionPoint that is not only URIs
	onlyUser        bool
	onlyCA          bool
	onlySomeReasons bool
	indirect        bool
	onlyAttribute   bool
}

// queryCRL fetches the CRL at raw, or takes it from the cache of CRLs,
// and looks cert up in it.
func (c *Checker) queryCRL(ctx context.Context, raw string, cert, issuer *x509.Certificate, at time.Time) (CertStatus, error) {
	u, err := checkURL(raw)
	if err != nil {
		return CertStatus{}, err
	}
	key := raw + "\x00" + issuerKey(issuer)
	info, err := c.crls.get(ctx, key, at, func() (*crlInfo, error) {
		data, err := c.fetch.get(ctx, u, nil, "", c.opts.MaxCRLBytes)
		if err != nil {
			return nil, err
		}
		return parseCRL(data, issuer, at, c.opts.Skew, c.opts.NoNextUpdateFor)
	})
	if err != nil {
		return CertStatus{}, err
	}
	st, err := info.lookup(cert, raw)
	if err != nil {
		return CertStatus{}, err
	}
	st.Source, st.URL = SourceCRL, raw
	return st, nil
}

// parseCRL parses a CRL (DER, or PEM as some servers send it) that must
// be issuer's, and checks, at the verification time at (RFC 5280 §6.3.3):
// its issuer name and authority key identifier, its signature by the
// issuer's key (which must allow cRLSign), no SHA-1; its window (fresh);
// and its extensions: a delta CRL (§5.2.4) is not used, an indirect CRL
// (§5.2.5, entries of other issuers) is refused, as is any critical
// extension certharvest does not know.
func parseCRL(data []byte, issuer *x509.Certificate, at time.Time, skew, noNext time.Duration) (*crlInfo, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "X509 CRL" {
			return nil, errors.New("PEM without an X509 CRL block")
		}
		data = block.Bytes
	}
	rl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if !bytes.Equal(rl.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("CRL issued by %q, not by the certificate's issuer %q", rl.Issuer, issuer.Subject)
	}
	if len(rl.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(rl.AuthorityKeyId, issuer.SubjectKeyId) {
		return nil, errors.New("CRL signed with another key of the issuer")
	}
	if weakSignature(rl.SignatureAlgorithm) {
		return nil, fmt.Errorf("CRL signed with %v: refused", rl.SignatureAlgorithm)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL signature does not verify with the issuer's key: %w", err)
	}
	next, err := fresh(rl.ThisUpdate, rl.NextUpdate, at, skew, noNext)
	if err != nil {
		return nil, fmt.Errorf("CRL %w", err)
	}
	info := &crlInfo{thisUpdate: rl.ThisUpdate, nextUpdate: next, revoked: make(map[string]revokedEntry, len(rl.RevokedCertificateEntries))}
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return nil, errors.New("a delta CRL: only complete CRLs are used")
		case ext.Id.Equal(oidIssuingDistribution):
			if info.idp, err = parseIDP(ext.Value); err != nil {
				return nil, err
			}
			if info.idp.indirect {
				return nil, errors.New("an indirect CRL: not supported")
			}
		case ext.Id.Equal(oidCRLNumber), ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidFreshestCRL),
			ext.Id.Equal(oidIssuerAltName), ext.Id.Equal(oidAuthorityInfoAccess):
		case ext.Critical:
			return nil, fmt.Errorf("CRL extension %v is critical and unknown", ext.Id)
		}
	}
	for _, e := range rl.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			known := ext.Id.Equal(oidReasonCode) || ext.Id.Equal(oidInvalidityDate)
			if ext.Id.Equal(oidCertificateIssuer) || ext.Critical && !known {
				return nil, fmt.Errorf("CRL entry extension %v refused", ext.Id)
			}
		}
		if e.SerialNumber == nil {
			continue
		}
		info.revoked[serialKey(e.SerialNumber)] = revokedEntry{at: e.RevocationTime, reason: e.ReasonCode}
	}
	return info, nil
}

// lookup returns cert's status in the CRL fetched from url, once the CRL's
// scope covers it (RFC 5280 §6.3.3 b): the distribution point it names is
// one of cert's, and it holds certificates of cert's kind. A CRL of some
// reasons only proves a revocation, never that the certificate is good.
func (info *crlInfo) lookup(cert *x509.Certificate, url string) (CertStatus, error) {
	if idp := info.idp; idp != nil {
		switch {
		case idp.onlyAttribute:
			return CertStatus{}, errors.New("CRL of attribute certificates only")
		case idp.onlyUser && cert.IsCA:
			return CertStatus{}, errors.New("CRL of end-entity certificates only, for a CA certificate")
		case idp.onlyCA && !cert.IsCA:
			return CertStatus{}, errors.New("CRL of CA certificates only, for an end-entity certificate")
		case idp.otherName || len(idp.uris) > 0 && !slices.ContainsFunc(idp.uris, func(u string) bool {
			return slices.Contains(cert.CRLDistributionPoints, u)
		}):
			return CertStatus{}, fmt.Errorf("CRL for another distribution point than %s", truncate(url, 100))
		}
	}
	st := CertStatus{ThisUpdate: info.thisUpdate, NextUpdate: info.nextUpdate}
	if e, ok := info.revoked[serialKey(cert.SerialNumber)]; ok {
		st.Status, st.RevokedAt, st.Reason = Revoked, e.at, e.reason
		return st, nil
	}
	if info.idp != nil && info.idp.onlySomeReasons {
		return CertStatus{}, errors.New("CRL of some revocation reasons only: not proof of a good status")
	}
	st.Status = Good
	return st, nil
}

// parseIDP parses the IssuingDistributionPoint extension (RFC 5280
// §5.2.5; implicit tags).
func parseIDP(der []byte) (*issuingDistributionPoint, error) {
	malformed := errors.New("CRL issuing distribution point malformed")
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed
	}
	idp := &issuingDistributionPoint{}
	var dpName cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&dpName, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed
	}
	if present {
		var full cryptobyte.String
		var isFull bool
		if !dpName.ReadOptionalASN1(&full, &isFull, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, malformed
		}
		idp.otherName = !isFull
		for !full.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !full.ReadAnyASN1(&name, &tag) {
				return nil, malformed
			}
			if tag == cbasn1.Tag(6).ContextSpecific() { // uniformResourceIdentifier
				idp.uris = append(idp.uris, string(name))
			} else {
				idp.otherName = true
			}
		}
	}
	for _, f := range []struct {
		tag cbasn1.Tag
		out *bool
	}{{1, &idp.onlyUser}, {2, &idp.onlyCA}, {3, &idp.onlySomeReasons}, {4, &idp.indirect}, {5, &idp.onlyAttribute}} {
		var v cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&v, &present, f.tag.ContextSpecific()) {
			return nil, malformed
		}
		switch {
		case !present:
		case f.tag == 3: // onlySomeReasons: ReasonFlags, a BIT STRING
			*f.out = true
		default: // a BOOLEAN, implicitly tagged
			*f.out = len(v) == 1 && v[0] != 0
		}
	}
	if !seq.Empty() {
		return nil, malformed
	}
	return idp, nil
}

// crlCache keeps verified CRLs by URL and issuer, each until its
// nextUpdate, so that one fetch serves every certificate of the issuer.
// It holds at most maxLists CRLs and maxEntries serial numbers in all:
// beyond, the CRL that ends soonest goes. Concurrent misses for one CRL
// share its fetch.
type crlCache struct {
	maxLists, maxEntries int
	skew                 time.Duration
	mu                   sync.Mutex
	lists                map[string]*crlInfo
	entries              int
	flight               flight[*crlInfo]
}

// get returns the CRL of key valid at at, from the cache or from load.
func (cc *crlCache) get(ctx context.Context, key string, at time.Time, load func() (*crlInfo, error)) (*crlInfo, error) {
	if info := cc.lookup(key, at); info != nil {
		return info, nil
	}
	return cc.flight.do(ctx, key, func() (*crlInfo, error) {
		if info := cc.lookup(key, at); info != nil {
			return info, nil
		}
		info, err := load()
		if err != nil {
			return nil, err
		}
		cc.put(key, info)
		return info, nil
	})
}

func (cc *crlCache) lookup(key string, at time.Time) *crlInfo {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	info := cc.lists[key]
	if info == nil || !at.Before(info.nextUpdate) || info.thisUpdate.After(at.Add(cc.skew)) {
		return nil
	}
	return info
}

func (cc *crlCache) put(key string, info *crlInfo) {
	if len(info.revoked) > cc.maxEntries {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.lists == nil {
		cc.lists = map[string]*crlInfo{}
	}
	if old := cc.lists[key]; old != nil {
		cc.entries -= len(old.revoked)
		delete(cc.lists, key)
	}
	for len(cc.lists) >= cc.maxLists || len(cc.lists) > 0 && cc.entries+len(info.revoked) > cc.maxEntries {
		var soonest string
		for k, l := range cc.lists {
			if soonest == "" || l.nextUpdate.Before(cc.lists[soonest].nextUpdate) {
				soonest = k
			}
		}
		cc.entries -= len(cc.lists[soonest].revoked)
		delete(cc.lists, soonest)
	}
	cc.lists[key] = info
	cc.entries += len(info.revoked)
}
