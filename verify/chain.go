package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// verifyChain builds and verifies a path from the signer certificate through
// the CMS's certificates to a trusted root, at time at, for email protection
// (RFC 5280 §6; RFC 8550 §4.4.4 requires emailProtection when the extended key
// usage extension is present). It returns the chain, signer first.
//
// The usual chain, signer <- intermediate <- root, is verified through
// p.links when an earlier message established the intermediate's link to the
// root (see linkCache): one signature verification instead of two, with the
// same verdict and the same chain as a full verification; and a chain
// verified before for the same certificates is reused from p.chains
// (chainCache). On the reference path (Options.Reference) every chain is
// verified in full and neither cache is consulted nor taught.
func (p *Pipeline) verifyChain(signer *x509.Certificate, bag []*x509.Certificate, at time.Time, log *story) ([]*x509.Certificate, error) {
	if err := checkValidity(signer, at); err != nil {
		return nil, err
	}
	// RFC 8550 §4.4.2: when keyUsage is present, a signing certificate
	// must assert digitalSignature or nonRepudiation.
	if signer.KeyUsage != 0 && signer.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fail(ReasonCertWrongEKU, "%q: key usage allows neither digitalSignature nor nonRepudiation", certName(signer))
	}
	return p.verifyPath(signer, bag, at, log)
}

// verifyPath is verifyChain without its checks of the leaf's own validity
// and key usage: the path from leaf to a trusted root, for
// emailProtection, for the signer's certificate and for the encryption
// certificate (enccert.go) alike.
func (p *Pipeline) verifyPath(signer *x509.Certificate, bag []*x509.Certificate, at time.Time, log *story) ([]*x509.Certificate, error) {
	usable := make([]*x509.Certificate, 0, len(bag))
	for _, c := range bag {
		if c == signer {
			continue
		}
		if err := checkKeySize(c); err != nil {
			log.Warn("certificate ignored for the chain", "error", err)
			continue
		}
		usable = append(usable, c)
	}
	log.Info("verifying the certificate chain", "at", at.UTC().Format(time.RFC3339), "usage", "emailProtection")
	// A sender already known: the chain verified before (chainCache).
	chain := p.chains.get(signer, usable, at)
	known := chain != nil
	if !known && !p.opts.Reference {
		chain = p.links.verify(p.opts.Roots, signer, usable, at)
	}
	if known {
		// Kept only after it passed; checked again, for next to nothing.
		if err := checkChainKeys(chain); err != nil {
			return nil, err
		}
	} else if chain == nil {
		intermediates := x509.NewCertPool()
		for _, c := range usable {
			intermediates.AddCert(c)
		}
		chains, err := signer.Verify(x509.VerifyOptions{
			Roots:         p.opts.Roots,
			Intermediates: intermediates,
			CurrentTime:   at,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		})
		if err != nil {
			return nil, classifyChainError(signer, bag, at, err)
		}
		// The first chain without a weak key (sigalg.go).
		if err := checkChainKeys(chains[0]); err != nil {
			i := slices.IndexFunc(chains, func(c []*x509.Certificate) bool { return checkChainKeys(c) == nil })
			if i < 0 {
				return nil, err
			}
			chains[0] = chains[i]
		}
		chain = chains[0]
		if !p.opts.Reference {
			p.links.learn(p.opts.Roots, chain)
		}
	} else if err := checkChainKeys(chain[:1]); err != nil {
		// The cached link's keys passed when it was learnt.
		return nil, err
	}
	if err := checkSmtpUTF8Constraints(chain); err != nil {
		return nil, err
	}
	if !known && p.chains.verdicts != nil {
		p.links.init(p.opts.Roots)
		p.chains.put(p.links.rootSubjects, signer, usable, chain, at)
	}
	if log.enabled() {
		names := make([]string, len(chain))
		for i, c := range chain {
			names[i] = log.quotedName(c)
		}
		log.Info("chain verified: " + strings.Join(names, " <- "))
	}
	return chain, nil
}

// maxLinks bounds the links a linkCache keeps. Only links that chain to a
// trusted root are kept, so it is the number of intermediate CAs in use.
const maxLinks = 1024

