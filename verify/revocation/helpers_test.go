package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/ocsptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// at is the verification time of these tests.
var at = testcorpus.At

// pki is a test PKI: a root, an intermediate and leaves, ECDSA P-256,
// whose certificates name a responder and CRLs of servers of the test.
type pki struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	srv               *ocsptest.Server
	clock             atomic.Pointer[time.Time]
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newPKI makes a PKI whose responder and CRLs are one ocsptest.Server,
// answering as if the time were the pki's clock (at, until set).
func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{rootKey: newKey(t), interKey: newKey(t)}
	p.clock.Store(&at)
	var err error
	p.root, err = testcorpus.SelfSigned(&x509.Certificate{
		Subject: pkix.Name{CommonName: "revocation test root"}, NotBefore: at.AddDate(-5, 0, 0), NotAfter: at.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	// The server must know the CAs before their URLs are in certificates:
	// the intermediate is made with the server's URL, then given to it.
	p.srv = ocsptest.Start(p.now, ocsptest.CA{Name: "root", Cert: p.root, Key: p.rootKey})
	t.Cleanup(p.srv.Close)
	p.inter, err = testcorpus.Issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "revocation test intermediate"}, NotBefore: at.AddDate(-2, 0, 0), NotAfter: at.AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		OCSPServer: []string{p.srv.OCSPURL()}, CRLDistributionPoints: []string{p.srv.CRLURL("root")},
	}, p.root, p.interKey.Public(), p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.srv.AddCA(ocsptest.CA{Name: "inter", Cert: p.inter, Key: p.interKey})
	return p
}

func (p *pki) now() time.Time { return *p.clock.Load() }

// leaf issues an end-entity certificate from the intermediate, naming
// the responder and CRL URLs given (nil: the pki server's).
func (p *pki) leaf(t testing.TB, ocspURLs, crlURLs []string) *x509.Certificate {
	t.Helper()
	if ocspURLs == nil {
		ocspURLs = []string{p.srv.OCSPURL()}
	}
	if crlURLs == nil {
		crlURLs = []string{p.srv.CRLURL("inter")}
	}
	c, err := testcorpus.Issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "leaf"}, NotBefore: at.AddDate(0, -1, 0), NotAfter: at.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{"leaf@example.com"}, OCSPServer: ocspURLs, CRLDistributionPoints: crlURLs,
	}, p.inter, newKey(t).Public(), p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chain is leaf, intermediate, root.
func (p *pki) chain(leaf *x509.Certificate) []*x509.Certificate {
	return []*x509.Certificate{leaf, p.inter, p.root}
}

// newChecker returns a Checker with short timeouts, its cache in dir
// ("": memory only).
func newChecker(t testing.TB, dir string, opts CheckerOptions) *Checker {
	t.Helper()
	if opts.FetchTimeout == 0 {
		opts.FetchTimeout = 2 * time.Second
	}
	c, err := NewChecker(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func checkChain(c *Checker, chain []*x509.Certificate, when time.Time) Result {
	return c.CheckChain(context.Background(), chain, when)
}
