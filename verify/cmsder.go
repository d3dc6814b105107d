package verify

import (
	"bytes"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certharvest/certharvest/internal/rsaverify"
)

// The CMS fast path.
//
// pkcs7.Parse re-encodes every CMS from BER to DER before it parses it
// (ber2der), and parses and re-encodes with encoding/asn1's reflection: on a
// typical S/MIME signature that is about half of the CMS stage's time,
// spent even when the input is already DER, as most mail clients send.
// fastVerifyCMS parses DER directly (cryptobyte). It only ever accepts: when
// the CMS is not DER of the usual shape, or any check fails, it answers
// false and verifyCMS takes the pkcs7 path, which gives the verdict and its
// explanation. Both paths check each SignerInfo with the same code
// (derSignerInfo.check), so the fast path never accepts what the pkcs7 path
// would reject; FuzzCMSFastPath checks that.

// Object identifiers (RFC 5652 §14, RFC 5911, RFC 3370, RFC 5754, RFC 4055,
// RFC 5758).
var (
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// derSignedData is a CMS SignedData read from DER (RFC 5652 §5.1).
type derSignedData struct {
	// content is the encapsulated content (eContent); nil when detached.
	content []byte
	certs   []*x509.Certificate
	signers []derSignerInfo
}

// derSignerInfo is a SignerInfo (RFC 5652 §5.3) whose signer is named by
// issuer and serial number.
type derSignerInfo struct {
	issuer    []byte // the issuer Name, DER
	serial    *big.Int
	digestAlg asn1.ObjectIdentifier
	// signedAttrs is the [0] IMPLICIT SET OF Attribute element, tag
	// included; nil when absent.
	signedAttrs []byte
	sigAlg      asn1.ObjectIdentifier
	// sigParams are the signatureAlgorithm's parameters, DER; nil when
	// absent.
	sigParams []byte
	signature []byte
}

// cmsCaches are what the CMS fast path keeps from one message to the next:
// parsed CA certificates, and the moduli of RSA signers' keys. A nil
// *cmsCaches keeps nothing.
type cmsCaches struct {
	certs *certCache
	rsa   *rsaverify.Verifier
}

func (c *cmsCaches) certCache() *certCache {
	if c == nil {
		return nil
	}
	return c.certs
}

func (c *cmsCaches) rsaVerifier() *rsaverify.Verifier {
	if c == nil {
		return nil
	}
	return c.rsa
}

// fastVerifyCMS verifies e's CMS when it is DER and every check passes, and
// returns its signers and certificates. ok false means "not decided here":
// the pkcs7 path must run.
func fastVerifyCMS(e *signedEntity, caches *cmsCaches) (cms *signedCMS, ok bool) {
	sd, ok := parseSignedDataDER(e.cms, caches.certCache())
	if !ok || len(sd.signers) == 0 || len(sd.certs) > maxCMSCertificates {
		return nil, false
	}
	content := e.content
	if e.opaque {
		if len(sd.content) == 0 {
			return nil, false
		}
		content = sd.content
	} else if sd.content != nil && !bytes.Equal(sd.content, e.content) {
		return nil, false
	}
	signers := make([]*x509.Certificate, 0, len(sd.signers))
	attrs := make([][]byte, 0, len(sd.signers))
	for i := range sd.signers {
		si := &sd.signers[i]
		signer := findSigner(sd.certs, si)
		if signer == nil || checkSignerKey(signer) != nil || si.check(caches.rsaVerifier(), signer, content) != nil {
			return nil, false
		}
		signers = append(signers, signer)
		attrs = append(attrs, si.signedAttrs)
	}
	return &signedCMS{signers: signers, bag: sd.certs, signedAttrs: attrs}, true
}

func findSigner(certs []*x509.Certificate, si *derSignerInfo) *x509.Certificate {
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber.Cmp(si.serial) == 0 {
			return c
		}
	}
	return nil
}