// linkCache remembers intermediate CA certificates whose link to a trusted
// root a full verification (x509.Certificate.Verify) has established, so that
// the next message signed under the same intermediate needs one signature
// verification (signer by intermediate) instead of two. With an RSA-4096
// root, as public S/MIME roots often are, the link is the dearest part of a
// message.
//
// The shortcut gives the verdict and the chain a full verification would, or
// gives way to one: a full verification of the signer S with the bag's
// certificates as intermediates, at time t, first looks among the roots for
// issuers of S, then among the intermediates, and takes the first path that
// passes (x509 tries the roots first at every step, and returns the paths in
// the order found). For a cached link intermediate I -> root R, verify
// requires that
//
//   - no root has the subject of S or of I, and exactly one root (R) has I's
//     issuer name (learn and verify count them by raw subject), so the
//     search from S must go through the bag, and from I straight to R;
//   - exactly one usable bag certificate has S's issuer name, and it is I
//     byte for byte;
//   - R is valid at t (the other checks of R in that position - signature
//     on I, basic constraints, key usage, path length, critical extensions,
//     name chaining - do not depend on S or t and passed when the link was
//     learnt);
//   - S verifies with I as the only root, at t, for emailProtection: this
//     runs every check x509 makes of S and of I (signature, validity, name
//     chaining, I's path length, I's name constraints on S, extended key
//     usage of S and I, policies of S);
//
// and learn only keeps links whose remaining checks cannot depend on S: I is
// a CA without policy mappings or policy constraints (so the policy checks
// of [S, I, R] and [S, I] agree when S does not require an explicit
// policy), and R has no name constraints and allows emailProtection.
//
// Assumptions: the root pool does not change once the pipeline uses it, its
// certificates carry no AddCertWithConstraint constraint (neither loadTrust
// nor the system pool sets one), and the Go verifier is used (not the
// platform verifier of Windows and macOS, where the cache stays off).
type linkCache struct {
	once sync.Once
	// rootSubjects counts the trusted roots by raw subject; nil when the
	// cache is off.
	rootSubjects map[string]int

	mu    sync.RWMutex
	links map[string]*link // by the intermediate's raw bytes
}

// link is an intermediate whose issuer is a trusted root.
type link struct {
	intermediate *x509.Certificate
	root         *x509.Certificate
	anchor       *x509.CertPool // intermediate, as a root
}

func (lc *linkCache) init(roots *x509.CertPool) {
	lc.once.Do(func() {
		switch runtime.GOOS {
		case "windows", "darwin", "ios":
			return
		}
		if roots == nil {
			return
		}
		//lint:ignore SA1019 the pool is not the platform's (checked above)
		subjects := roots.Subjects()
		lc.rootSubjects = make(map[string]int, len(subjects))
		for _, s := range subjects {
			lc.rootSubjects[string(s)]++
		}
	})
}

// verify returns the chain signer <- intermediate <- root when a cached link
// proves it (see linkCache), nil when a full verification must decide.
func (lc *linkCache) verify(roots *x509.CertPool, signer *x509.Certificate, usable []*x509.Certificate, at time.Time) []*x509.Certificate {
	lc.mu.RLock()
	empty := len(lc.links) == 0
	lc.mu.RUnlock()
	if empty {
		return nil
	}
	lc.init(roots)
	if lc.rootSubjects == nil || lc.rootSubjects[string(signer.RawSubject)] != 0 || signer.RequireExplicitPolicyZero {
		return nil
	}
	var issuer *x509.Certificate
	for _, c := range usable {
		if bytes.Equal(c.RawSubject, signer.RawIssuer) {
			if issuer != nil {
				return nil // two candidates: let x509 choose
			}
			issuer = c
		}
	}
	if issuer == nil {
		return nil
	}
	lc.mu.RLock()
	l := lc.links[string(issuer.Raw)]
	lc.mu.RUnlock()
	if l == nil || at.Before(l.root.NotBefore) || at.After(l.root.NotAfter) {
		return nil
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:       l.anchor,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil || len(chains[0]) != 2 {
		return nil
	}
	return []*x509.Certificate{signer, issuer, l.root}
}

// learn keeps the link of a fully verified chain signer <- intermediate <-
// root, when the link can be reused for other signers (see linkCache).
func (lc *linkCache) learn(roots *x509.CertPool, chain []*x509.Certificate) {
	if len(chain) != 3 {
		return
	}
	inter, root := chain[1], chain[2]
	lc.init(roots)
	if lc.rootSubjects == nil ||
		lc.rootSubjects[string(inter.RawSubject)] != 0 || lc.rootSubjects[string(inter.RawIssuer)] != 1 ||
		!bytes.Equal(inter.RawIssuer, root.RawSubject) ||
		!inter.BasicConstraintsValid || !inter.IsCA ||
		len(inter.PolicyMappings) > 0 ||
		inter.RequireExplicitPolicy > 0 || inter.RequireExplicitPolicyZero ||
		inter.InhibitPolicyMapping > 0 || inter.InhibitPolicyMappingZero ||
		inter.InhibitAnyPolicy > 0 || inter.InhibitAnyPolicyZero ||
		hasExtension(root, oidNameConstraints) || !allowsEmailProtection(root) {
		return
	}
	key := string(inter.Raw)
	lc.mu.RLock()
	_, known := lc.links[key]
	lc.mu.RUnlock()
	if known {
		return
	}
	// Parsed again from a copy: on the pkcs7 path the bag's certificate
	// is a slice of the whole re-encoded CMS, which the link would keep.
	inter, err := x509.ParseCertificate(bytes.Clone(inter.Raw))
	if err != nil {
		return
	}
	anchor := x509.NewCertPool()
	anchor.AddCert(inter)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.links == nil {
		lc.links = make(map[string]*link)
	}
	if len(lc.links) < maxLinks {
		lc.links[key] = &link{intermediate: inter, root: root, anchor: anchor}
	}
}

// oidNameConstraints is the name constraints extension (RFC 5280 §4.2.1.10).
var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// allowsEmailProtection reports whether a CA certificate's extended key
// usage, if any, allows emailProtection, as x509 judges a chain's usages.
func allowsEmailProtection(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageAny || u == x509.ExtKeyUsageEmailProtection {
			return true
		}
	}
	return false
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
		// out of its validity period explains the failure better. The
		// walk is only for the words of the detail, so its signature
		// checks are few, whatever the bag holds.
		cert := signer
		budget := maxExplainChecks
		seen := map[*x509.Certificate]bool{signer: true}
		for budget > 0 {
			if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
				if e := explainCertSignature(cert); e != nil {
					return e
				}
			}
			issuer := findIssuer(cert, bag, &budget)
			if issuer == nil {
				break
			}
			if e := checkValidity(issuer, at); e != nil {
				return e
			}
			if seen[issuer] {
				return fail(ReasonCertUntrusted, "no chain to a trusted root: the certificates in the message issue each other in a loop, and none is a trusted root")
			}
			seen[issuer] = true
			cert = issuer
		}
		if bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			return fail(ReasonCertUntrusted, "no chain to a trusted root: the chain ends at the self-signed %q, which is not a trusted root", certName(cert))
		}
		return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is issued by %q, which is not a trusted root",
			certName(cert), FormatName(cert.Issuer))
	}
	return fail(ReasonCertUntrusted, "%w", err)
}

