package verify

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// verifyChain builds and verifies a path from the signer certificate through
// the CMS's certificates to a trusted root, at time at, for email protection
// (RFC 5280 §6; RFC 8550 §4.4.4 requires emailProtection when the extended key
// usage extension is present). It returns the chain, signer first.
func (p *Pipeline) verifyChain(signer *x509.Certificate, bag []*x509.Certificate, at time.Time, log *story) ([]*x509.Certificate, error) {
	if err := checkValidity(signer, at); err != nil {
		return nil, err
	}
	// RFC 8550 §4.4.2: when keyUsage is present, a signing certificate
	// must assert digitalSignature or nonRepudiation.
	if signer.KeyUsage != 0 && signer.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fail(ReasonCertWrongEKU, "%q: key usage allows neither digitalSignature nor nonRepudiation", certName(signer))
	}
	intermediates := x509.NewCertPool()
	for _, c := range bag {
		if c == signer {
			continue
		}
		if err := checkKeySize(c); err != nil {
			log.Warn("certificate ignored for the chain", "error", err)
			continue
		}
		intermediates.AddCert(c)
	}
	log.Info("verifying the certificate chain", "at", at.UTC().Format(time.RFC3339), "usage", "emailProtection")
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:         p.opts.Roots,
		Intermediates: intermediates,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		return nil, classifyChainError(signer, bag, at, err)
	}
	chain := chains[0]
	names := make([]string, len(chain))
	for i, c := range chain {
		names[i] = fmt.Sprintf("%q", certName(c))
	}
	log.Info("chain verified: " + strings.Join(names, " <- "))
	return chain, nil
}

// checkValidity reports a certificate outside its validity period at t.
func checkValidity(c *x509.Certificate, t time.Time) error {
	switch {
	case t.Before(c.NotBefore):
		return fail(ReasonCertNotYetValid, "%q is valid from %s, verification time is %s",
			certName(c), c.NotBefore.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	case t.After(c.NotAfter):
		return fail(ReasonCertExpired, "%q expired at %s, verification time is %s",
			certName(c), c.NotAfter.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	return nil
}

// classifyChainError turns an x509 verification error into a reason. Go's
// path builder reports an intermediate that is out of its validity period as
// an unknown authority, so the candidate issuers are looked at to say so.
func classifyChainError(signer *x509.Certificate, bag []*x509.Certificate, at time.Time, err error) error {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.IncompatibleUsage:
			return fail(ReasonCertWrongEKU, "%q is not allowed for email protection: %w", certName(invalid.Cert), err)
		case x509.Expired:
			if e := checkValidity(invalid.Cert, at); e != nil {
				return e
			}
		}
		return fail(ReasonCertUntrusted, "%w", err)
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		// Walk up the bag from the signer: an issuer that is present but
		// out of its validity period explains the failure better.
		cert := signer
		for range len(bag) {
			issuer := findIssuer(cert, bag)
			if issuer == nil {
				break
			}
			if e := checkValidity(issuer, at); e != nil {
				return e
			}
			cert = issuer
		}
		if bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			return fail(ReasonCertUntrusted, "no chain to a trusted root: the chain ends at the self-signed %q, which is not a trusted root", certName(cert))
		}
		return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is issued by %q, which is neither a trusted root nor among the certificates in the message",
			certName(cert), FormatName(cert.Issuer))
	}
	return fail(ReasonCertUntrusted, "%w", err)
}

func findIssuer(c *x509.Certificate, bag []*x509.Certificate) *x509.Certificate {
	for _, cand := range bag {
		if cand != c && bytes.Equal(cand.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(cand) == nil {
			return cand
		}
	}
	return nil
}

// certAddresses returns the addresses a certificate vouches for: its SAN
// rfc822Names, or, only when it has none, its subject emailAddress
// attributes (RFC 8550 §3).
func certAddresses(c *x509.Certificate) []string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses
	}
	var addrs []string
	for _, atv := range c.Subject.Names {
		if atv.Type.Equal(oidEmailAddress) {
			if s, ok := atv.Value.(string); ok {
				addrs = append(addrs, s)
			}
		}
	}
	return addrs
}

// checkIdentity requires one of the certificate's addresses to be the From
// address.
func checkIdentity(c *x509.Certificate, from string, log *story) error {
	addrs := certAddresses(c)
	for _, a := range addrs {
		if strings.EqualFold(strings.TrimSpace(a), from) {
			log.Info("certificate address matches From", "address", from)
			return nil
		}
	}
	if len(addrs) == 0 {
		return fail(ReasonFromCertMismatch, "%q carries no email address; From is %s", certName(c), from)
	}
	return fail(ReasonFromCertMismatch, "%q is for %s; From is %s", certName(c), strings.Join(addrs, ", "), from)
}

// certName names a certificate in a log line or detail: its first address,
// else its subject common name, else its subject.
func certName(c *x509.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	if addrs := certAddresses(c); len(addrs) > 0 {
		return addrs[0]
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return FormatName(c.Subject)
}
