package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certharvest/certharvest/internal/rsaverify"
)

// The signature algorithms of a SignerInfo, and the keys they may be made
// with.
//
// Accepted in a CMS signature, on the fast path and the pkcs7 path alike
// (both call derSignerInfo.check):
//
//   - RSA PKCS #1 v1.5 with SHA-256, SHA-384 or SHA-512 (RFC 3370 §3.2,
//     RFC 5754 §3.2);
//   - RSASSA-PSS (RFC 4056, RFC 4055 §3.1) with SHA-256, SHA-384 or
//     SHA-512, the digest algorithm's hash, MGF1 with the same hash, a salt
//     at least as long as the hash and the trailer field 1;
//   - ECDSA with SHA-256, SHA-384 or SHA-512 (RFC 5753 §2.1.1, RFC 5758
//     §3.2) on P-256, P-384 or P-521;
//   - Ed25519, pure (RFC 8419): the digest algorithm SHA-512, no
//     parameters.
//
// Refused as weak, with signature_invalid and a detail that says why: SHA-1
// (as digest, in the signature algorithm or in the PSS parameters), RSA
// keys under minRSABits, elliptic curves other than the three above, and a
// PSS salt shorter than the hash; refused as unsupported, an id-RSASSA-PSS
// signer key (checkSignerKey). The certificate chain is held to the same
// keys (checkChainKeys); crypto/x509 already refuses SHA-1 and MD5
// certificate signatures, and explainCertSignature says so.

// minRSABits is the smallest RSA key accepted, in a CMS signature and in a
// certificate chain: what the CA/Browser Forum's S/MIME Baseline
// Requirements (§6.1.5) and NIST SP 800-131A require. A 1,024-bit modulus
// is within reach of a well-funded attacker.
const minRSABits = 2048

// Object identifiers of RSASSA-PSS (RFC 4055 §3.1, §6) and Ed25519
// (RFC 8410 §3).
var (
	oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidEd25519   = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// cmsAlgorithm is how a SignerInfo's signature is verified.
type cmsAlgorithm struct {
	// digest hashes the content for the message digest attribute.
	digest crypto.Hash
	// x509 is the algorithm for x509.Certificate.CheckSignature (PKCS #1
	// v1.5, ECDSA, Ed25519); unused with pss.
	x509 x509.SignatureAlgorithm
	// pss is RSASSA-PSS, with a salt of saltLength bytes.
	pss        bool
	saltLength int
}

// cmsSignatureAlgorithm decides how to verify a SignerInfo from its
// digestAlgorithm, its signatureAlgorithm and the signatureAlgorithm's
// parameters (DER, nil when absent). An algorithm that is weak, unknown or
// inconsistent with the digest is refused with signature_invalid; PSS
// parameters that cannot be parsed with signature_malformed.
func cmsSignatureAlgorithm(digestAlg, sigAlg asn1.ObjectIdentifier, sigParams []byte) (cmsAlgorithm, error) {
	hash, ok := hashFor(digestAlg)
	if !ok {
		if digestAlg.Equal(oidSHA1) {
			return cmsAlgorithm{}, errSHA1("digest algorithm")
		}
		return cmsAlgorithm{}, fail(ReasonSignatureInvalid, "unsupported digest algorithm %s", digestAlg)
	}
	switch {
	case sigAlg.Equal(oidRSASSAPSS):
		salt, err := readPSSParams(sigParams, hash)
		if err != nil {
			return cmsAlgorithm{}, err
		}
		return cmsAlgorithm{digest: hash, pss: true, saltLength: salt}, nil
	case sigAlg.Equal(oidEd25519):
		// RFC 8419 §3: PureEdDSA; the message digest attribute is
		// SHA-512; the parameters are absent (RFC 8410 §3).
		if hash != crypto.SHA512 {
			return cmsAlgorithm{}, fail(ReasonSignatureInvalid, "Ed25519 with digest algorithm %s: RFC 8419 requires SHA-512", hash)
		}
		if len(sigParams) != 0 {
			return cmsAlgorithm{}, fail(ReasonSignatureInvalid, "Ed25519 with parameters: RFC 8410 requires them absent")
		}
		return cmsAlgorithm{digest: hash, x509: x509.PureEd25519}, nil
	case sigAlg.Equal(oidSHA1WithRSA), sigAlg.Equal(oidECDSAWithSHA1):
		return cmsAlgorithm{}, errSHA1("signature algorithm")
	}
	alg, ok := signatureAlgorithmFor(sigAlg, hash)
	if !ok {
		return cmsAlgorithm{}, fail(ReasonSignatureInvalid, "unsupported signature algorithm %s with digest algorithm %s", sigAlg, digestAlg)
	}
	return cmsAlgorithm{digest: hash, x509: alg}, nil
}

func errSHA1(where string) error {
	return fail(ReasonSignatureInvalid, "SHA-1 as %s is not accepted: SHA-1 collisions can be computed", where)
}

// verify checks signature by signer over signed. keys verifies RSA PKCS #1
// v1.5 signatures with the moduli it keeps (nil: crypto/rsa); its
// CheckSignature is x509's, with x509's checks and errors.
func (a cmsAlgorithm) verify(keys *rsaverify.Verifier, signer *x509.Certificate, signed, signature []byte) error {
	if !a.pss {
		return keys.CheckSignature(signer, a.x509, signed, signature)
	}
	// x509's RSASSA-PSS algorithms take a salt as long as the hash only
	// (RFC 8017 §9.1's usual choice); a CMS states its own (OpenSSL uses
	// the longest the key allows).
	pub, ok := signer.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("RSASSA-PSS signature with a %s key", KeyDescription(signer.PublicKey))
	}
	h := a.digest.New()
	h.Write(signed)
	return rsa.VerifyPSS(pub, a.digest, h.Sum(nil), signature, &rsa.PSSOptions{SaltLength: a.saltLength, Hash: a.digest})
}