// check verifies si's signature by signer over content (RFC 5652 §5.4,
// §5.6): the message digest attribute against the content, then the
// signature over the signed attributes (over the content when there are
// none). It is the one check of a SignerInfo, on the fast path and on the
// pkcs7 path alike. RSA PKCS #1 v1.5 signatures are verified through rsa
// (nil: crypto/rsa alone).
//
// A signingTime attribute must be well-formed, but it is not compared with
// the signer certificate's validity, as pkcs7's Verify would: the signer
// chose it. Outlook, Thunderbird, Apple Mail and gpgsm put the time of
// sending there, so mail signed with a certificate that has expired would
// read as a broken signature (signature_invalid) instead of cert_expired.
// Validity is the chain's to judge, at the verification time (chain.go).
func (si *derSignerInfo) check(rsa *rsaverify.Verifier, signer *x509.Certificate, content []byte) error {
	alg, err := cmsSignatureAlgorithm(si.digestAlg, si.sigAlg, si.sigParams)
	if err != nil {
		return err
	}
	hash := alg.digest
	signed := content
	if si.signedAttrs != nil {
		digest, err := readSignedAttributes(si.signedAttrs)
		if err != nil {
			return &Error{Reason: ReasonSignatureMalformed, Err: err}
		}
		h := hash.New()
		h.Write(content)
		if subtle.ConstantTimeCompare(h.Sum(nil), digest) != 1 {
			return fail(ReasonSignatureInvalid, "the content does not match the signed digest: the message was altered after signing")
		}
		// The signature covers the DER encoding of the attributes with
		// the SET OF tag, not the [0] IMPLICIT tag they travel with.
		signed = make([]byte, len(si.signedAttrs))
		copy(signed, si.signedAttrs)
		signed[0] = 0x31
	}
	if err := alg.verify(rsa, signer, signed, si.signature); err != nil {
		return fail(ReasonSignatureInvalid, "CMS signature by %q: %w", certName(signer), err)
	}
	return nil
}

// readSignedAttributes returns the message digest of a [0] IMPLICIT SET OF
// Attribute (RFC 5652 §5.3). It requires DER order (X.690 §11.6), the
// encoding the signature is computed over, exactly one message digest
// (§11.2) and at most one signing time (§11.3), each with exactly one value,
// a signing time being a UTCTime or a GeneralizedTime. The signing time is
// read only to refuse a malformed one: its value decides nothing (see
// check).
func readSignedAttributes(raw []byte) (digest []byte, err error) {
	s := cryptobyte.String(raw)
	var attrs cryptobyte.String
	if !s.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) || !s.Empty() {
		return nil, errors.New("signed attributes: not a [0] SET OF Attribute")
	}
	var prev []byte
	haveSigningTime := false
	for !attrs.Empty() {
		var full cryptobyte.String
		if !attrs.ReadASN1Element(&full, cbasn1.SEQUENCE) {
			return nil, errors.New("signed attributes: an attribute is not a SEQUENCE")
		}
		if prev != nil && bytes.Compare(prev, full) > 0 {
			return nil, errors.New("signed attributes: not in DER order")
		}
		prev = full
		attr := full
		var body cryptobyte.String
		var typ asn1.ObjectIdentifier
		var values cryptobyte.String
		if !attr.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&typ) ||
			!body.ReadASN1(&values, cbasn1.SET) || !body.Empty() {
			return nil, errors.New("signed attributes: an attribute is not a type and a SET of values")
		}
		switch {
		case typ.Equal(oidAttrMessageDigest):
			var d cryptobyte.String
			if digest != nil {
				return nil, errors.New("signed attributes: more than one message digest")
			}
			if !values.ReadASN1(&d, cbasn1.OCTET_STRING) || !values.Empty() || len(d) == 0 {
				return nil, errors.New("signed attributes: the message digest is not one non-empty OCTET STRING")
			}
			digest = d
		case typ.Equal(oidAttrSigningTime):
			if haveSigningTime {
				return nil, errors.New("signed attributes: more than one signing time")
			}
			haveSigningTime = true
			if err := readSigningTime(values); err != nil {
				return nil, err
			}
		}
	}
	if digest == nil {
		return nil, errors.New("signed attributes: no message digest")
	}
	return digest, nil
}

// readSigningTime checks the values of a signingTime attribute: exactly one
// Time, UTCTime or GeneralizedTime (RFC 5652 §11.3).
func readSigningTime(values cryptobyte.String) error {
	var t time.Time
	var ok bool
	switch {
	case values.PeekASN1Tag(cbasn1.UTCTime):
		ok = values.ReadASN1UTCTime(&t)
	case values.PeekASN1Tag(cbasn1.GeneralizedTime):
		ok = values.ReadASN1GeneralizedTime(&t)
	default:
		return errors.New("signed attributes: the signing time is not a UTCTime or GeneralizedTime")
	}
	if !ok {
		return errors.New("signed attributes: the signing time is not a valid time")
	}
	if !values.Empty() {
		return errors.New("signed attributes: the signing time has more than one value")
	}
	return nil
}

