package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"crypto/x509/pkix"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// caseNamed returns the corpus case name.
func caseNamed(t *testing.T, f *testcorpus.Fixture, name string) testcorpus.Case {
	t.Helper()
	for _, c := range f.Cases() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s", name)
	return testcorpus.Case{}
}

// A dual-key sender: the encryption certificate its preference names is
// the one stored, its capabilities are in the result, and the signer's
// certificate is kept beside it.
func TestDualKeySender(t *testing.T) {
	f := testFixture(t)
	c := caseNamed(t, f, "ok-dual-key-preference")
	p, store := newPipeline(t, f, nil)
	res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
	if !res.Accepted() {
		t.Fatalf("%s: %s", res.Reason, res.Detail)
	}
	if !bytes.Equal(res.EncCert.Raw, c.EncryptionCert) || res.EncCert.Equal(res.Cert) || res.EncCertInfo == res.CertInfo ||
		res.EncCertInfo.SHA256 == res.CertInfo.SHA256 {
		t.Error("the encryption certificate is not the one the preference names")
	}
	want := []string{"AES-256-GCM", "AES-128-CBC", "RSAES-OAEP", "1.3.6.1.4.1.99999.1"}
	if !slices.Equal(res.Capabilities, want) {
		t.Errorf("capabilities %q, want %q", res.Capabilities, want)
	}
	if stored := store.certs[c.Address]; stored == nil || !stored.Equal(res.EncCert) {
		t.Error("the store was not given the encryption certificate")
	}
	// An accepted message whose signer encrypts too: the same certificate.
	res = p.Verify(context.Background(), &verify.Message{Raw: firstAccepted(t, f).Data})
	if res.EncCert != res.Cert || res.EncCertInfo != res.CertInfo || res.Capabilities != nil {
		t.Error("a signer that allows encryption is not the certificate to encrypt to")
	}
}

// A hostile dual-key message: a signing-only signer and 48 certificates
// for From that allow encryption but chain to no trusted root. At most
// maxEncryptionCandidates chains are verified, the verdict is the first
// candidate's, and the time is bounded.
func TestEncryptionCandidatesBounded(t *testing.T) {
	f := testFixture(t)
	addr := "many.candidates@example.com"
	signer, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SigningOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	bag := []*x509.Certificate{f.Intermediate}
	for i := range 48 {
		bag = append(bag, mustCreate(t, &x509.Certificate{
			SerialNumber: big.NewInt(int64(5000 + i)), Subject: pkix.Name{CommonName: addr},
			EmailAddresses: []string{addr}, NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
			KeyUsage: x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}, f.UntrustedRoot, f.DecoyKey.Public(), f.UntrustedRootKey))
	}
	raw := signedWith(t, f, addr, signer, f.LeafKey, bag)
	p, store := newPipeline(t, f, nil)
	res := checkBounded(t, p, raw, verify.ReasonCertUntrusted, 2*time.Second, 16<<20)
	if !strings.HasPrefix(res.Detail, "the encryption certificate: ") {
		t.Errorf("detail %q does not say it is the encryption certificate's", res.Detail)
	}
	if len(store.certs) != 0 {
		t.Error("something was stored")
	}
}
