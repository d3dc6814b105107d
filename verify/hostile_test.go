package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/certharvest/certharvest/internal/cputime"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// signedWith builds a DKIM-signed multipart/signed message From addr whose
// CMS is signed by signer (key) and carries bag.
func signedWith(t *testing.T, f *testcorpus.Fixture, addr string, signer *x509.Certificate, key crypto.Signer, bag []*x509.Certificate) []byte {
	t.Helper()
	return signedWithContent(t, f, addr, "", []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"), signer, key, bag)
}

// signedWithContent is signedWith with extra top-level header fields
// (CRLF-terminated) and the signed entity given.
func signedWithContent(t *testing.T, f *testcorpus.Fixture, addr, extraHeader string, content []byte, signer *x509.Certificate, key crypto.Signer, bag []*x509.Certificate) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(signer, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range bag {
		sd.AddCertificate(c)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	var lines strings.Builder
	for len(b64) > 76 {
		lines.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	lines.WriteString(b64 + "\r\n")
	msg := "From: " + addr + "\r\nTo: in@example.org\r\nSubject: hostile\r\nDate: Mon, 1 Jun 2026 00:00:00 +0000\r\n" +
		"Message-ID: <h@example.com>\r\nMIME-Version: 1.0\r\n" + extraHeader +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=b\r\n\r\n" +
		"--b\r\n" + string(content) + "\r\n--b\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + lines.String() + "--b--\r\n"
	signed, err := f.DKIMSign([]byte(msg), addr[strings.IndexByte(addr, '@')+1:])
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// checkBounded verifies raw once and checks the verdict, the CPU time taken
// and the memory allocated, and returns the result. Both are the whole
// process's (every goroutine, the garbage collector's work included): the
// caller must not run in parallel with other tests. CPU time, not wall
// time, because on a loaded machine (CI, a fuzz campaign beside) the wall
// time says more about the other processes than about the work done; where
// the system cannot tell the CPU time, wall time is bounded instead.
func checkBounded(t *testing.T, p *verify.Pipeline, raw []byte, want verify.Reason, maxTime time.Duration, maxAlloc uint64) *verify.Result {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start, cpuStart := time.Now(), cputime.Process()
	res := p.Verify(context.Background(), &verify.Message{Raw: raw})
	elapsed, cpu := time.Since(start), time.Duration(cputime.Process()-cpuStart)
	runtime.ReadMemStats(&after)
	if res.Reason != want {
		t.Fatalf("reason = %s (%s), want %s", res.Reason, res.Detail, want)
	}
	if cpuStart == 0 {
		cpu = elapsed
	}
	if cpu > maxTime {
		t.Errorf("took %v of CPU (%v wall), the bound is %v", cpu, elapsed, maxTime)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > maxAlloc {
		t.Errorf("allocated %d KiB, the bound is %d KiB", alloc>>10, maxAlloc>>10)
	}
	t.Logf("%s in %v CPU, %v wall, %d KiB allocated: %s", res.Reason, cpu, elapsed, alloc>>10, res.Detail)
	return res
}

func TestHostileCMS(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, nil)
	leaf, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "bag@example.com"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("10,000 certificates in the bag", func(t *testing.T) {
		bag := make([]*x509.Certificate, 10000)
		for i := range bag {
			bag[i] = f.Intermediate
		}
		raw := signedWith(t, f, "bag@example.com", leaf, f.LeafKey, bag)
		checkBounded(t, p, raw, verify.ReasonSignatureMalformed, 10*time.Second, 256<<20)
	})

	t.Run("certificates that issue each other in a loop", func(t *testing.T) {
		keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmplA := caTemplate("Loop A", 1)
		tmplB := caTemplate("Loop B", 2)
		a := mustCreate(t, tmplA, tmplB, &keyA.PublicKey, keyB)
		b := mustCreate(t, tmplB, tmplA, &keyB.PublicKey, keyA)
		leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leafTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "loop@example.com"},
			EmailAddresses: []string{"loop@example.com"}, NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}
		loopLeaf := mustCreate(t, leafTmpl, a, &leafKey.PublicKey, keyA)
		raw := signedWith(t, f, "loop@example.com", loopLeaf, leafKey, []*x509.Certificate{a, b})
		checkBounded(t, p, raw, verify.ReasonCertUntrusted, 10*time.Second, 64<<20)
		if res := p.Verify(context.Background(), &verify.Message{Raw: raw}); !strings.Contains(res.Detail, "loop") {
			t.Errorf("detail does not name the loop: %s", res.Detail)
		}
	})

	t.Run("49 certificates with the signer's issuer name", func(t *testing.T) {
		// Explaining the failure must not check every pair of them.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var bag []*x509.Certificate
		for i := range 49 { // with the signer, the most a CMS may carry
			bag = append(bag, mustCreate(t, caTemplate("Same Name", int64(100+i)), caTemplate("Other", 1), &key.PublicKey, key))
		}
		leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leafTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "same@example.com"},
			EmailAddresses: []string{"same@example.com"}, NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}
		issuerTmpl := caTemplate("Same Name", 99)
		otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := mustCreate(t, leafTmpl, issuerTmpl, &leafKey.PublicKey, otherKey) // signed by none of the bag
		raw := signedWith(t, f, "same@example.com", leaf, leafKey, bag)
		checkBounded(t, p, raw, verify.ReasonCertUntrusted, 5*time.Second, 64<<20)
	})

	t.Run("1,000 DKIM signatures", func(t *testing.T) {
		good := signedWith(t, f, "dkim@example.com", mustLeaf(t, f, "dkim@example.com"), f.LeafKey, []*x509.Certificate{f.Intermediate})
		// 999 copies of a signature that does not verify, above the good one.
		end := bytes.Index(good, []byte("\r\nFrom:"))
		bad := bytes.Replace(good[:end+2], []byte("b="), []byte("b=AAAA"), 1)
		raw := append(bytes.Repeat(bad, 999), good...)
		checkBounded(t, p, raw, verify.ReasonDKIMInvalid, 10*time.Second, 128<<20)
		// The good signature first: verified within the cap, accepted.
		raw = append(append([]byte(nil), good[:end+2]...), raw...)
		checkBounded(t, p, raw, verify.ReasonOK, 10*time.Second, 128<<20)
	})
}

func caTemplate(cn string, serial int64) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
}

// mustCreate issues tmpl for pub, signed by key as parent.
func mustCreate(t *testing.T, tmpl, parent *x509.Certificate, pub any, key crypto.Signer) *x509.Certificate {
	t.Helper()
	c, err := testcorpus.Issue(tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustLeaf(t *testing.T, f *testcorpus.Fixture, addr string) *x509.Certificate {
	t.Helper()
	c, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
