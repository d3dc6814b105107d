package revocation

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/ocsptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// A certificate the responder says is good is good, from OCSP, and so is
// its intermediate, whose responder is the root's.
func TestOCSPGood(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	leaf := p.leaf(t, nil, nil)
	res := checkChain(c, p.chain(leaf), at)
	if res.Status != Good || res.Source != SourceOCSP || res.Cert != leaf || res.Cached {
		t.Fatalf("result %+v, want good from OCSP about the leaf, fetched", res)
	}
	if !res.NextUpdate.Equal(at.Add(-time.Hour).Add(7 * 24 * time.Hour)) {
		t.Errorf("nextUpdate %v", res.NextUpdate)
	}
	if n := p.srv.OCSPHits(); n != 2 {
		t.Errorf("%d OCSP requests, want 2 (the leaf and the intermediate)", n)
	}
	if n := p.srv.CRLHits(); n != 0 {
		t.Errorf("%d CRL requests, want none: OCSP answered", n)
	}
}

// A revoked certificate is revoked, with when and why; so is a chain
// whose intermediate is revoked, about the intermediate.
func TestOCSPRevoked(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	leaf := p.leaf(t, nil, nil)
	revokedAt := at.Add(-48 * time.Hour).Truncate(time.Second)
	p.srv.Revoke(leaf.SerialNumber, revokedAt, 1)
	res := checkChain(c, p.chain(leaf), at)
	if res.Status != Revoked || res.Depth != 0 || res.Reason != 1 || !res.RevokedAt.Equal(revokedAt) || res.Source != SourceOCSP {
		t.Fatalf("result %+v, want revoked (keyCompromise) at %v from OCSP", res, revokedAt)
	}
	if ReasonName(res.Reason) != "keyCompromise" {
		t.Errorf("reason name %q", ReasonName(res.Reason))
	}

	p.srv.Revoke(p.inter.SerialNumber, revokedAt, 2)
	other := p.leaf(t, nil, nil)
	res = checkChain(c, p.chain(other), at)
	if res.Status != Revoked || res.Depth != 1 || res.Cert != p.inter {
		t.Fatalf("revoked intermediate: result %+v, want revoked at depth 1", res)
	}
}

// A status OCSP does not know comes from the CRL, and so does one whose
// responder fails; a CRL lists the revoked.
func TestCRLAfterOCSP(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	leaf := p.leaf(t, nil, nil)
	p.srv.Unknown(leaf.SerialNumber)
	res := checkChain(c, p.chain(leaf), at)
	if res.Status != Good || res.Source != SourceCRL || res.URL != p.srv.CRLURL("inter") {
		t.Fatalf("OCSP unknown: result %+v, want good from the CRL", res)
	}

	// A new Checker: the first kept the CRL, which lists no revocation
	// until its nextUpdate.
	c = newChecker(t, "", CheckerOptions{})
	failing := ocsptest.Start(p.now)
	t.Cleanup(failing.Close)
	failing.Fail(http.StatusServiceUnavailable)
	leaf = p.leaf(t, []string{failing.OCSPURL()}, nil)
	p.srv.Revoke(leaf.SerialNumber, at.Add(-time.Hour), 4)
	res = checkChain(c, p.chain(leaf), at)
	if res.Status != Revoked || res.Source != SourceCRL || res.Reason != 4 {
		t.Fatalf("OCSP failing: result %+v, want revoked from the CRL", res)
	}
}

// The status is unknown when nobody answers, with every failure said:
// OCSP unknown and no CRL, a responder gone, one too slow, no URL at all.
func TestUnknown(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{FetchTimeout: 300 * time.Millisecond})

	leaf := p.leaf(t, nil, []string{})
	p.srv.Unknown(leaf.SerialNumber)
	res := checkChain(c, p.chain(leaf), at)
	if res.Status != Unknown || res.Depth != 0 || !strings.Contains(res.Err.Error(), "status unknown") {
		t.Errorf("OCSP unknown, no CRL: %+v", res)
	}

	gone := ocsptest.Start(p.now)
	gone.Close()
	leaf = p.leaf(t, []string{gone.OCSPURL()}, []string{gone.CRLURL("inter")})
	res = checkChain(c, p.chain(leaf), at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "OCSP "+gone.OCSPURL()) || !strings.Contains(res.Err.Error(), "CRL ") {
		t.Errorf("unreachable: %+v", res)
	}

	slow := ocsptest.Start(p.now)
	t.Cleanup(slow.Close)
	slow.Delay(time.Minute)
	leaf = p.leaf(t, []string{slow.OCSPURL()}, []string{slow.CRLURL("inter")})
	start := time.Now()
	res = checkChain(c, p.chain(leaf), at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "timed out") {
		t.Errorf("slow: %+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow responder: the check took %v", d)
	}

	leaf = p.leaf(t, []string{}, []string{})
	res = checkChain(c, p.chain(leaf), at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "no OCSP responder and no CRL") {
		t.Errorf("no URL: %+v", res)
	}
	if res := checkChain(c, p.chain(leaf)[:1], at); res.Status != Unknown {
		t.Errorf("a chain of one: %+v", res)
	}
}