func hashFor(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// signatureAlgorithmFor maps a SignerInfo's signatureAlgorithm and digest to
// the x509 algorithm, for RSA PKCS #1 v1.5 (RFC 3370 §3.2, RFC 5754 §3.2)
// and ECDSA (RFC 5753 §2.1.1, RFC 5758 §3.2), the signature algorithm's hash
// being the digest's.
func signatureAlgorithmFor(oid asn1.ObjectIdentifier, hash crypto.Hash) (x509.SignatureAlgorithm, bool) {
	switch {
	case oid.Equal(oidRSAEncryption):
		return rsaWith(hash), true
	case oid.Equal(oidSHA256WithRSA) && hash == crypto.SHA256,
		oid.Equal(oidSHA384WithRSA) && hash == crypto.SHA384,
		oid.Equal(oidSHA512WithRSA) && hash == crypto.SHA512:
		return rsaWith(hash), true
	case oid.Equal(oidECDSAWithSHA256) && hash == crypto.SHA256:
		return x509.ECDSAWithSHA256, true
	case oid.Equal(oidECDSAWithSHA384) && hash == crypto.SHA384:
		return x509.ECDSAWithSHA384, true
	case oid.Equal(oidECDSAWithSHA512) && hash == crypto.SHA512:
		return x509.ECDSAWithSHA512, true
	}
	return 0, false
}

// rsaWith is RSA PKCS #1 v1.5 with one of hashFor's hashes.
func rsaWith(hash crypto.Hash) x509.SignatureAlgorithm {
	switch hash {
	case crypto.SHA384:
		return x509.SHA384WithRSA
	case crypto.SHA512:
		return x509.SHA512WithRSA
	}
	return x509.SHA256WithRSA
}

// readPSSParams reads the RSASSA-PSS-params of a SignerInfo's
// signatureAlgorithm and returns the salt length (RFC 4055 §3.1):
//
//	RSASSA-PSS-params ::= SEQUENCE {
//	    hashAlgorithm    [0] HashAlgorithm DEFAULT sha1,
//	    maskGenAlgorithm [1] MaskGenAlgorithm DEFAULT mgf1SHA1,
//	    saltLength       [2] INTEGER DEFAULT 20,
//	    trailerField     [3] INTEGER DEFAULT 1 }
//
// The parameters must be present in a SignerInfo (RFC 4056 §2), and the
// hash must be the one of the digest algorithm (RFC 4056 §3).
func readPSSParams(params []byte, digest crypto.Hash) (int, error) {
	if len(params) == 0 {
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS without parameters: RFC 4056 requires them in a SignerInfo")
	}
	malformed := func(what string) error {
		return fail(ReasonSignatureMalformed, "RSASSA-PSS parameters: %s", what)
	}
	s := cryptobyte.String(params)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return 0, malformed("not a SEQUENCE")
	}
	hashOID, mgfHashOID := oidSHA1, oidSHA1 // the defaults
	salt, trailer := int64(20), int64(1)
	var field cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return 0, malformed("bad hashAlgorithm")
	}
	if present {
		var err error
		if hashOID, err = readHashAlgorithm(&field); err != nil || !field.Empty() {
			return 0, malformed("bad hashAlgorithm")
		}
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return 0, malformed("bad maskGenAlgorithm")
	}
	if present {
		var mgf cryptobyte.String
		var mgfOID asn1.ObjectIdentifier
		if !field.ReadASN1(&mgf, cbasn1.SEQUENCE) || !field.Empty() || !mgf.ReadASN1ObjectIdentifier(&mgfOID) {
			return 0, malformed("bad maskGenAlgorithm")
		}
		if !mgfOID.Equal(oidMGF1) {
			return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS with mask generation function %s: only MGF1 is supported", mgfOID)
		}
		var err error
		if mgfHashOID, err = readHashAlgorithm(&mgf); err != nil || !mgf.Empty() {
			return 0, malformed("bad MGF1 hash algorithm")
		}
	}
	if !seq.ReadOptionalASN1Integer(&salt, cbasn1.Tag(2).Constructed().ContextSpecific(), int64(20)) || salt < 0 {
		return 0, malformed("bad saltLength")
	}
	if !seq.ReadOptionalASN1Integer(&trailer, cbasn1.Tag(3).Constructed().ContextSpecific(), int64(1)) || !seq.Empty() {
		return 0, malformed("bad trailerField")
	}
	if trailer != 1 {
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS with trailer field %d: RFC 4055 defines only 1", trailer)
	}
	hash, ok := hashFor(hashOID)
	switch {
	case hashOID.Equal(oidSHA1):
		return 0, errSHA1("the RSASSA-PSS hash")
	case !ok:
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS with unsupported hash algorithm %s", hashOID)
	case hash != digest:
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS hash %s differs from the digest algorithm %s (RFC 4056 §3)", hash, digest)
	case !mgfHashOID.Equal(hashOID):
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS with MGF1 hash %s differs from the hash %s", mgfHashOID, hashOID)
	case salt < int64(hash.Size()):
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS salt of %d bytes is weak: at least the hash length (%d bytes) is required", salt, hash.Size())
	case salt > 1<<16:
		return 0, fail(ReasonSignatureInvalid, "RSASSA-PSS salt of %d bytes is longer than any key allows", salt)
	}
	return int(salt), nil
}

