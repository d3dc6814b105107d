package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
)

// CheckSignature is c.CheckSignature(algo, signed, signature), the
// signature by c's key of signed with algorithm algo, with the same
// verdicts and errors. The RSA PKCS #1 v1.5 algorithms with SHA-256,
// SHA-384 and SHA-512 by an RSA key are verified here, as crypto/x509's
// checkSignature does (the hash of signed, then rsa.VerifyPKCS1v15), with
// the modulus kept; every other algorithm or key (SHA-1, MD5, RSASSA-PSS,
// ECDSA, Ed25519, a key of another type than algo's) is crypto/x509's,
// with its own checks and refusals.
func (v *Verifier) CheckSignature(c *x509.Certificate, algo x509.SignatureAlgorithm, signed, signature []byte) error {
	var hash crypto.Hash
	switch algo {
	case x509.SHA256WithRSA:
		hash = crypto.SHA256
	case x509.SHA384WithRSA:
		hash = crypto.SHA384
	case x509.SHA512WithRSA:
		hash = crypto.SHA512
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if v == nil || hash == 0 || !ok || !hash.Available() {
		return c.CheckSignature(algo, signed, signature)
	}
	h := hash.New()
	h.Write(signed)
	return v.VerifyPKCS1v15(pub, hash, h.Sum(nil), signature)
}
