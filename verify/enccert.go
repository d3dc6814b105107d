package verify

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"time"
)

// The certificate to encrypt to.
//
// Certificates are harvested so that applications can encrypt to their
// owners, and a signing certificate is not always one an application can
// encrypt to: a signing-only certificate (key usage digitalSignature alone,
// as the S/MIME Baseline Requirements' strict profile issues them, or a
// dual-key PKI's), an ECDSA certificate without keyAgreement, any Ed25519
// one. The encryption certificate is chosen as mail clients choose it
// (RFC 8551 §2.5.3, RFC 8550 §4.4.2):
//
//  1. the certificate the SMIMEEncryptionKeyPreference signed attribute
//     names among the CMS certificates, when its key usage allows
//     encryption; a certificate so named must then pass every check, or
//     the message is rejected with that check's reason;
//  2. else the signer's certificate, when its key usage allows encryption;
//  3. else the first certificate of the CMS for the From address whose key
//     usage allows encryption and that passes every check.
//
// Every check is the signer's: a chain to a trusted root at the
// verification time for emailProtection, and an address that is From. The
// choice is trusted because the verified signature covers the attribute
// that names the certificate, or because the certificate is the signer's;
// in step 3, because the certificate passes the checks a signer's does, in
// a message whose DKIM signature for the From domain covers the CMS (whose
// certificates the CMS signature does not cover). None: cert_no_encryption,
// and nothing is stored.

// maxEncryptionCandidates bounds the certificates of step 3 whose chain
// is verified: a hostile CMS may carry 50 certificates for From, each
// costing a chain verification.
const maxEncryptionCandidates = 4

// oidExtKeyUsage is the key usage extension (RFC 5280 §4.2.1.3).
var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// allowsEncryption reports whether a certificate's key can be encrypted to
// under its key usage (RFC 8550 §4.4.2; RFC 5280 §4.2.1.3): an RSA key
// with keyEncipherment (key transport, RFC 8551 §2.3), an EC or X25519 key
// with keyAgreement (ECDH, RFC 5753, RFC 8418); a certificate without the
// key usage extension allows both. An Ed25519 key (or any other) signs
// only.
func allowsEncryption(c *x509.Certificate) bool {
	var need x509.KeyUsage
	switch c.PublicKey.(type) {
	case *rsa.PublicKey:
		need = x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey, *ecdh.PublicKey:
		need = x509.KeyUsageKeyAgreement
	default:
		return false
	}
	if c.KeyUsage&need != 0 {
		return true
	}
	return c.KeyUsage == 0 && !hasExtension(c, oidExtKeyUsage)
}

// KeyUsageNames names the bits of a key usage (RFC 5280 §4.2.1.3),
// "none" for none.
func KeyUsageNames(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// encryptionCert chooses the certificate to encrypt to, for a signer whose
// chain and address have been verified, among the CMS certificates bag (see
// above), with its verified chain when it is not the signer's (nil when it
// is). attrs are the signer's verified S/MIME attributes.
func (p *Pipeline) encryptionCert(signer *x509.Certificate, bag []*x509.Certificate, attrs *smimeAttributes, from string, at time.Time, log *story) (*x509.Certificate, []*x509.Certificate, error) {
	for _, problem := range attrs.problems {
		log.Warn(problem)
	}
	if attrs.pref != nil {
		var named *x509.Certificate
		for _, c := range bag {
			if attrs.pref.names(c.RawIssuer, c.SerialNumber, c.SubjectKeyId) {
				named = c
				break
			}
		}
		switch {
		case named == nil:
			log.Warn("SMIMEEncryptionKeyPreference names a certificate the message does not carry: ignored")
		case !allowsEncryption(named):
			log.Warn("SMIMEEncryptionKeyPreference names a certificate whose key usage allows no encryption: ignored",
				"certificate", certName(named), "key_usage", KeyUsageNames(named.KeyUsage))
		case named == signer:
			log.Info("encryption certificate: the signer's, as SMIMEEncryptionKeyPreference names it")
			return signer, nil, nil
		default:
			log.Info("encryption certificate: named by SMIMEEncryptionKeyPreference", "certificate", certName(named),
				"serial", named.SerialNumber.Text(16))
			chain, err := p.checkEncryptionCert(named, bag, from, at, log)
			if err != nil {
				return nil, nil, err
			}
			return named, chain, nil
		}
	}
	if allowsEncryption(signer) {
		return signer, nil, nil // the usual case: the story says nothing more
	}
	log.Info("the signer's key usage allows no encryption; looking in the message for an encryption certificate for "+from,
		"key_usage", KeyUsageNames(signer.KeyUsage), "key", KeyDescription(signer.PublicKey))
	var firstErr error
	tried := 0
	for _, c := range bag {
		if c == signer || c.IsCA || !allowsEncryption(c) || !hasAddress(c, from) {
			continue
		}
		if tried == maxEncryptionCandidates {
			log.Warn("more candidate encryption certificates than are checked: the rest are ignored", "limit", maxEncryptionCandidates)
			break
		}
		tried++
		chain, err := p.checkEncryptionCert(c, bag, from, at, log)
		if err == nil {
			log.Info("encryption certificate: another certificate of the message for "+from, "certificate", certName(c),
				"serial", c.SerialNumber.Text(16))
			return c, chain, nil
		}
		log.Warn("candidate encryption certificate refused", "certificate", certName(c), "error", err)
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, nil, firstErr
	}
	return nil, nil, fail(ReasonCertNoEncryption, "%q (%s) allows no encryption (key usage: %s), and the message carries no other certificate for %s that does",
		certName(signer), KeyDescription(signer.PublicKey), KeyUsageNames(signer.KeyUsage), from)
}

// checkEncryptionCert runs the signer's checks on an encryption
// certificate: validity and a chain to a trusted root at the verification
// time, for emailProtection, and From among its addresses; it returns the
// verified chain, for the revocation check. Its key usage (which allows
// encryption, not signing) is not the signer's.
func (p *Pipeline) checkEncryptionCert(c *x509.Certificate, bag []*x509.Certificate, from string, at time.Time, log *story) ([]*x509.Certificate, error) {
	if err := checkValidity(c, at); err != nil {
		return nil, encryptionCertError(err)
	}
	chain, err := p.verifyPath(c, bag, at, log)
	if err != nil {
		return nil, encryptionCertError(err)
	}
	if err := checkIdentity(c, from, log); err != nil {
		return nil, encryptionCertError(err)
	}
	return chain, nil
}

// encryptionCertError says that err is the encryption certificate's.
func encryptionCertError(err error) error {
	if err == nil {
		return nil
	}
	reason := ReasonOf(err)
	if e, ok := err.(*Error); ok && e.Err != nil {
		err = e.Err
	}
	return fail(reason, "the encryption certificate: %w", err)
}

// hasAddress reports whether one of c's addresses is from.
func hasAddress(c *x509.Certificate, from string) bool {
	for _, a := range certAddresses(c) {
		if certAddressMatches(a, from) {
			return true
		}
	}
	return false
}
