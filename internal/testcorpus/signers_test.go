package testcorpus_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The reference checks of the signers pkcs7 does not verify (RSASSA-PSS,
// RFC 4056; Ed25519, RFC 8419), and of the weak signatures certharvest
// refuses, written apart from the verifier's (encoding/asn1 here,
// cryptobyte there).

var (
	oidSHA1      = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidEd25519   = asn1.ObjectIdentifier{1, 3, 101, 112}
	hashes       = map[string]crypto.Hash{
		"2.16.840.1.101.3.4.2.1": crypto.SHA256,
		"2.16.840.1.101.3.4.2.2": crypto.SHA384,
		"2.16.840.1.101.3.4.2.3": crypto.SHA512,
	}
)

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1).
type pssParams struct {
	Hash    pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF     pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	Salt    int                      `asn1:"optional,explicit,tag:2,default:20"`
	Trailer int                      `asn1:"optional,explicit,tag:3,default:1"`
}

// otherAlgorithm reports whether p7's (only) signer uses an algorithm
// pkcs7 does not know.
func otherAlgorithm(p7 *pkcs7.PKCS7) bool {
	if len(p7.Signers) != 1 {
		return false
	}
	alg := p7.Signers[0].DigestEncryptionAlgorithm.Algorithm
	return alg.Equal(oidRSASSAPSS) || alg.Equal(oidEd25519)
}

// weakCMS refuses what certharvest refuses as weak: SHA-1, an RSA key under
// 2,048 bits, a PSS salt shorter than the hash.
func weakCMS(p7 *pkcs7.PKCS7) error {
	for _, si := range p7.Signers {
		if si.DigestAlgorithm.Algorithm.Equal(oidSHA1) {
			return errors.New("weak: SHA-1")
		}
		for _, c := range p7.Certificates {
			if k, ok := c.PublicKey.(*rsa.PublicKey); ok && c.SerialNumber.Cmp(si.IssuerAndSerialNumber.SerialNumber) == 0 && k.N.BitLen() < 2048 {
				return fmt.Errorf("weak: RSA-%d", k.N.BitLen())
			}
		}
		if si.DigestEncryptionAlgorithm.Algorithm.Equal(oidRSASSAPSS) {
			var params pssParams
			if _, err := asn1.Unmarshal(si.DigestEncryptionAlgorithm.Parameters.FullBytes, &params); err != nil {
				return err
			}
			if h := hashes[params.Hash.Algorithm.String()]; h == 0 || params.Salt < h.Size() {
				return fmt.Errorf("weak: PSS with hash %s, salt %d", params.Hash.Algorithm, params.Salt)
			}
		}
	}
	return nil
}

// signedAttributes returns the DER SET OF the only signer's signed
// attributes, what its signature covers (RFC 5652 §5.4).
func signedAttributes(p7 *pkcs7.PKCS7) ([]byte, error) {
	var encs [][]byte
	for _, a := range p7.Signers[0].AuthenticatedAttributes {
		enc, err := asn1.Marshal(a)
		if err != nil {
			return nil, err
		}
		encs = append(encs, enc)
	}
	slices.SortFunc(encs, bytes.Compare)
	return asn1.Marshal(asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: bytes.Join(encs, nil)})
}

// verifyOtherAlgorithm checks an RSASSA-PSS or Ed25519 signer: the message
// digest over the content, then the signature over the signed attributes.
func verifyOtherAlgorithm(p7 *pkcs7.PKCS7) error {
	si := p7.Signers[0]
	signer := p7.GetOnlySigner()
	if signer == nil {
		return errors.New("no signer certificate")
	}
	hash := hashes[si.DigestAlgorithm.Algorithm.String()]
	if hash == 0 {
		return fmt.Errorf("digest algorithm %s", si.DigestAlgorithm.Algorithm)
	}
	var digest []byte
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeMessageDigest, &digest); err != nil {
		return err
	}
	h := hash.New()
	h.Write(p7.Content)
	if subtle.ConstantTimeCompare(h.Sum(nil), digest) != 1 {
		return errors.New("message digest mismatch")
	}
	attrs, err := signedAttributes(p7)
	if err != nil {
		return err
	}
	if si.DigestEncryptionAlgorithm.Algorithm.Equal(oidEd25519) {
		pub, ok := signer.PublicKey.(ed25519.PublicKey)
		if !ok || hash != crypto.SHA512 || !ed25519.Verify(pub, attrs, si.EncryptedDigest) {
			return errors.New("Ed25519 signature does not verify")
		}
		return nil
	}
	var params pssParams
	if _, err := asn1.Unmarshal(si.DigestEncryptionAlgorithm.Parameters.FullBytes, &params); err != nil {
		return err
	}
	if hashes[params.Hash.Algorithm.String()] != hash || params.Trailer != 1 {
		return errors.New("PSS parameters")
	}
	pub, ok := signer.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("PSS signer without an RSA key")
	}
	h = hash.New()
	h.Write(attrs)
	return rsa.VerifyPSS(pub, hash, h.Sum(nil), si.EncryptedDigest, &rsa.PSSOptions{Hash: hash, SaltLength: params.Salt})
}

