package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/ocsptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
	"github.com/certharvest/certharvest/verify/revocation"
)

// revocationSetup is the fixture's root and a revocation intermediate
// under it, both answered for by a local responder and CRL server.
type revocationSetup struct {
	f     *testcorpus.Fixture
	srv   *ocsptest.Server
	inter *x509.Certificate
	key   crypto.Signer
}

func newRevocationSetup(t *testing.T) *revocationSetup {
	t.Helper()
	f := testFixture(t)
	now := func() time.Time { return testcorpus.At }
	srv := ocsptest.Start(now, ocsptest.CA{Name: "root", Cert: f.Root, Key: f.RootKey})
	t.Cleanup(srv.Close)
	inter, key, err := f.RevocationIntermediate("revocation intermediate", srv.OCSPURL(), srv.CRLURL("root"))
	if err != nil {
		t.Fatal(err)
	}
	srv.AddCA(ocsptest.CA{Name: "inter", Cert: inter, Key: key})
	return &revocationSetup{f: f, srv: srv, inter: inter, key: key}
}

// message mints a message from addr whose certificate names the server.
func (r *revocationSetup) message(t *testing.T, addr string) ([]byte, *x509.Certificate) {
	t.Helper()
	msg, err := r.f.SignedMessage(addr, testcorpus.Revocable(r.inter, r.key, r.srv.OCSPURL(), r.srv.CRLURL("inter")))
	if err != nil {
		t.Fatal(err)
	}
	return msg, signerOf(t, msg)
}

// signerOf finds the signer's certificate in a minted message: the
// pipeline's, verified without revocation.
func signerOf(t *testing.T, msg []byte) *x509.Certificate {
	t.Helper()
	p, _ := newPipeline(t, testFixture(t), func(o *verify.Options) { o.Store = nil })
	res := p.Verify(context.Background(), &verify.Message{Raw: msg})
	if !res.Accepted() {
		t.Fatalf("%s: %s", res.Reason, res.Detail)
	}
	return res.Cert
}