// A check that hangs is bounded by CheckTimeout, whatever the fetches'.
func TestCheckTimeout(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{FetchTimeout: time.Minute, CheckTimeout: 300 * time.Millisecond})
	p.srv.Delay(time.Minute)
	start := time.Now()
	res := checkChain(c, p.chain(p.leaf(t, nil, nil)), at)
	if res.Status != Unknown {
		t.Errorf("result %+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the check took %v", d)
	}
}

// An answer outside its window at the verification time is not used:
// expired (nextUpdate passed), or not yet valid (thisUpdate ahead by more
// than the skew). An OCSP response without nextUpdate is valid for
// NoNextUpdateFor.
func TestFreshness(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	old := at.Add(-10 * 24 * time.Hour)
	p.srv.SetWindow(func() time.Time { return old }, 24*time.Hour)
	res := checkChain(c, p.chain(p.leaf(t, nil, nil)), at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "expired: nextUpdate") {
		t.Errorf("expired answers: %+v", res)
	}

	future := at.Add(24 * time.Hour)
	p.srv.SetWindow(func() time.Time { return future }, 24*time.Hour)
	res = checkChain(c, p.chain(p.leaf(t, nil, nil)), at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "not yet valid") {
		t.Errorf("answers from the future: %+v", res)
	}

	p.srv.SetWindow(p.now, -1)
	leaf := p.leaf(t, nil, []string{})
	res = checkChain(c, p.chain(leaf), at)
	if res.Status != Good || !res.NextUpdate.Equal(res.ThisUpdate.Add(DefaultNoNextUpdateFor)) {
		t.Errorf("no nextUpdate: %+v, want good until thisUpdate + %v", res, DefaultNoNextUpdateFor)
	}
	if res := checkChain(c, p.chain(leaf), at.Add(DefaultNoNextUpdateFor)); res.Status != Unknown {
		t.Errorf("no nextUpdate, a day later: %+v, want unknown", res)
	}
}

// Only the issuer or a responder it certified for OCSP signing may sign:
// a delegated responder with id-kp-OCSPSigning is good; without it, or
// certified by another CA, or expired, or the key of another CA, is not.
func TestResponderAuthorisation(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	ocspSigning := []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	for _, tc := range []struct {
		name   string
		signer *ocsptest.Signer
		want   Status
		why    string
	}{
		{"delegated", issueResponder(t, p.inter, p.interKey, ocspSigning, at.AddDate(0, 1, 0)), Good, ""},
		{"no OCSPSigning", issueResponder(t, p.inter, p.interKey, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, at.AddDate(0, 1, 0)), Unknown, "no id-kp-OCSPSigning"},
		{"expired responder", issueResponder(t, p.inter, p.interKey, ocspSigning, at.Add(-time.Hour)), Unknown, "not valid at"},
		{"another CA's responder", issueResponder(t, other.inter, other.interKey, ocspSigning, at.AddDate(0, 1, 0)), Unknown, "not signed by the issuer"},
		{"another CA's key", &ocsptest.Signer{Cert: other.inter, Key: other.interKey}, Unknown, "not certified by the issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.srv.SignWith(tc.signer)
			c := newChecker(t, "", CheckerOptions{})
			leaf := p.leaf(t, nil, []string{})
			res := c.Check(t.Context(), leaf, p.inter, at)
			if res.Status != tc.want || tc.why != "" && !strings.Contains(res.Err.Error(), tc.why) {
				t.Errorf("status %v (%v), want %v, %q", res.Status, res.Err, tc.want, tc.why)
			}
		})
	}
}

// issueResponder issues an OCSP responder certificate from issuer.
func issueResponder(t *testing.T, issuer *x509.Certificate, issuerKey crypto.Signer, eku []x509.ExtKeyUsage, notAfter time.Time) *ocsptest.Signer {
	t.Helper()
	key := newKey(t)
	cert, err := testcorpus.Issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "delegated responder"}, NotBefore: at.AddDate(0, -1, 0), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku,
	}, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return &ocsptest.Signer{Cert: cert, Key: key}
}
