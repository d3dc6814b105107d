package testcorpus

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Fixed times. Certificates of the normal kind are valid from NotBefore to
// NotAfter; verification is expected to be done at At (certharvest --at).
// They are variables only because Go has no time.Time constants; do not
// modify them.
var (
	// NotBefore is the start of validity of the ordinary end-entity certificates.
	NotBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// NotAfter is the end of validity of the ordinary end-entity certificates.
	NotAfter = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	// At is the time at which the corpus is meant to be verified.
	At = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	// SigningTime is the CMS signingTime attribute and the Date header of
	// the ordinary messages (inside every ordinary certificate's validity,
	// and before At). It is after ExpiredNotAfter and before
	// FutureNotBefore: the *-signingtime-* cases sign with it, as a mail
	// client stamps the time of sending, with the expired and the
	// not-yet-valid certificate.
	SigningTime = time.Date(2026, 5, 31, 12, 0, 0, 0, time.UTC)
	// SkewedSigningTime is the signingTime of a sender whose clock was
	// reset: before the validity of every certificate the fixture issues.
	// The ok-signingtime-* cases sign with it and a certificate valid at
	// At.
	SkewedSigningTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

	// ExpiredNotBefore and ExpiredNotAfter bound the expired certificate.
	ExpiredNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ExpiredNotAfter  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// ExpiredSigningTime lies inside the expired certificate's validity
	// (the cert-expired case): only the chain at At fails, whatever the
	// verifier makes of signingTime.
	ExpiredSigningTime = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

	// FutureNotBefore and FutureNotAfter bound the not-yet-valid certificate.
	FutureNotBefore = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	FutureNotAfter  = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	// FutureSigningTime lies inside the not-yet-valid certificate's validity.
	FutureSigningTime = time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)

	caNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
)

// AtUnix is At as seconds since the Unix epoch (for openssl -attime).
const AtUnix = 1780272000

// Names used in the PKI and DKIM set-up.
const (
	RootCommonName           = "certharvest Test Root"
	IntermediateCommonName   = "certharvest Test Intermediate"
	ECIntermediateCommonName = "certharvest Test Intermediate EC"
	EdIntermediateCommonName = "certharvest Test Intermediate Ed25519"
	UntrustedRootCommonName  = "certharvest Untrusted Root"
	// Selector is the DKIM selector of every fixture key.
	Selector = "s1"
)

// DKIMDomains are the ASCII domains for which the fixture holds DKIM keys;
// IDNDomain has one too.
var DKIMDomains = []string{"example.com", "example.net", "example.org"}

// IDNDomain is an internationalised domain with a DKIM key of its own, in
// A-labels (as DKIM's d= and DNS have it): bücher.example, IDNDomainU.
// The cases of internationalised addresses use it.
const (
	IDNDomain  = "xn--bcher-kva.example"
	IDNDomainU = "bücher.example"
)

// OIDSmtpUTF8Mailbox is id-on-SmtpUTF8Mailbox (RFC 9598 §3), the otherName
// of an internationalised address in a SubjectAltName.
var OIDSmtpUTF8Mailbox = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 9}

// OIDEmailAddress is the PKCS #9 emailAddress attribute (RFC 2985 §5.2.1),
// the legacy place of an S/MIME address in the certificate subject.
var OIDEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// Fixture is a generated test PKI with DKIM keys. All fields are read-only
// after New; its methods are safe for concurrent use.
type Fixture struct {
	Root            *x509.Certificate
	RootKey         *rsa.PrivateKey
	Intermediate    *x509.Certificate
	IntermediateKey *rsa.PrivateKey

	// ECIntermediate is a second intermediate under Root, with an ECDSA
	// P-256 key: issuing from it is ~50x cheaper than from the RSA one (see
	// the ECIssuer option). The Cases do not use it.
	ECIntermediate    *x509.Certificate
	ECIntermediateKey *ecdsa.PrivateKey

	// EdIntermediate is a third intermediate under Root, with an Ed25519
	// key, signed by Root with RSASSA-PSS SHA-256: it issues the Ed25519
	// signers' certificates (PureEd25519), so that PSS and Ed25519 are in
	// their chains too.
	EdIntermediate    *x509.Certificate
	EdIntermediateKey ed25519.PrivateKey

	// UntrustedRoot is a self-signed CA that is not in TrustPEM.
	UntrustedRoot    *x509.Certificate
	UntrustedRootKey *rsa.PrivateKey

	// LeafKey is the RSA-2048 key shared by every RSA end-entity
	// certificate the fixture issues (key generation is slow; a
	// certificate per address is what matters).
	LeafKey *rsa.PrivateKey
	// DecoyKey is a second RSA-2048 end-entity key, used for certificates
	// that must not share a public key with the signer.
	DecoyKey *rsa.PrivateKey
	// ECKey is the ECDSA P-256 end-entity key.
	ECKey *ecdsa.PrivateKey
	// P384Key and P521Key are the ECDSA P-384 and P-521 end-entity keys.
	P384Key, P521Key *ecdsa.PrivateKey
	// Ed25519Key is the Ed25519 end-entity key.
	Ed25519Key ed25519.PrivateKey
	// WeakRSAKey is an RSA-1024 end-entity key, which the verifier
	// refuses as weak.
	WeakRSAKey *rsa.PrivateKey

	// DKIMKeys maps a domain of DKIMDomains to its key (selector Selector).
	DKIMKeys map[string]*rsa.PrivateKey

	cases []Case
}