// readHashAlgorithm reads an AlgorithmIdentifier of a hash, whose
// parameters are absent or NULL (RFC 4055 §2.1).
func readHashAlgorithm(s *cryptobyte.String) (asn1.ObjectIdentifier, error) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, errors.New("not an AlgorithmIdentifier")
	}
	if alg.PeekASN1Tag(cbasn1.NULL) {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() {
			return nil, errors.New("bad NULL parameters")
		}
	}
	if !alg.Empty() {
		return nil, errors.New("parameters of a hash algorithm")
	}
	return oid, nil
}

// checkSignerKey refuses a CMS signer's key that is too costly
// (checkKeySize), too weak (checkKeyStrength) or of an algorithm x509 does
// not parse: an id-RSASSA-PSS subject key (RFC 4055 §1.2), an RSA key
// restricted to PSS, is one; the S/MIME Baseline Requirements (§7.1.3.1)
// allow rsaEncryption keys only.
func checkSignerKey(c *x509.Certificate) error {
	if c.PublicKey == nil {
		oid := spkiAlgorithm(c)
		if oid.Equal(oidRSASSAPSS) {
			return fmt.Errorf("the key of %q is an RSASSA-PSS key (id-RSASSA-PSS), which is not supported: S/MIME certificates carry rsaEncryption keys", certName(c))
		}
		return fmt.Errorf("the key of %q is of an unsupported algorithm %s", certName(c), oid)
	}
	if err := checkKeySize(c); err != nil {
		return err
	}
	return checkKeyStrength(c)
}

