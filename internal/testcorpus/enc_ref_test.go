package testcorpus_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/smallstep/pkcs7"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The reference checks' choice of the certificate to encrypt to, written
// apart from the verifier's (encoding/asn1 here, cryptobyte there), from
// RFC 8551 §2.5.3 and RFC 8550 §4.4.2.

// encryptable reports whether c's key usage lets a sender encrypt to it.
func encryptable(c *x509.Certificate) bool {
	switch c.PublicKey.(type) {
	case *rsa.PublicKey:
		return c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment != 0
	case *ecdsa.PublicKey:
		return c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyAgreement != 0
	}
	return false
}

// preferred returns the certificate of p7 that its signer's
// SMIMEEncryptionKeyPreference names, nil for none.
func preferred(p7 *pkcs7.PKCS7) *x509.Certificate {
	var raw asn1.RawValue
	if err := p7.UnmarshalSignedAttribute(testcorpus.OIDEncryptionKeyPreference, &raw); err != nil {
		return nil
	}
	for _, c := range p7.Certificates {
		switch raw.Tag {
		case 0:
			var ias struct {
				Issuer asn1.RawValue
				Serial *big.Int
			}
			if _, err := asn1.UnmarshalWithParams(raw.FullBytes, &ias, "tag:0"); err == nil &&
				bytes.Equal(ias.Issuer.FullBytes, c.RawIssuer) && ias.Serial.Cmp(c.SerialNumber) == 0 {
				return c
			}
		case 1:
			var rkid struct{ SKI []byte }
			if _, err := asn1.UnmarshalWithParams(raw.FullBytes, &rkid, "tag:1"); err == nil && bytes.Equal(rkid.SKI, c.SubjectKeyId) {
				return c
			}
		case 2:
			if bytes.Equal(raw.Bytes, c.SubjectKeyId) {
				return c
			}
		}
	}
	return nil
}

// encryptionChoice returns the certificate to encrypt to and the verdict:
// "" when one passes, else the reason.
func encryptionChoice(f *testcorpus.Fixture, p7 *pkcs7.PKCS7, signer *x509.Certificate, addr string, inter *x509.CertPool) (*x509.Certificate, string) {
	passes := func(c *x509.Certificate) string {
		_, err := c.Verify(x509.VerifyOptions{Roots: f.TrustPool(), Intermediates: inter, CurrentTime: testcorpus.At,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		if err != nil {
			if testcorpus.At.After(c.NotAfter) {
				return testcorpus.ReasonCertExpired
			}
			return testcorpus.ReasonCertUntrusted
		}
		for _, e := range c.EmailAddresses {
			if e == addr {
				return ""
			}
		}
		return testcorpus.ReasonFromCertMismatch
	}
	if p := preferred(p7); p != nil && encryptable(p) {
		if p == signer {
			return p, ""
		}
		return p, passes(p)
	}
	if encryptable(signer) {
		return signer, ""
	}
	for _, c := range p7.Certificates {
		if c != signer && !c.IsCA && encryptable(c) && passes(c) == "" {
			return c, ""
		}
	}
	return nil, testcorpus.ReasonCertNoEncryption
}