// maxExplainChecks bounds the signature checks spent on explaining a chain
// failure: a hostile bag of 50 certificates with one subject would
// otherwise cost thousands.
const maxExplainChecks = 8

// findIssuer returns the certificate of bag that signed c, spending at most
// *budget signature checks.
func findIssuer(c *x509.Certificate, bag []*x509.Certificate, budget *int) *x509.Certificate {
	for _, cand := range bag {
		if cand == c || !bytes.Equal(cand.RawSubject, c.RawIssuer) {
			continue
		}
		if *budget <= 0 {
			return nil
		}
		*budget--
		if c.CheckSignatureFrom(cand) == nil {
			return cand
		}
	}
	return nil
}

// certAddresses returns the addresses a certificate vouches for: its SAN
// rfc822Names and SmtpUTF8Mailboxes (RFC 9598), or, only when it has
// neither, its subject emailAddress attributes (RFC 8550 §3).
func certAddresses(c *x509.Certificate) []string {
	boxes := smtpUTF8Mailboxes(c)
	if len(boxes) > 0 {
		return append(slices.Clip(c.EmailAddresses), boxes...)
	}
	return certASCIIAddresses(c)
}

// certASCIIAddresses returns the addresses an ASCII From is compared with:
// the SAN rfc822Names, or, when the SAN has no address of either form, the
// subject emailAddress attributes. A SmtpUTF8Mailbox is never one (RFC 9598
// §3 and §5: it only holds, and only matches, a non-ASCII local part).
func certASCIIAddresses(c *x509.Certificate) []string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses
	}
	if len(smtpUTF8Mailboxes(c)) > 0 {
		return nil
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
// address: an ASCII From one of its rfc822Names (certAddressMatches), a
// From whose local part is not ASCII one of its SmtpUTF8Mailboxes
// (smtpUTF8Matches).
func checkIdentity(c *x509.Certificate, from string, log *story) error {
	if isASCII(from) {
		for _, a := range certASCIIAddresses(c) {
			if certAddressMatches(a, from) {
				log.Info("certificate address matches From", "address", from)
				return nil
			}
		}
	} else {
		for _, box := range smtpUTF8Mailboxes(c) {
			if smtpUTF8Matches(box, from) {
				log.Info("certificate address (SmtpUTF8Mailbox) matches From", "address", from)
				return nil
			}
		}
	}
	addrs := certAddresses(c)
	if len(addrs) == 0 {
		return fail(ReasonFromCertMismatch, "%q carries no email address; From is %s", certName(c), from)
	}
	return fail(ReasonFromCertMismatch, "%q is for %s; From is %s", certName(c), strings.Join(addrs, ", "), from)
}

// certAddressMatches reports whether a certificate address names from, a
// normalised address (ASCII, lower case): equal to it under ASCII case
// folding, once ASCII white space around it is removed.
//
// Only ASCII letters fold. strings.EqualFold applies Unicode simple folding,
// under which U+017F (ſ) equals "s" and U+212A (the Kelvin sign) equals
// "k": a certificate for ſam@example.com, a name no mailbox answers to,
// would stand for sam@example.com. So a certificate address holding any
// non-ASCII byte matches only when identical to from, which, from being
// ASCII, it never is. (The SAN rfc822Name is an IA5String, ASCII already;
// the subject emailAddress may come as a UTF8String.)
func certAddressMatches(certAddr, from string) bool {
	a := strings.Trim(certAddr, " \t\r\n")
	for i := 0; i < len(certAddr); i++ {
		if certAddr[i] >= utf8.RuneSelf {
			return certAddr == from
		}
	}
	if len(a) != len(from) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(from[i]) {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases an ASCII letter and returns any other byte as is.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
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