// opensslChain verifies the chain of a CMS's signer with openssl verify
// (for emailProtection, at At).
func opensslChain(t *testing.T, openssl, dir, trust, name string, der []byte) ([]byte, error) {
	t.Helper()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	signer := p7.GetOnlySigner()
	var bag []byte
	for _, c := range p7.Certificates {
		if c != signer {
			bag = append(bag, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	leaf, untrusted := filepath.Join(dir, name+".signer.pem"), filepath.Join(dir, name+".bag.pem")
	if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(untrusted, bag, 0o644); err != nil {
		t.Fatal(err)
	}
	return exec.Command(openssl, "verify", "-CAfile", trust, "-untrusted", untrusted, "-purpose", "smimesign",
		"-attime", fmt.Sprint(testcorpus.AtUnix), leaf).CombinedOutput()
}

// Every signer kind has an accepted case in every S/MIME form and a
// tampered one, whose certificates and CMS use the kind's algorithms.
func TestSignerKinds(t *testing.T) {
	f := mustFixture(t)
	byName := map[string]testcorpus.Case{}
	for _, c := range f.Cases() {
		byName[c.Name] = c
	}
	forms := []string{"detached", "opaque", "ber-detached", "ber-opaque", "x-pkcs7-signature", "x-pkcs7-mime"}
	for _, k := range f.SignerKinds() {
		for _, form := range forms {
			c, ok := byName["ok-"+k.Name+"-"+form]
			if !ok || c.Reason != testcorpus.ReasonOK {
				t.Errorf("no accepted %s case for %s", form, k.Name)
				continue
			}
			v := check(t, f, c.Data)
			p7, err := pkcs7.Parse(v.der)
			if err != nil {
				t.Fatal(err)
			}
			si, signer := p7.Signers[0], p7.GetOnlySigner()
			wantCert := k.Leaf.SignatureAlgorithm
			if wantCert == 0 {
				wantCert = x509.PureEd25519
			}
			if signer.SignatureAlgorithm != wantCert {
				t.Errorf("%s: certificate signed with %s, want %s", c.Name, signer.SignatureAlgorithm, wantCert)
			}
			if h := hashes[si.DigestAlgorithm.Algorithm.String()]; h != cmp(k.Alg.Hash, crypto.SHA256) {
				t.Errorf("%s: digest %s, want %s", c.Name, h, k.Alg.Hash)
			}
			if got := otherAlgorithm(p7); got != (k.Alg.PSS || strings.Contains(k.Name, "ed25519")) {
				t.Errorf("%s: signature algorithm %s", c.Name, si.DigestEncryptionAlgorithm.Algorithm)
			}
		}
		if c, ok := byName["signature-invalid-"+k.Name]; !ok || c.Reason != testcorpus.ReasonSignatureInvalid {
			t.Errorf("no tampered case for %s", k.Name)
		}
	}
	// The salt OpenSSL and the rsa-pss-sha512 kind use: the longest.
	for _, c := range f.Cases() {
		if c.Name != "ok-rsa-pss-sha512-detached" {
			continue
		}
		p7, _ := pkcs7.Parse(check(t, f, c.Data).der)
		var params pssParams
		if _, err := asn1.Unmarshal(p7.Signers[0].DigestEncryptionAlgorithm.Parameters.FullBytes, &params); err != nil || params.Salt != 2048/8-64-2 {
			t.Errorf("salt %d (%v), want %d", params.Salt, err, 2048/8-64-2)
		}
	}
}

func cmp[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}
