package testcorpus

import (
	"crypto/x509"
	"encoding/asn1"

	"github.com/smallstep/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The certificate an application can encrypt to: dual-key senders, who
// sign with one certificate and receive encrypted mail with another, and
// signing-only certificates (RFC 8551 §2.5.3, RFC 8550 §4.4.2).

// Signed attribute types (RFC 8551 §2.5.2, §2.5.3).
var (
	OIDSMIMECapabilities       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	OIDEncryptionKeyPreference = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 11}
)

// Capability identifiers, in a typical client's order of preference.
var (
	OIDAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	OIDAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	OIDRSAESOAEP = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
)

// CapabilitiesAttribute is an SMIMECapabilities signed attribute listing
// oids, without parameters.
func CapabilitiesAttribute(oids ...asn1.ObjectIdentifier) pkcs7.Attribute {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, oid := range oids {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
		}
	})
	return pkcs7.Attribute{Type: OIDSMIMECapabilities, Value: asn1.RawValue{FullBytes: b.BytesOrPanic()}}
}

// PreferenceKind is how an SMIMEEncryptionKeyPreference names a
// certificate.
type PreferenceKind int

const (
	// ByIssuerAndSerial: issuerAndSerialNumber [0].
	ByIssuerAndSerial PreferenceKind = iota
	// ByRecipientKeyID: receipentKeyId [1], RecipientKeyIdentifier.
	ByRecipientKeyID
	// BySubjectKeyID: subjectAltKeyIdentifier [2].
	BySubjectKeyID
)

// PreferenceAttribute is an SMIMEEncryptionKeyPreference signed attribute
// naming c (implicit tags, RFC 8551 Appendix A).
func PreferenceAttribute(c *x509.Certificate, kind PreferenceKind) pkcs7.Attribute {
	var b cryptobyte.Builder
	switch kind {
	case ByIssuerAndSerial:
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(c.RawIssuer)
			b.AddASN1BigInt(c.SerialNumber)
		})
	case ByRecipientKeyID:
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(c.SubjectKeyId)
		})
	case BySubjectKeyID:
		b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(c.SubjectKeyId) })
	}
	return pkcs7.Attribute{Type: OIDEncryptionKeyPreference, Value: asn1.RawValue{FullBytes: b.BytesOrPanic()}}
}

// encryptionCases adds the accepted cases of dual-key senders and of
// certificates that allow encryption.
func (b *caseBuilder) encryptionCases() {
	f := b.f
	caps := CapabilitiesAttribute(OIDAES256GCM, OIDAES128CBC, OIDRSAESOAEP, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})

	addr := "dual.preference@example.com"
	c := Case{Name: "ok-dual-key-preference", Reason: ReasonOK, Address: addr,
		Description: "dual-key sender: RSA signing-only signer (digitalSignature), an RSA encryption certificate (keyEncipherment, another key) in the bag named by SMIMEEncryptionKeyPreference (issuerAndSerialNumber), SMIMECapabilities AES-256-GCM, AES-128-CBC, RSAES-OAEP and an unknown OID: the encryption certificate is stored"}
	enc, err := f.IssueLeaf(LeafSpec{Address: addr, SubjectEmail: true, Key: f.DecoyKey})
	var data []byte
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c),
			leaf: &LeafSpec{Address: addr, SubjectEmail: true, SigningOnly: true},
			cms:  cmsParams{bag: []*x509.Certificate{f.Intermediate, enc}, attrs: []pkcs7.Attribute{caps, PreferenceAttribute(enc, ByIssuerAndSerial)}},
			dkim: "example.com"})
	}
	b.addEncryption(c, data, err, enc)

	addr = "dual.ecdsa@example.net"
	c = Case{Name: "ok-dual-key-ecdsa-subject-key-id", Reason: ReasonOK, Address: addr,
		Description: "dual-key sender: ECDSA P-256 signing-only signer, an ECDSA P-384 certificate with keyAgreement named by SMIMEEncryptionKeyPreference (subjectAltKeyIdentifier), opaque signed-data"}
	enc, err = f.IssueLeaf(LeafSpec{Address: addr, SubjectEmail: true, Key: f.P384Key, ECIssuer: true})
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c),
			leaf:  &LeafSpec{Address: addr, SubjectEmail: true, Key: f.ECKey, ECIssuer: true, SigningOnly: true},
			cms:   cmsParams{bag: []*x509.Certificate{f.ECIntermediate, enc}, attrs: []pkcs7.Attribute{PreferenceAttribute(enc, BySubjectKeyID)}},
			smime: smimeOpts{opaque: true}, dkim: "example.net"})
	}
	b.addEncryption(c, data, err, enc)

	addr = "dual.bag@example.org"
	c = Case{Name: "ok-dual-key-in-bag", Reason: ReasonOK, Address: addr,
		Description: "dual-key sender without SMIMEEncryptionKeyPreference: RSA signing-only signer, the bag holds a certificate for another address and then an RSA encryption certificate for From; BER detached"}
	var other *x509.Certificate
	other, err = f.IssueLeaf(LeafSpec{Address: "someone.else@example.org", SubjectEmail: true, Key: f.DecoyKey})
	if err == nil {
		enc, err = f.IssueLeaf(LeafSpec{Address: addr, SubjectEmail: true, Key: f.DecoyKey})
	}
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c),
			leaf:  &LeafSpec{Address: addr, SubjectEmail: true, SigningOnly: true},
			cms:   cmsParams{bag: []*x509.Certificate{f.Intermediate, other, enc}},
			smime: smimeOpts{ber: true, thunderbird: true}, dkim: "example.org"})
	}
	b.addEncryption(c, data, err, enc)

	addr = "preference.signer@example.com"
	c = Case{Name: "ok-preference-names-signer", Reason: ReasonOK, Address: addr,
		Description: "RSA signer with keyEncipherment whose SMIMEEncryptionKeyPreference (receipentKeyId) names its own certificate, as Outlook sends it"}
	cert, err := f.IssueLeaf(LeafSpec{Address: addr, SubjectEmail: true})
	if err == nil {
		p := f.stdCMS(cert, f.LeafKey)
		p.attrs = []pkcs7.Attribute{PreferenceAttribute(cert, ByRecipientKeyID), caps}
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c), cms: p, dkim: "example.com"})
	}
	b.add(c, data, err)
}

