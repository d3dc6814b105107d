package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The messages of testdata/openssl were signed by `openssl cms -sign` and
// `openssl smime -sign` (make.sh there has the commands; README.md says
// what each is): a second producer beside internal/testcorpus, under a PKI
// of its own (root.pem). The tests DKIM-sign them with the fixture's keys,
// changing nothing else, and run them through the whole pipeline.

// opensslDir is where the OpenSSL vectors are.
var opensslDir = filepath.Join("testdata", "openssl")

// opensslWant is the verdict of each OpenSSL vector that is refused, with
// a part of its detail; every other one is accepted.
var opensslWant = map[string]struct {
	reason Reason
	detail string
}{
	"weak-sha1":                 {ReasonSignatureInvalid, "SHA-1 as digest algorithm is not accepted"},
	"weak-rsa-pss-sha1":         {ReasonSignatureInvalid, "SHA-1 as digest algorithm is not accepted"},
	"weak-rsa-pss-salt":         {ReasonSignatureInvalid, "RSASSA-PSS salt of 16 bytes is weak"},
	"weak-rsa1024":              {ReasonSignatureInvalid, "RSA key of 1024 bits"},
	"weak-sha1-cert":            {ReasonCertUntrusted, `"sha1cert@example.com" is signed with SHA1-RSA, which is not accepted`},
	"weak-pss-cert":             {ReasonCertUntrusted, `"psssalt@example.net" is signed with RSASSA-PSS parameters that are not accepted`},
	"pss-key":                   {ReasonSignatureInvalid, `the key of "psskey@example.org" is an RSASSA-PSS key (id-RSASSA-PSS), which is not supported`},
	"tampered-rsa-pss-detached": {ReasonSignatureInvalid, "altered after signing"},
	"tampered-p256-detached":    {ReasonSignatureInvalid, "altered after signing"},
	"tampered-p384-detached":    {ReasonSignatureInvalid, "altered after signing"},
	"tampered-p521-detached":    {ReasonSignatureInvalid, "altered after signing"},
	"signonly-rsa-detached":     {ReasonCertNoEncryption, `"signonly.rsa@example.com" (RSA-2048) allows no encryption (key usage: digitalSignature)`},
	"signonly-p256-opaque":      {ReasonCertNoEncryption, `"signonly.p256@example.net" (ECDSA-P256) allows no encryption (key usage: digitalSignature)`},
}

// opensslVector is one OpenSSL-made message, as it will be verified.
type opensslVector struct {
	name string // file name without .eml
	raw  []byte // CRLF, DKIM-signed
	from string
}

// opensslVectors reads the OpenSSL vectors and DKIM-signs each with f's
// key of its From domain.
func opensslVectors(t testing.TB, f *testcorpus.Fixture) (*x509.CertPool, []opensslVector) {
	t.Helper()
	rootPEM, err := os.ReadFile(filepath.Join(opensslDir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("root.pem holds no certificate")
	}
	files, err := filepath.Glob(filepath.Join(opensslDir, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OpenSSL vectors in %s: %v", opensslDir, err)
	}
	var out []opensslVector
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		msg := canonicalCRLF(data)
		h, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		from := h.Header.Get("From")
		signed, err := f.DKIMSign(msg, from[strings.LastIndexByte(from, '@')+1:])
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, opensslVector{name: strings.TrimSuffix(filepath.Base(file), ".eml"), raw: signed, from: from})
	}
	return roots, out
}

// Every signer kind OpenSSL makes is accepted in every form it makes, the
// weak and the altered ones refused with their reason, the same on the
// default path and the reference path; the fast path decides every DER one.
func TestOpenSSLVectors(t *testing.T) {
	f := signingTimeFixture(t)
	keys, err := ParseDKIMKeys(bytes.NewReader(f.KeysFile()))
	if err != nil {
		t.Fatal(err)
	}
	roots, vectors := opensslVectors(t, f)
	fast := newReferenceTestPipeline(t, roots, keys.LookupTXT, testcorpus.At, false)
	ref := newReferenceTestPipeline(t, roots, keys.LookupTXT, testcorpus.At, true)
	seen := map[string]bool{}
	kinds := map[string]bool{}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			seen[v.name] = true
			m := referenceMessage{v.name, v.raw}
			a, b := fast.verify(m), ref.verify(m)
			if a.Reason != b.Reason || a.Detail != b.Detail || a.story != b.story {
				t.Errorf("default path %s %q, reference path %s %q", a.Reason, a.Detail, b.Reason, b.Detail)
			}
			want, refused := opensslWant[v.name]
			switch {
			case refused && (a.Reason != want.reason || !strings.Contains(a.Detail, want.detail)):
				t.Errorf("%s (%s), want %s with %q", a.Reason, a.Detail, want.reason, want.detail)
			case !refused && (a.Reason != ReasonOK || a.From != v.from):
				t.Errorf("%s (%s), want ok for %s", a.Reason, a.Detail, v.from)
			}
			if !refused && a.Cert != nil {
				checkOpenSSLEncryption(t, v.name, a.Result)
				kinds[KeyDescription(a.Cert.PublicKey)] = true
				parsed, err := parseMessage(v.raw, DefaultMaxSize, HeaderLimits{})
				if err != nil {
					t.Fatal(err)
				}
				e, err := locateSignature(parsed, &story{mu: &sync.Mutex{}})
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := fastVerifyCMS(e, nil); ok == strings.Contains(v.name, "-ber-") {
					t.Errorf("the fast path decides: %v", ok)
				}
			}
		})
	}
	for name := range opensslWant {
		if !seen[name] {
			t.Errorf("no vector %s.eml", name)
		}
	}
	for _, k := range []string{"RSA-2048", "ECDSA-P256", "ECDSA-P384", "ECDSA-P521"} {
		if !kinds[k] {
			t.Errorf("no accepted vector with a %s signer", k)
		}
	}
}

// checkOpenSSLEncryption checks the certificate to encrypt to of an
// accepted OpenSSL vector: the dual-key sender's encryption certificate
// (dual-enc.pem, which -certfile put in the CMS), else the signer's; and
// the SMIMECapabilities that openssl cms -sign adds (AES-256-CBC first).
func checkOpenSSLEncryption(t *testing.T, name string, res *Result) {
	t.Helper()
	want := res.Cert
	if name == "dual-key-certfile" {
		data, err := os.ReadFile(filepath.Join(opensslDir, "dual-enc.pem"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if want, err = x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatal(err)
		}
		if res.EncCert == res.Cert || res.EncCertInfo == res.CertInfo {
			t.Error("the dual-key sender's signing certificate was chosen to encrypt to")
		}
	}
	if res.EncCert == nil || !res.EncCert.Equal(want) {
		t.Errorf("the certificate to encrypt to is not %s", certName(want))
	}
	if len(res.Capabilities) == 0 || res.Capabilities[0] != "AES-256-CBC" {
		t.Errorf("capabilities %q, want openssl's, AES-256-CBC first", res.Capabilities)
	}
}
