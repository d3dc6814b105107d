package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The certificate chain is held to the keys a CMS signer is (sigalg.go):
// a weak key anywhere in it, or a signature x509 refuses, is
// cert_untrusted with a detail that names it, on the default path and on
// the reference path alike; a strong path is taken when there is one.
func TestChainWeakKeysAndAlgorithms(t *testing.T) {
	f := signingTimeFixture(t)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	weakRoot, err := testcorpus.SelfSigned(caTemplate("Weak Root"), f.WeakRSAKey)
	if err != nil {
		t.Fatal(err)
	}
	ca := func(name string, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, alg x509.SignatureAlgorithm) *x509.Certificate {
		tmpl := caTemplate(name)
		tmpl.SignatureAlgorithm = alg
		c, err := testcorpus.Issue(tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leaf := func(addr string, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
		c, err := testcorpus.Issue(&x509.Certificate{
			Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
			NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}, parent, f.LeafKey.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	weakInter := ca("Weak Intermediate", f.WeakRSAKey, f.Root, f.RootKey, 0)
	p224Inter := ca("P-224 Intermediate", p224, f.Root, f.RootKey, 0)
	sha1Inter := ca("SHA-1 Intermediate", f.IntermediateKey, f.Root, f.RootKey, x509.SHA1WithRSA)
	// One intermediate name and key, certified by a weak root and by the
	// test root: two paths.
	crossWeak := ca("Cross Intermediate", f.DecoyKey, weakRoot, f.WeakRSAKey, 0)
	crossStrong := ca("Cross Intermediate", f.DecoyKey, f.Root, f.RootKey, 0)

	both := f.TrustPool()
	both.AddCert(weakRoot)
	onlyWeak := x509.NewCertPool()
	onlyWeak.AddCert(weakRoot)
	for _, tt := range []struct {
		name   string
		roots  *x509.CertPool
		signer *x509.Certificate
		bag    []*x509.Certificate
		detail string // "": accepted
	}{
		{"control", f.TrustPool(), leaf("ok@example.com", f.Intermediate, f.IntermediateKey), []*x509.Certificate{f.Intermediate}, ""},
		{"RSA-1024 intermediate", f.TrustPool(), leaf("a@example.com", weakInter, f.WeakRSAKey), []*x509.Certificate{weakInter},
			`no acceptable chain: the intermediate's RSA key of 1024 bits in "Weak Intermediate" is weak`},
		{"P-224 intermediate", f.TrustPool(), leaf("b@example.com", p224Inter, p224), []*x509.Certificate{p224Inter},
			`the intermediate's ECDSA key on P-224 in "P-224 Intermediate" is not accepted`},
		{"RSA-1024 root", onlyWeak, leaf("c@example.com", crossWeak, f.DecoyKey), []*x509.Certificate{crossWeak},
			`the trusted root's RSA key of 1024 bits in "Weak Root" is weak`},
		{"intermediate signed with SHA-1", f.TrustPool(), leaf("d@example.com", sha1Inter, f.IntermediateKey), []*x509.Certificate{sha1Inter},
			`"SHA-1 Intermediate" is signed with SHA1-RSA, which is not accepted`},
		{"a weak path and a strong one", both, leaf("e@example.com", crossStrong, f.DecoyKey), []*x509.Certificate{crossWeak, crossStrong}, ""},
		{"a weak path and a strong one, weak first", both, leaf("e@example.com", crossStrong, f.DecoyKey), []*x509.Certificate{crossStrong, crossWeak}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, reference := range []bool{false, true} {
				p := &Pipeline{opts: Options{Roots: tt.roots, Reference: reference}}
				for pass := range 2 { // the second with the link learnt
					chain, err := p.verifyChain(tt.signer, tt.bag, testcorpus.At, &story{mu: &sync.Mutex{}})
					if tt.detail == "" {
						if err != nil {
							t.Fatalf("reference %v, pass %d: %v", reference, pass, err)
						}
						if err := checkChainKeys(chain); err != nil {
							t.Errorf("reference %v, pass %d: a weak chain taken: %v", reference, pass, err)
						}
						continue
					}
					if ReasonOf(err) != ReasonCertUntrusted || !strings.Contains(err.Error(), tt.detail) {
						t.Errorf("reference %v, pass %d: %v; want cert_untrusted with %q", reference, pass, err, tt.detail)
					}
				}
			}
		})
	}
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:   pkix.Name{CommonName: cn},
		NotBefore: testcorpus.NotBefore.AddDate(-1, 0, 0), NotAfter: testcorpus.NotAfter.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true,
	}
}

// A key of a kind x509 verifies but sigalg.go does not judge passes
// checkKeyStrength; the judged ones are refused at the edges.
func TestCheckKeyStrength(t *testing.T) {
	f := signingTimeFixture(t)
	k2047, err := rsa.GenerateKey(rand.Reader, 2047)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		pub crypto.PublicKey
		ok  bool
	}{
		{&f.LeafKey.PublicKey, true},
		{&k2047.PublicKey, false},
		{f.Ed25519Key.Public(), true},
		{&f.ECKey.PublicKey, true},
		{&f.P384Key.PublicKey, true},
		{&f.P521Key.PublicKey, true},
	} {
		c := &x509.Certificate{PublicKey: tt.pub, Subject: pkix.Name{CommonName: "k"}}
		if err := checkKeyStrength(c); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", KeyDescription(tt.pub), err, tt.ok)
		}
	}
}