// addEncryption adds an accepted case whose stored certificate is enc.
func (b *caseBuilder) addEncryption(c Case, data []byte, err error, enc *x509.Certificate) {
	if enc != nil {
		c.EncryptionCert = enc.Raw
	}
	b.add(c, data, err)
}

// rejectedEncryptionCases adds the messages with no certificate to encrypt
// to (cert_no_encryption), and a dual-key message whose named encryption
// certificate fails a check.
func (b *caseBuilder) rejectedEncryptionCases() {
	f := b.f
	c := Case{Name: "cert-no-encryption-rsa", Reason: ReasonCertNoEncryption,
		Description: "RSA signer certificate with key usage digitalSignature alone (S/MIME BR strict signing certificate), no other certificate for From"}
	data, err := b.signed(signedSpec{from: []string{"sign.only.rsa@example.com"}, subject: subj(c),
		leaf: &LeafSpec{Address: "sign.only.rsa@example.com", SubjectEmail: true, SigningOnly: true}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "cert-no-encryption-ecdsa", Reason: ReasonCertNoEncryption,
		Description: "ECDSA P-256 signer certificate without keyAgreement (digitalSignature alone)"}
	data, err = b.signed(signedSpec{from: []string{"sign.only.ecdsa@example.net"}, subject: subj(c),
		leaf: &LeafSpec{Address: "sign.only.ecdsa@example.net", SubjectEmail: true, SigningOnly: true, Key: f.ECKey},
		dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "cert-no-encryption-other-address", Reason: ReasonCertNoEncryption,
		Description: "RSA signing-only signer; the bag's encryption certificate is for another address, and the preference attribute names a certificate the message does not carry"}
	var enc, absent *x509.Certificate
	enc, err = f.IssueLeaf(LeafSpec{Address: "not.the.sender@example.org", SubjectEmail: true, Key: f.DecoyKey})
	if err == nil {
		absent, err = f.IssueLeaf(LeafSpec{Address: "sign.only.other@example.org", SubjectEmail: true, Key: f.DecoyKey})
	}
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{"sign.only.other@example.org"}, subject: subj(c),
			leaf: &LeafSpec{Address: "sign.only.other@example.org", SubjectEmail: true, SigningOnly: true},
			cms:  cmsParams{bag: []*x509.Certificate{f.Intermediate, enc}, attrs: []pkcs7.Attribute{PreferenceAttribute(absent, ByIssuerAndSerial)}},
			dkim: "example.org"})
	}
	b.add(c, data, err)

	c = Case{Name: "cert-expired-encryption-cert", Reason: ReasonCertExpired,
		Description: "dual-key sender whose SMIMEEncryptionKeyPreference names an encryption certificate that expired in 2025: the signer's checks run on it too"}
	enc, err = f.IssueLeaf(LeafSpec{Address: "dual.expired@example.com", SubjectEmail: true, Key: f.DecoyKey,
		NotBefore: ExpiredNotBefore, NotAfter: ExpiredNotAfter})
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{"dual.expired@example.com"}, subject: subj(c),
			leaf: &LeafSpec{Address: "dual.expired@example.com", SubjectEmail: true, SigningOnly: true},
			cms:  cmsParams{bag: []*x509.Certificate{f.Intermediate, enc}, attrs: []pkcs7.Attribute{PreferenceAttribute(enc, ByIssuerAndSerial)}},
			dkim: "example.com"})
	}
	b.add(c, data, err)
}