// parseSignedDataDER reads a ContentInfo holding SignedData, in DER:
//
//	ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
//	SignedData ::= SEQUENCE { version INTEGER, digestAlgorithms SET,
//	    encapContentInfo SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING OPTIONAL },
//	    certificates [0] IMPLICIT SET OF Certificate OPTIONAL,
//	    crls [1] IMPLICIT ... OPTIONAL, signerInfos SET OF SignerInfo }
//
// Anything else (BER, other certificate or signer-identifier choices,
// trailing bytes) gives false. Certificates are parsed through cache.
func parseSignedDataDER(b []byte, cache *certCache) (*derSignedData, bool) {
	in := cryptobyte.String(b)
	var contentInfo, explicit, signedData cryptobyte.String
	var contentType asn1.ObjectIdentifier
	if !in.ReadASN1(&contentInfo, cbasn1.SEQUENCE) || !in.Empty() ||
		!contentInfo.ReadASN1ObjectIdentifier(&contentType) || !contentType.Equal(oidSignedData) ||
		!contentInfo.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !contentInfo.Empty() ||
		!explicit.ReadASN1(&signedData, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, false
	}
	var version int64
	var digestAlgs, encap cryptobyte.String
	var eContentType asn1.ObjectIdentifier
	if !signedData.ReadASN1Integer(&version) || !signedData.ReadASN1(&digestAlgs, cbasn1.SET) ||
		!allAlgorithmIdentifiers(digestAlgs) || !signedData.ReadASN1(&encap, cbasn1.SEQUENCE) ||
		!encap.ReadASN1ObjectIdentifier(&eContentType) || !eContentType.Equal(oidData) {
		return nil, false
	}
	sd := &derSignedData{}
	if !encap.Empty() {
		var eContent, octets cryptobyte.String
		if !encap.ReadASN1(&eContent, cbasn1.Tag(0).Constructed().ContextSpecific()) || !encap.Empty() ||
			!eContent.ReadASN1(&octets, cbasn1.OCTET_STRING) || !eContent.Empty() {
			return nil, false
		}
		sd.content = octets
	}
	if signedData.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var certs cryptobyte.String
		if !signedData.ReadASN1(&certs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, false
		}
		for !certs.Empty() {
			if len(sd.certs) == maxCMSCertificates {
				return nil, false
			}
			var der cryptobyte.String
			if !certs.ReadASN1Element(&der, cbasn1.SEQUENCE) {
				return nil, false
			}
			c, err := cache.parse(der, sd.certs)
			if err != nil {
				return nil, false
			}
			sd.certs = append(sd.certs, c)
		}
	}
	if signedData.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		// CRLs: rare in mail, and parsed by pkcs7 in ways not worth
		// matching here.
		return nil, false
	}
	var signerInfos cryptobyte.String
	if !signedData.ReadASN1(&signerInfos, cbasn1.SET) || !signedData.Empty() {
		return nil, false
	}
	for !signerInfos.Empty() {
		si, ok := readSignerInfo(&signerInfos)
		if !ok {
			return nil, false
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, true
}

// readSignerInfo reads a SignerInfo whose sid is issuerAndSerialNumber:
//
//	SignerInfo ::= SEQUENCE { version INTEGER, sid IssuerAndSerialNumber,
//	    digestAlgorithm AlgorithmIdentifier, signedAttrs [0] IMPLICIT OPTIONAL,
//	    signatureAlgorithm AlgorithmIdentifier, signature OCTET STRING,
//	    unsignedAttrs [1] IMPLICIT OPTIONAL }
func readSignerInfo(s *cryptobyte.String) (derSignerInfo, bool) {
	var si derSignerInfo
	var body, sid, issuer, digestAlg, sigAlg, signature cryptobyte.String
	var version int64
	si.serial = new(big.Int)
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Integer(&version) ||
		!body.ReadASN1(&sid, cbasn1.SEQUENCE) || !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!sid.ReadASN1Integer(si.serial) || !sid.Empty() ||
		!body.ReadASN1(&digestAlg, cbasn1.SEQUENCE) || !digestAlg.ReadASN1ObjectIdentifier(&si.digestAlg) {
		return si, false
	}
	si.issuer = issuer
	if body.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var attrs cryptobyte.String
		if !body.ReadASN1Element(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return si, false
		}
		si.signedAttrs = attrs
	}
	if !body.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !sigAlg.ReadASN1ObjectIdentifier(&si.sigAlg) ||
		!body.ReadASN1(&signature, cbasn1.OCTET_STRING) {
		return si, false
	}
	if len(sigAlg) > 0 {
		si.sigParams = sigAlg
	}
	si.signature = signature
	if body.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		var attrs cryptobyte.String
		if !body.ReadASN1(&attrs, cbasn1.Tag(1).Constructed().ContextSpecific()) || !allAttributes(attrs) {
			return si, false
		}
	}
	return si, body.Empty()
}

// allAlgorithmIdentifiers reports whether s is a sequence of
// AlgorithmIdentifiers (RFC 5280 §4.1.1.2).
func allAlgorithmIdentifiers(s cryptobyte.String) bool {
	for !s.Empty() {
		var alg cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
			return false
		}
	}
	return true
}

// allAttributes reports whether s is a sequence of Attributes (RFC 5652
// §5.3): SEQUENCE { attrType OID, attrValues SET }.
func allAttributes(s cryptobyte.String) bool {
	for !s.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !s.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return false
		}
	}
	return true
}