// New generates a fresh fixture. Keys are random; validity periods are the
// fixed ones above.
func New() (*Fixture, error) {
	f := &Fixture{DKIMKeys: make(map[string]*rsa.PrivateKey)}

	// RSA key generation dominates; spread it over the available cores.
	targets := []**rsa.PrivateKey{&f.RootKey, &f.IntermediateKey, &f.UntrustedRootKey, &f.LeafKey, &f.DecoyKey}
	dkim := make([]*rsa.PrivateKey, len(DKIMDomains)+1) // and IDNDomain's
	for i := range dkim {
		targets = append(targets, &dkim[i])
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, p := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*p, errs[i] = rsa.GenerateKey(rand.Reader, 2048)
		}()
	}
	var err error
	more := make([]error, 7)
	f.ECKey, more[0] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.ECIntermediateKey, more[1] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.P384Key, more[2] = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	f.P521Key, more[3] = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, f.Ed25519Key, more[4] = ed25519.GenerateKey(rand.Reader)
	_, f.EdIntermediateKey, more[5] = ed25519.GenerateKey(rand.Reader)
	f.WeakRSAKey, more[6] = rsa.GenerateKey(rand.Reader, 1024)
	wg.Wait()
	if err = errors.Join(append(errs, more...)...); err != nil {
		return nil, fmt.Errorf("testcorpus: generating keys: %w", err)
	}
	for i, d := range DKIMDomains {
		f.DKIMKeys[d] = dkim[i]
	}
	f.DKIMKeys[IDNDomain] = dkim[len(DKIMDomains)]

	if f.Root, err = selfSignedCA(RootCommonName, f.RootKey); err != nil {
		return nil, err
	}
	if f.UntrustedRoot, err = selfSignedCA(UntrustedRootCommonName, f.UntrustedRootKey); err != nil {
		return nil, err
	}
	if f.Intermediate, err = f.intermediate(IntermediateCommonName, f.IntermediateKey.Public()); err != nil {
		return nil, err
	}
	if f.ECIntermediate, err = f.intermediate(ECIntermediateCommonName, f.ECIntermediateKey.Public()); err != nil {
		return nil, err
	}
	if f.EdIntermediate, err = f.intermediate(EdIntermediateCommonName, f.EdIntermediateKey.Public(), x509.SHA256WithRSAPSS); err != nil {
		return nil, err
	}
	if f.cases, err = f.buildCases(); err != nil {
		return nil, err
	}
	return f, nil
}

// intermediate issues an intermediate CA certificate from Root, signed with
// Go's default algorithm for Root's key or with alg.
func (f *Fixture) intermediate(cn string, pub crypto.PublicKey, alg ...x509.SignatureAlgorithm) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"certharvest tests"}},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter.AddDate(-5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if len(alg) > 0 {
		tmpl.SignatureAlgorithm = alg[0]
	}
	return Issue(tmpl, f.Root, pub, f.RootKey)
}

func serial() (*big.Int, error) {
	// RFC 5280 §4.1.2.2: positive, at most 20 octets.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

// Issue creates the certificate of tmpl for pub, signed by parentKey as
// parent, and parses it back. A nil parent makes the certificate
// self-signed: tmpl is its own parent. A nil tmpl.SerialNumber gets a
// random one; tmpl itself is not modified. Issue adds nothing to tmpl, so a
// deliberately odd certificate (a loop, a huge key, an unusual extension)
// is made by setting tmpl's fields.
func Issue(tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	t := *tmpl
	if t.SerialNumber == nil {
		var err error
		if t.SerialNumber, err = serial(); err != nil {
			return nil, fmt.Errorf("testcorpus: serial number: %w", err)
		}
	}
	if parent == nil {
		parent = &t
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("testcorpus: creating certificate %q: %w", t.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcorpus: parsing certificate %q: %w", t.Subject.CommonName, err)
	}
	return cert, nil
}

// SelfSigned creates the certificate of tmpl for key, signed by key itself
// (see Issue).
func SelfSigned(tmpl *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	return Issue(tmpl, nil, key.Public(), key)
}

// selfSignedCA is a root CA named cn, valid from caNotBefore to caNotAfter.
func selfSignedCA(cn string, key crypto.Signer) (*x509.Certificate, error) {
	return SelfSigned(&x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"certharvest tests"}},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, key)
}