func (r *revocationSetup) pipeline(t *testing.T, mode verify.RevocationMode) (*verify.Pipeline, *memStore, *bytes.Buffer) {
	t.Helper()
	checker, err := revocation.NewChecker("", revocation.CheckerOptions{FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p, store := newPipeline(t, r.f, func(o *verify.Options) {
		o.Revocation, o.RevocationMode, o.Logger = checker, mode, slogText(&log)
	})
	return p, store, &log
}

// --revocation off asks nobody; soft and hard accept a good certificate
// and say so; both refuse a revoked one (cert_revoked), and store nothing.
func TestPipelineRevocation(t *testing.T) {
	r := newRevocationSetup(t)
	good, _ := r.message(t, "good@example.com")
	revoked, cert := r.message(t, "revoked@example.com")
	r.srv.Revoke(cert.SerialNumber, testcorpus.At.Add(-time.Hour), 1)

	p, _, _ := r.pipeline(t, verify.RevocationOff)
	for _, msg := range [][]byte{good, revoked} {
		res := p.Verify(context.Background(), &verify.Message{Raw: msg})
		if !res.Accepted() || res.Revocation != nil {
			t.Errorf("off: %s %s, revocation %+v", res.Reason, res.Detail, res.Revocation)
		}
	}
	if r.srv.OCSPHits()+r.srv.CRLHits() != 0 {
		t.Error("off: the responder was asked")
	}

	for _, mode := range []verify.RevocationMode{verify.RevocationSoft, verify.RevocationHard} {
		p, store, log := r.pipeline(t, mode)
		res := p.Verify(context.Background(), &verify.Message{Raw: good})
		if !res.Accepted() || res.Action != verify.ActionStored || res.Revocation == nil || res.Revocation.Status != "good" ||
			res.Revocation.Source != "ocsp" || res.Revocation.NextUpdate == nil || len(res.Warnings) != 0 {
			t.Errorf("%s, good: %s %s %+v %v", mode, res.Reason, res.Detail, res.Revocation, res.Warnings)
		}
		if !strings.Contains(log.String(), "revocation: not revoked (ocsp ") {
			t.Errorf("%s: the story does not tell the revocation check:\n%s", mode, log)
		}
		res = p.Verify(context.Background(), &verify.Message{Raw: revoked})
		if res.Reason != verify.ReasonCertRevoked || res.Revocation == nil || res.Revocation.Reason != "keyCompromise" ||
			!strings.Contains(res.Detail, "the certificate was revoked at") {
			t.Errorf("%s, revoked: %s %s %+v", mode, res.Reason, res.Detail, res.Revocation)
		}
		if _, ok := store.certs["revoked@example.com"]; ok {
			t.Errorf("%s: a revoked certificate was stored", mode)
		}
	}
}

// With the responder and CRLs gone, soft accepts with a warning, and hard
// refuses with the temporary revocation_unknown, storing nothing.
func TestPipelineRevocationUnknown(t *testing.T) {
	r := newRevocationSetup(t)
	msg, _ := r.message(t, "unknown@example.com")
	r.srv.Close()

	p, store, log := r.pipeline(t, verify.RevocationSoft)
	res := p.Verify(context.Background(), &verify.Message{Raw: msg})
	if !res.Accepted() || res.Revocation == nil || res.Revocation.Status != "unknown" || len(res.Warnings) != 1 ||
		!strings.HasPrefix(res.Warnings[0], "revocation status unknown: OCSP http://") {
		t.Errorf("soft: %s %s %+v %q", res.Reason, res.Detail, res.Revocation, res.Warnings)
	}
	if store.certs["unknown@example.com"] == nil {
		t.Error("soft: not stored")
	}
	if !strings.Contains(log.String(), "unknown; accepted all the same (--revocation soft)") {
		t.Errorf("soft: the story does not warn:\n%s", log)
	}

	p, store, _ = r.pipeline(t, verify.RevocationHard)
	res = p.Verify(context.Background(), &verify.Message{Raw: msg})
	if res.Reason != verify.ReasonRevocationUnknown || !res.Reason.Temporary() || res.Revocation.Status != "unknown" {
		t.Errorf("hard: %s %s %+v", res.Reason, res.Detail, res.Revocation)
	}
	if len(store.certs) != 0 {
		t.Error("hard: a certificate of unknown status was stored")
	}
}

// A chain whose intermediate is revoked is refused, the detail naming the
// intermediate.
func TestPipelineRevokedIntermediate(t *testing.T) {
	r := newRevocationSetup(t)
	msg, _ := r.message(t, "inter@example.com")
	r.srv.Revoke(r.inter.SerialNumber, testcorpus.At.Add(-time.Hour), 2)
	p, _, _ := r.pipeline(t, verify.RevocationSoft)
	res := p.Verify(context.Background(), &verify.Message{Raw: msg})
	if res.Reason != verify.ReasonCertRevoked || !strings.Contains(res.Detail, `CA certificate "revocation intermediate" was revoked`) ||
		!strings.Contains(res.Revocation.Cert, "revocation intermediate") {
		t.Errorf("%s %s %+v", res.Reason, res.Detail, res.Revocation)
	}
}

// A dual-key sender's encryption certificate passes revocation as the
// signer's does: good, both are checked and the message accepted; revoked,
// cert_revoked, said to be the encryption certificate's, nothing stored.
func TestPipelineRevokedEncryptionCert(t *testing.T) {
	r := newRevocationSetup(t)
	addr := "dual.revoked@example.com"
	leaf := func(spec testcorpus.LeafSpec) *x509.Certificate {
		t.Helper()
		spec.Address, spec.SubjectEmail = addr, true
		spec.Issuer, spec.IssuerKey = r.inter, r.key
		spec.OCSPServer, spec.CRLDistributionPoints = []string{r.srv.OCSPURL()}, []string{r.srv.CRLURL("inter")}
		c, err := r.f.IssueLeaf(spec)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	signer := leaf(testcorpus.LeafSpec{SigningOnly: true})
	enc := leaf(testcorpus.LeafSpec{Key: r.f.DecoyKey})
	msg := signedWith(t, r.f, addr, signer, r.f.LeafKey, []*x509.Certificate{r.inter, enc})

	p, store, _ := r.pipeline(t, verify.RevocationSoft)
	res := p.Verify(context.Background(), &verify.Message{Raw: msg})
	if !res.Accepted() || !res.EncCert.Equal(enc) || res.Revocation == nil || res.Revocation.Status != "good" ||
		res.EncRevocation == nil || res.EncRevocation.Status != "good" {
		t.Fatalf("good: %s %s %+v %+v", res.Reason, res.Detail, res.Revocation, res.EncRevocation)
	}
	if !store.certs[addr].Equal(enc) {
		t.Fatal("good: the encryption certificate was not stored")
	}

	r.srv.Revoke(enc.SerialNumber, testcorpus.At.Add(-time.Hour), 1)
	for _, mode := range []verify.RevocationMode{verify.RevocationSoft, verify.RevocationHard} {
		p, store, _ := r.pipeline(t, mode)
		res := p.Verify(context.Background(), &verify.Message{Raw: msg})
		if res.Reason != verify.ReasonCertRevoked || !strings.HasPrefix(res.Detail, "the encryption certificate: the certificate was revoked at") ||
			res.Revocation == nil || res.Revocation.Status != "good" || res.EncRevocation == nil || res.EncRevocation.Reason != "keyCompromise" {
			t.Errorf("%s, revoked: %s %s %+v %+v", mode, res.Reason, res.Detail, res.Revocation, res.EncRevocation)
		}
		if len(store.certs) != 0 {
			t.Errorf("%s: something was stored", mode)
		}
	}
}
