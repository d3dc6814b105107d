package rsaverify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"
)

// TestCheckSignatureAsX509 compares Verifier.CheckSignature with
// x509.Certificate.CheckSignature for every pair of algorithm and key,
// with signatures valid for each hash and a mutated one: the same verdict
// and error text, including x509's refusals (MD5, an algorithm for another
// kind of key, an unknown algorithm) and its SHA-1 and PSS answers.
func TestCheckSignatureAsX509(t *testing.T) {
	rsaKey := testKeys()[0]
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signed := []byte("the signed attributes")
	var sigs [][]byte
	for _, hash := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1, crypto.MD5} {
		em, _ := encodePKCS1v15(rsaKey.pub.Size(), hashPrefixes[hash], digest(hash, signed))
		sigs = append(sigs, rsaKey.sign(em))
	}
	bad := append([]byte(nil), sigs[0]...)
	bad[len(bad)/2] ^= 0x40
	sigs = append(sigs, bad, nil)

	algorithms := []x509.SignatureAlgorithm{
		x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA1WithRSA, x509.MD5WithRSA, x509.MD2WithRSA,
		x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.PureEd25519,
		x509.DSAWithSHA256, x509.UnknownSignatureAlgorithm,
	}
	v := New(Options{})
	valid := 0
	for _, pub := range []crypto.PublicKey{rsaKey.pub, &ecKey.PublicKey, edPub, nil} {
		c := &x509.Certificate{PublicKey: pub}
		for _, algo := range algorithms {
			for i, sig := range sigs {
				name := fmt.Sprintf("%T %v signature %d", pub, algo, i)
				want := c.CheckSignature(algo, signed, sig)
				got := v.CheckSignature(c, algo, signed, sig)
				sameAnswer(t, name, want, got)
				sameAnswer(t, name+", nil Verifier", want, (*Verifier)(nil).CheckSignature(c, algo, signed, sig))
				if want == nil {
					valid++
				}
			}
		}
	}
	// SHA-256, -384 and -512 by the fast path, SHA-1 by x509.
	if valid != 4 {
		t.Fatalf("%d valid signatures, want 4", valid)
	}
	if v.Len() != 1 {
		t.Fatalf("%d keys kept, want 1", v.Len())
	}
}