// spkiAlgorithm returns the algorithm of a certificate's subject public
// key (RFC 5280 §4.1.2.7), nil if it cannot be read.
func spkiAlgorithm(c *x509.Certificate) asn1.ObjectIdentifier {
	s := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil
	}
	return oid
}

// checkKeyStrength refuses an RSA key under minRSABits and an elliptic
// curve other than P-256, P-384 and P-521. Other kinds of keys are left to
// the signature checks, which know only RSA, ECDSA and Ed25519.
func checkKeyStrength(c *x509.Certificate) error {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return fmt.Errorf("RSA key of %d bits in %q is weak: at least %d bits are required", n, certName(c), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA key on %s in %q is not accepted: only P-256, P-384 and P-521 are", k.Curve.Params().Name, certName(c))
		}
	}
	return nil
}

// checkChainKeys refuses a chain with a weak key (checkKeyStrength), with
// cert_untrusted: the chain does not hold.
func checkChainKeys(chain []*x509.Certificate) error {
	for i, c := range chain {
		if err := checkKeyStrength(c); err != nil {
			role := "intermediate"
			switch {
			case i == 0:
				role = "signer"
			case i == len(chain)-1:
				role = "trusted root"
			}
			return fail(ReasonCertUntrusted, "no acceptable chain: the %s's %w", role, err)
		}
	}
	return nil
}

// explainCertSignature says why no issuer can have verified c's signature
// when crypto/x509 refuses its algorithm (SHA-1 and MD5 are insecure; an
// unknown algorithm includes RSASSA-PSS with other parameters than x509
// takes), nil when the algorithm is one x509 verifies.
func explainCertSignature(c *x509.Certificate) error {
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1:
		return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is signed with %s, which is not accepted: SHA-1 collisions can be computed", certName(c), c.SignatureAlgorithm)
	case x509.MD5WithRSA, x509.MD2WithRSA:
		return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is signed with %s, which is not accepted", certName(c), c.SignatureAlgorithm)
	case x509.UnknownSignatureAlgorithm:
		oid := certSignatureOID(c)
		if oid.Equal(oidRSASSAPSS) {
			return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is signed with RSASSA-PSS parameters that are not accepted: a certificate's must be SHA-256, SHA-384 or SHA-512, MGF1 with the same hash, and a salt as long as the hash", certName(c))
		}
		return fail(ReasonCertUntrusted, "no chain to a trusted root: %q is signed with an unsupported algorithm %s", certName(c), oid)
	}
	return nil
}

// certSignatureOID returns the signatureAlgorithm of a certificate (RFC
// 5280 §4.1.1.2), nil if it cannot be read.
func certSignatureOID(c *x509.Certificate) asn1.ObjectIdentifier {
	s := cryptobyte.String(c.Raw)
	var cert, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.SkipASN1(cbasn1.SEQUENCE) ||
		!cert.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil
	}
	return oid
}
