package revocation

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// A CRL larger than MaxCRLBytes is not read beyond it: unknown. So is an
// OCSP response larger than MaxOCSPBytes.
func TestHugeAnswers(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{MaxCRLBytes: 1 << 20})
	leaf := p.leaf(t, []string{}, nil)
	p.srv.PadCRL(64 << 20)
	start := time.Now()
	res := c.Check(t.Context(), leaf, p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "answer too large: more than 1048576 bytes") {
		t.Errorf("huge CRL: %+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("huge CRL: %v", d)
	}

	p.srv.PadCRL(0)
	p.srv.Body(make([]byte, 2*DefaultMaxOCSPBytes))
	res = c.Check(t.Context(), p.leaf(t, nil, []string{}), p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "answer too large") {
		t.Errorf("huge OCSP response: %+v", res)
	}
	p.srv.Body([]byte("garbage"))
	res = c.Check(t.Context(), p.leaf(t, nil, nil), p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "OCSP") || !strings.Contains(res.Err.Error(), "CRL: x509") {
		t.Errorf("garbage: %+v", res)
	}
}

// Only http and https URLs are fetched, and at most MaxURLs of each kind
// per certificate, whatever the certificate lists.
func TestURLsBounded(t *testing.T) {
	p := newPKI(t)
	var hits atomic.Int64
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	}))
	t.Cleanup(counting.Close)
	many := make([]string, 50)
	for i := range many {
		many[i] = counting.URL + "/" + string(rune('a'+i%26))
	}
	c := newChecker(t, "", CheckerOptions{})
	res := c.Check(t.Context(), p.leaf(t, many, many), p.inter, at)
	if res.Status != Unknown || hits.Load() != 2*DefaultMaxURLs {
		t.Errorf("50 URLs of each: %d fetched, want %d; %v", hits.Load(), 2*DefaultMaxURLs, res.Err)
	}
	if !strings.Contains(res.Err.Error(), "48 more OCSP URLs not tried") {
		t.Errorf("error %v", res.Err)
	}

	res = c.Check(t.Context(), p.leaf(t, []string{"ldap://ldap.example/cn=ca", "file:///etc/passwd"}, []string{"ftp://x/crl"}), p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "only http and https are fetched") {
		t.Errorf("other schemes: %+v", res)
	}
}

// Redirects are followed within a scheme, never to another, and at most
// three.
func TestRedirects(t *testing.T) {
	p := newPKI(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p.srv.CRLURL("inter"), http.StatusFound)
	})
	mux.HandleFunc("/https", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://127.0.0.1:1/crl", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	redirecting := httptest.NewServer(mux)
	t.Cleanup(redirecting.Close)
	c := newChecker(t, "", CheckerOptions{})
	if res := c.Check(t.Context(), p.leaf(t, []string{}, []string{redirecting.URL + "/same", p.srv.CRLURL("inter")}), p.inter, at); res.Status != Good {
		t.Errorf("redirect within http: %+v", res)
	}
	res := c.Check(t.Context(), p.leaf(t, []string{}, []string{redirecting.URL + "/https"}), p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "redirect from http to https refused") {
		t.Errorf("redirect to https: %+v", res)
	}
	res = c.Check(t.Context(), p.leaf(t, []string{}, []string{redirecting.URL + "/loop"}), p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "more than 3 redirects") {
		t.Errorf("redirect loop: %+v", res)
	}
}

// A CRL is used only when it is the issuer's, for the certificate's
// distribution point and kind.
func TestCRLScope(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	leaf := p.leaf(t, []string{}, []string{other.srv.CRLURL("inter")})
	c := newChecker(t, "", CheckerOptions{})
	res := c.Check(t.Context(), leaf, p.inter, at)
	if res.Status != Unknown || !strings.Contains(res.Err.Error(), "CRL signed with another key of the issuer") {
		t.Errorf("another CA's CRL of the same name: %+v", res)
	}

	crl := func(ext pkix.Extension) []byte {
		t.Helper()
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: at.Add(-time.Hour), NextUpdate: at.Add(time.Hour), ExtraExtensions: []pkix.Extension{ext},
		}, p.inter, p.interKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	leaf = p.leaf(t, []string{}, nil)
	idp := func(fields ...asn1.RawValue) pkix.Extension {
		der, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: concat(fields)})
		return pkix.Extension{Id: oidIssuingDistribution, Critical: true, Value: der}
	}
	boolean := func(tag int) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: []byte{0xff}}
	}
	uri := func(u string) asn1.RawValue {
		name := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)}
		full := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(name)}
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(full)}
	}
	for _, tc := range []struct {
		name string
		ext  pkix.Extension
		want string // "" for good
	}{
		{"its distribution point", idp(uri(p.srv.CRLURL("inter")), boolean(1)), ""},
		{"another distribution point", idp(uri("http://elsewhere.example/x.crl")), "another distribution point"},
		{"CA certificates only", idp(boolean(2)), "CA certificates only"},
		{"indirect", idp(boolean(4)), "indirect CRL"},
		{"some reasons", idp(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 3, Bytes: []byte{0x07, 0x80}}), "some revocation reasons"},
		{"delta", pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: mustMarshal(1)}, "delta CRL"},
		{"unknown critical", pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: mustMarshal(1)}, "critical and unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.srv.Body(crl(tc.ext))
			res := newChecker(t, "", CheckerOptions{}).Check(t.Context(), leaf, p.inter, at)
			switch {
			case tc.want == "" && res.Status != Good:
				t.Errorf("%+v, want good", res)
			case tc.want != "" && (res.Status != Unknown || !strings.Contains(res.Err.Error(), tc.want)):
				t.Errorf("%+v, want unknown: %q", res, tc.want)
			}
		})
	}
}

// A response about the same serial number of another issuer, signed by a
// responder this issuer certified, is not taken for this certificate's.
func TestOCSPOtherIssuersCertID(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	leaf := p.leaf(t, nil, nil)
	responder := issueResponder(t, p.inter, p.interKey, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}, at.AddDate(0, 1, 0))
	der, err := ocsp.CreateResponse(other.inter, responder.Cert, ocsp.Response{
		Status: ocsp.Good, SerialNumber: leaf.SerialNumber, ThisUpdate: at.Add(-time.Hour), NextUpdate: at.Add(time.Hour),
		Certificate: responder.Cert,
	}, responder.Key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = checkOCSP(der, leaf, p.inter, at, DefaultSkew, DefaultNoNextUpdateFor)
	if err == nil || !strings.Contains(err.Error(), "another issuer") {
		t.Errorf("error %v, want a response about another issuer", err)
	}
	// The same, about this issuer, is good.
	der, err = ocsp.CreateResponse(p.inter, responder.Cert, ocsp.Response{
		Status: ocsp.Good, SerialNumber: leaf.SerialNumber, ThisUpdate: at.Add(-time.Hour), NextUpdate: at.Add(time.Hour),
		Certificate: responder.Cert,
	}, responder.Key)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := checkOCSP(der, leaf, p.inter, at, DefaultSkew, DefaultNoNextUpdateFor); err != nil || st.Status != Good {
		t.Errorf("%+v %v", st, err)
	}
}

func mustMarshal(v any) []byte {
	der, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return der
}

func concat(vs []asn1.RawValue) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, mustMarshal(v)...)
	}
	return b
}