// LeafSpec describes an end-entity S/MIME certificate.
type LeafSpec struct {
	// Address goes into the SAN rfc822Name (unless NoSAN) and, if
	// SubjectEmail, into the subject emailAddress attribute.
	Address string
	// CommonName of the subject; defaults to Address.
	CommonName   string
	NoSAN        bool
	SubjectEmail bool
	// SubjectEmailUTF8 encodes the subject emailAddress as a UTF8String
	// instead of an IA5String, as some CAs do: the only way to carry a
	// non-ASCII address, which the SAN (IA5String) cannot hold, so NoSAN
	// goes with it.
	SubjectEmailUTF8 bool
	// SmtpUTF8Mailboxes go into the SAN as otherName SmtpUTF8Mailbox
	// (RFC 9598 §3), after the rfc822Name of Address unless NoSAN. They
	// are written as given, so a case can hold one RFC 9598 does not
	// allow (not in NFC, a U-label domain, an ASCII local part).
	SmtpUTF8Mailboxes []string
	// NotBefore/NotAfter default to the package NotBefore/NotAfter.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage defaults to emailProtection.
	ExtKeyUsage []x509.ExtKeyUsage
	// KeyUsage defaults to what an S/MIME certificate for signing and
	// encryption has (DefaultKeyUsage); SigningOnly makes it
	// digitalSignature alone, as the S/MIME BR strict profile's signing
	// certificates and dual-key PKIs have it.
	KeyUsage    x509.KeyUsage
	SigningOnly bool
	// Key is the subject key; defaults to LeafKey.
	Key crypto.Signer
	// Untrusted makes the untrusted root the issuer instead of the
	// intermediate.
	Untrusted bool
	// ECIssuer makes ECIntermediate the issuer.
	ECIssuer bool
	// EdIssuer makes EdIntermediate the issuer.
	EdIssuer bool
	// SignatureAlgorithm is the issuer's signature on the certificate;
	// zero: Go's default for the issuer's key (SHA-256 for RSA and P-256).
	SignatureAlgorithm x509.SignatureAlgorithm
	// Issuer and IssuerKey, when set, issue the certificate instead
	// (a RevocationIntermediate).
	Issuer    *x509.Certificate
	IssuerKey crypto.Signer
	// OCSPServer and CRLDistributionPoints go into the certificate's AIA
	// and CRL distribution points extensions.
	OCSPServer, CRLDistributionPoints []string
}

// IssueLeaf issues an end-entity certificate. The issuer is the trusted
// (RSA) intermediate unless spec.Untrusted, spec.ECIssuer or spec.EdIssuer.
func (f *Fixture) IssueLeaf(spec LeafSpec) (*x509.Certificate, error) {
	cn := spec.CommonName
	if cn == "" {
		cn = spec.Address
	}
	subj := pkix.Name{CommonName: cn, Organization: []string{"certharvest tests"}}
	if spec.SubjectEmail {
		// emailAddress is an IA5String (RFC 2985 §5.2.1, RFC 5280 §4.1.2.6);
		// a plain Go string would be encoded as a UTF8String.
		tag := asn1.TagIA5String
		if spec.SubjectEmailUTF8 {
			tag = asn1.TagUTF8String
		}
		subj.ExtraNames = append(subj.ExtraNames, pkix.AttributeTypeAndValue{
			Type:  OIDEmailAddress,
			Value: asn1.RawValue{Tag: tag, Bytes: []byte(spec.Address)},
		})
	}
	tmpl := &x509.Certificate{
		Subject:               subj,
		NotBefore:             orTime(spec.NotBefore, NotBefore),
		NotAfter:              orTime(spec.NotAfter, NotAfter),
		KeyUsage:              spec.KeyUsage,
		ExtKeyUsage:           spec.ExtKeyUsage,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    spec.SignatureAlgorithm,
		OCSPServer:            spec.OCSPServer,
		CRLDistributionPoints: spec.CRLDistributionPoints,
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	}
	switch {
	case len(spec.SmtpUTF8Mailboxes) > 0:
		// crypto/x509 writes no otherName: the whole SAN, by hand.
		var rfc822 []string
		if !spec.NoSAN {
			rfc822 = []string{spec.Address}
		}
		san, err := SubjectAltName(rfc822, spec.SmtpUTF8Mailboxes)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, san)
	case !spec.NoSAN:
		// RFC 5280 §4.2.1.6 / RFC 8550 §3: the address as rfc822Name.
		tmpl.EmailAddresses = []string{spec.Address}
	}
	key := spec.Key
	if key == nil {
		key = f.LeafKey
	}
	switch {
	case spec.SigningOnly:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	case tmpl.KeyUsage == 0:
		tmpl.KeyUsage = DefaultKeyUsage(key.Public())
	}
	// A subject key identifier, as CAs put in S/MIME certificates (RFC
	// 5280 §4.2.1.2): what an SMIMEEncryptionKeyPreference may name.
	if spki, err := x509.MarshalPKIXPublicKey(key.Public()); err == nil {
		sum := sha256.Sum256(spki)
		tmpl.SubjectKeyId = sum[:20]
	}
	var parent *x509.Certificate
	var parentKey crypto.Signer
	switch {
	case spec.Issuer != nil:
		parent, parentKey = spec.Issuer, spec.IssuerKey
	case spec.Untrusted:
		parent, parentKey = f.UntrustedRoot, f.UntrustedRootKey
	case spec.ECIssuer:
		parent, parentKey = f.ECIntermediate, f.ECIntermediateKey
	case spec.EdIssuer:
		parent, parentKey = f.EdIntermediate, f.EdIntermediateKey
	default:
		parent, parentKey = f.Intermediate, f.IntermediateKey
	}
	return Issue(tmpl, parent, key.Public(), parentKey)
}

