package verify

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"

	"github.com/smallstep/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on what a CMS may make the pipeline do.
const (
	// maxRSABits is the largest RSA key whose signatures are verified. An
	// RSA verification costs about the cube of the key size: a 16,384-bit
	// key is ~500 times dearer than a 2,048-bit one. Real S/MIME keys are
	// at most 4,096 bits.
	maxRSABits = 8192
	// maxCMSCertificates bounds the certificate bag used to build a chain.
	maxCMSCertificates = 50
)

// signedCMS is a CMS SignedData whose signature verified.
type signedCMS struct {
	// signers are the certificates the SignerInfos name (RFC 5652 §5.3,
	// sid), in SignerInfo order.
	signers []*x509.Certificate
	// bag is every certificate the CMS carries (RFC 5652 §5.1).
	bag []*x509.Certificate
	// signedAttrs are each signer's signed attributes, as its signature
	// covers them (derSignerInfo.signedAttrs, DER on both paths); nil for
	// a signer without any. smimeAttributes reads them.
	signedAttrs [][]byte
}

// smimeAttributes returns the S/MIME attributes (smimeattrs.go) of the
// i-th signer, from the signed attributes its verified signature covers.
func (c *signedCMS) smimeAttributes(i int) smimeAttributes {
	if i >= len(c.signedAttrs) {
		return smimeAttributes{}
	}
	return readSMIMEAttributes(c.signedAttrs[i])
}

// parseCMS parses a CMS ContentInfo. The parser is hardened (see
// docs), but a panic on hostile BER must not take the process down, so it is
// recovered here as well as per message.
func parseCMS(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, fmt.Errorf("CMS parser panicked: %v", r)
		}
	}()
	if err := checkBER(der); err != nil {
		return nil, fmt.Errorf("not well-formed BER: %w", err)
	}
	return pkcs7.Parse(der)
}

// verifyCMS checks the CMS signature of e over its content (RFC 5652 §5.6):
// on the fast path (cmsder.go) when it decides, with what caches keeps
// (nil: nothing), else on the pkcs7 path.
func verifyCMS(e *signedEntity, caches *cmsCaches, log *story) (*signedCMS, error) {
	if err := checkCMSCertificateCount(e.cms); err != nil {
		return nil, err
	}
	if cms, ok := fastVerifyCMS(e, caches); ok {
		logVerifiedCMS(log, cms)
		return cms, nil
	}
	return verifyCMSWithPKCS7(e, log)
}

// verifyCMSReference is verifyCMS on the reference path
// (Options.Reference): the pkcs7 path for every CMS, no fast path.
func verifyCMSReference(e *signedEntity, log *story) (*signedCMS, error) {
	if err := checkCMSCertificateCount(e.cms); err != nil {
		return nil, err
	}
	return verifyCMSWithPKCS7(e, log)
}

// checkCMSCertificateCount refuses a CMS carrying more than
// maxCMSCertificates certificates before any parser spends time on them.
func checkCMSCertificateCount(der []byte) error {
	if n, err := countCMSCertificates(der); err == nil && n > maxCMSCertificates {
		return fail(ReasonSignatureMalformed, "CMS carries %d certificates, the limit is %d", n, maxCMSCertificates)
	}
	return nil
}

