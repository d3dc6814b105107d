package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// An RSA key over 8,192 bits is refused before any verification with it:
// as the signer (signature_invalid), and as a certificate in the bag (left
// out of the chain).
func TestKeySizeCap(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	// A 16,384-bit modulus; certifying a public key needs no private key.
	n := new(big.Int).Lsh(big.NewInt(1), 16383)
	n.SetBit(n, 0, 1)
	cert := func(pub any) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "k"},
			NotBefore: ca.NotBefore, NotAfter: ca.NotAfter}
		c, err := testcorpus.Issue(tmpl, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	huge := cert(&rsa.PublicKey{N: n, E: 65537})
	if err := checkKeySize(huge); err == nil || !strings.Contains(err.Error(), "16384 bits") {
		t.Errorf("16,384-bit key: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := checkKeySize(cert(&small.PublicKey)); err != nil {
		t.Errorf("2,048-bit key refused: %v", err)
	}

	// In the bag: ignored, with a warning in the story.
	p := &Pipeline{opts: Options{Roots: x509.NewCertPool()}}
	leaf := cert(&caKey.PublicKey)
	log := &story{mu: &sync.Mutex{}}
	if _, err := p.verifyChain(leaf, []*x509.Certificate{leaf, huge}, time.Now(), log); ReasonOf(err) != ReasonCertUntrusted {
		t.Errorf("chain with a huge certificate in the bag: %v", err)
	}
}