// DefaultKeyUsage is the key usage of a leaf for signing and encryption
// (RFC 8550 §4.4.2; the S/MIME BR multipurpose profile): digitalSignature,
// and keyEncipherment for an RSA key, keyAgreement for an EC key; an
// Ed25519 key only signs.
func DefaultKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	}
	return x509.KeyUsageDigitalSignature
}

// SubjectAltName returns a SubjectAltName extension (RFC 5280 §4.2.1.6)
// of rfc822Names and SmtpUTF8Mailbox otherNames (RFC 9598 §3), written as
// given, for a template's ExtraExtensions (crypto/x509 writes no
// otherName).
func SubjectAltName(rfc822, smtpUTF8 []string) (pkix.Extension, error) {
	var names []asn1.RawValue
	for _, a := range rfc822 {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(a)})
	}
	for _, a := range smtpUTF8 {
		// OtherName ::= SEQUENCE { type-id, value [0] EXPLICIT UTF8String },
		// as GeneralName's [0] IMPLICIT.
		str, err := asn1.MarshalWithParams(a, "utf8")
		if err != nil {
			return pkix.Extension{}, err
		}
		value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
		if err != nil {
			return pkix.Extension{}, err
		}
		oid, err := asn1.Marshal(OIDSmtpUTF8Mailbox)
		if err != nil {
			return pkix.Extension{}, err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, value...)})
	}
	der, err := asn1.Marshal(names)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("testcorpus: SubjectAltName: %w", err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}, nil
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// TrustPEM returns the trusted root certificate (only) in PEM form: the
// trust bundle to give the verifier.
func (f *Fixture) TrustPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Root.Raw})
}

// TrustPool returns a pool holding the trusted root only.
func (f *Fixture) TrustPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.Root)
	return p
}

// DKIMRecord returns the DNS TXT record value (RFC 6376 §3.6.1) for a
// fixture domain's key.
func (f *Fixture) DKIMRecord(domain string) (string, bool) {
	k, ok := f.DKIMKeys[strings.ToLower(domain)]
	if !ok {
		return "", false
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", false
	}
	return "v=DKIM1; k=rsa; p=" + b64(spki), true
}

// KeysFile returns the DKIM key file: one "selector._domainkey.domain<TAB>TXT
// record" line per domain, with '#' comment lines.
func (f *Fixture) KeysFile() []byte {
	var b strings.Builder
	b.WriteString("# certharvest test DKIM keys: name<TAB>TXT record (RFC 6376 §3.6.1)\n")
	for _, d := range append(DKIMDomains[:len(DKIMDomains):len(DKIMDomains)], IDNDomain) {
		rec, _ := f.DKIMRecord(d)
		fmt.Fprintf(&b, "%s._domainkey.%s\t%s\n", Selector, d, rec)
	}
	return []byte(b.String())
}

// LookupTXT resolves "selector._domainkey.domain" names like DNS would for
// the fixture's keys, with the signature of dkim.VerifyOptions.LookupTXT.
// Unknown names give an error.
func (f *Fixture) LookupTXT(name string) ([]string, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	sel, domain, ok := strings.Cut(name, "._domainkey.")
	if ok && sel == Selector {
		if rec, ok := f.DKIMRecord(domain); ok {
			return []string{rec}, nil
		}
	}
	return nil, fmt.Errorf("testcorpus: no TXT record for %q", name)
}