// verifyCMSWithPKCS7 is verifyCMS with github.com/smallstep/pkcs7: BER,
// uncommon shapes, and every rejection with its explanation.
func verifyCMSWithPKCS7(e *signedEntity, log *story) (*signedCMS, error) {
	p7, err := parseCMS(e.cms)
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "parsing CMS: %w", err)
	}
	if len(p7.Signers) == 0 {
		return nil, fail(ReasonSignatureMalformed, "CMS has no SignerInfo (not signed-data)")
	}
	if e.opaque {
		if len(p7.Content) == 0 {
			return nil, fail(ReasonSignatureMalformed, "opaque signed-data without encapsulated content")
		}
	} else {
		// A detached signature has no eContent (RFC 5652 §5.2); if one
		// is present anyway it must be what the message shows.
		if len(p7.Content) != 0 && !bytes.Equal(p7.Content, e.content) {
			return nil, fail(ReasonSignatureInvalid, "CMS encapsulates content different from the signed part")
		}
		p7.Content = e.content
	}
	if len(p7.Certificates) > maxCMSCertificates {
		return nil, fail(ReasonSignatureMalformed, "CMS carries %d certificates, the limit is %d", len(p7.Certificates), maxCMSCertificates)
	}
	signers := make([]*x509.Certificate, 0, len(p7.Signers))
	infos := make([]derSignerInfo, 0, len(p7.Signers))
	for _, psi := range p7.Signers {
		si := derSignerInfo{
			issuer:    psi.IssuerAndSerialNumber.IssuerName.FullBytes,
			serial:    psi.IssuerAndSerialNumber.SerialNumber,
			digestAlg: psi.DigestAlgorithm.Algorithm,
			sigAlg:    psi.DigestEncryptionAlgorithm.Algorithm,
			sigParams: psi.DigestEncryptionAlgorithm.Parameters.FullBytes,
			signature: psi.EncryptedDigest,
		}
		if si.serial == nil {
			return nil, fail(ReasonSignatureMalformed, "SignerInfo without a serial number")
		}
		if len(psi.AuthenticatedAttributes) > 0 {
			attrs := make([]cmsAttribute, len(psi.AuthenticatedAttributes))
			for i, a := range psi.AuthenticatedAttributes {
				attrs[i] = cmsAttribute(a)
			}
			if si.signedAttrs, err = derSignedAttributes(attrs); err != nil {
				return nil, fail(ReasonSignatureMalformed, "re-encoding the signed attributes: %w", err)
			}
		}
		signer := findSigner(p7.Certificates, &si)
		if signer == nil {
			return nil, fail(ReasonSignatureMalformed, "the certificate named by the SignerInfo is not in the CMS")
		}
		if err := checkSignerKey(signer); err != nil {
			return nil, &Error{Reason: ReasonSignatureInvalid, Err: err}
		}
		signers = append(signers, signer)
		infos = append(infos, si)
	}
	logCMSCertificates(log, p7.Certificates, signers)

	// Not p7.Verify: it refuses a signingTime outside the signer
	// certificate's validity (see derSignerInfo.check).
	for i := range infos {
		if err := infos[i].check(nil, signers[i], p7.Content); err != nil {
			return nil, err
		}
	}
	cms := &signedCMS{signers: signers, bag: p7.Certificates, signedAttrs: make([][]byte, len(infos))}
	for i := range infos {
		cms.signedAttrs[i] = infos[i].signedAttrs
	}
	logSignersVerified(log, cms.signers)
	return cms, nil
}

// cmsAttribute is an Attribute (RFC 5652 §5.3), SEQUENCE { attrType OBJECT
// IDENTIFIER, attrValues SET OF ANY }, with the fields of pkcs7's (which is
// unexported) so that one converts to the other.
type cmsAttribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

// derSignedAttributes encodes attributes as the [0] IMPLICIT SET OF
// Attribute of a SignerInfo, in DER order (X.690 §11.6: ascending
// encodings), the encoding the signature covers (RFC 5652 §5.4). pkcs7 has
// turned BER into DER; these are the bytes its Verify checked.
func derSignedAttributes(attrs []cmsAttribute) ([]byte, error) {
	encs := make([][]byte, len(attrs))
	for i, a := range attrs {
		enc, err := asn1.Marshal(a)
		if err != nil {
			return nil, err
		}
		encs[i] = enc
	}
	slices.SortFunc(encs, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		for _, e := range encs {
			b.AddBytes(e)
		}
	})
	return b.Bytes()
}

// logVerifiedCMS tells the story of a CMS that verified: each certificate it
// carries, then each signer.
func logVerifiedCMS(log *story, cms *signedCMS) {
	logCMSCertificates(log, cms.bag, cms.signers)
	logSignersVerified(log, cms.signers)
}

func logCMSCertificates(log *story, certs, signers []*x509.Certificate) {
	for _, c := range certs {
		role := "intermediate"
		for _, s := range signers {
			if c == s {
				role = "signer"
			}
		}
		logCertificate(log, c, role)
	}
}

func logSignersVerified(log *story, signers []*x509.Certificate) {
	for _, s := range signers {
		log.Info("CMS signature verified", "signer", certName(s), "serial", s.SerialNumber.Text(16))
	}
}

// checkKeySize refuses keys whose verification would be needlessly costly.
func checkKeySize(c *x509.Certificate) error {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > maxRSABits {
		return fmt.Errorf("RSA key of %d bits in %q exceeds the %d-bit limit", k.N.BitLen(), certName(c), maxRSABits)
	}
	return nil
}
