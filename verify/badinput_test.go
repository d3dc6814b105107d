package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// dkimSigned returns a message From x@example.com with the given
// Content-Type and body, DKIM-signed so that it reaches the later stages.
func dkimSigned(t *testing.T, f *testcorpus.Fixture, extraHeader, contentType, body string) []byte {
	t.Helper()
	msg := "From: x@example.com\r\nTo: in@example.org\r\nSubject: test\r\nDate: Mon, 1 Jun 2026 00:00:00 +0000\r\n" +
		"Message-ID: <t@example.com>\r\nMIME-Version: 1.0\r\n" + extraHeader + "Content-Type: " + contentType + "\r\n\r\n" + body
	signed, err := f.DKIMSign([]byte(msg), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// Hostile and broken input gets a verdict with a reason and a detail, never
// a panic, and without descending into structures it does not need: each
// case within a bound on time and on memory allocated. Every case but the
// last two is DKIM-signed, so that it reaches the MIME and CMS stages.
//
// Measured with go test -race on a loaded 2-core machine: at most 0.44 s of
// CPU (the 100,000 parts: DKIM hashes the 3.3 MB body; 0.24 s without
// -race) and 13 MiB (the 1 MiB header line). The CPU bound, 5 s, leaves room
// for a slower CI machine and still catches work that grows faster than the
// input; the memory bounds are two to four times what each case needs.
func TestPipelineBadInput(t *testing.T) {
	f := testFixture(t)
	p, store := newPipeline(t, f, nil)

	deep := strings.Repeat("--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n", 10000)
	manyParts := strings.Repeat("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n", 100000) + "--b--\r\n"
	signedPrefix := "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	// NUL, 8-bit and invalid UTF-8 bytes in a top-level field and in the
	// signed part's header, under a valid DKIM and CMS signature.
	const junk = "\x00\xff\xfe caf\xc3\xa9 \xc3\x28"
	nul := signedWithContent(t, f, "nul@example.com", "X-Junk: "+junk+"\r\n",
		[]byte("Content-Type: text/plain; charset=utf-8\r\nContent-Description: "+junk+"\r\n\r\nhello\x00\xff\r\n"),
		mustLeaf(t, f, "nul@example.com"), f.LeafKey, []*x509.Certificate{f.Intermediate})
	const MiB = 1 << 20
	tests := []struct {
		name     string
		raw      []byte
		want     verify.Reason
		maxAlloc uint64
	}{
		{"MIME nested 10,000 deep", dkimSigned(t, f, "", "multipart/mixed; boundary=b", deep), verify.ReasonNoSignature, 4 * MiB},
		{"multipart/signed with 100,000 parts", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`, manyParts), verify.ReasonSignatureMalformed, 24 * MiB},
		// Just under the header caps (verify.DefaultMaxHeaderBytes and
		// DefaultMaxHeaderFields: a DKIM-Signature and 7 fields more).
		{"1 MiB header line", dkimSigned(t, f, "X-Long: "+strings.Repeat("a", 1<<20-4096)+"\r\n", "text/plain", "x\r\n"), verify.ReasonNoSignature, 32 * MiB},
		{"10,000 header fields", dkimSigned(t, f, strings.Repeat("X-Many: v\r\n", 9990), "text/plain", "x\r\n"), verify.ReasonNoSignature, 16 * MiB},
		// Over them: refused before any parser reads the fields.
		{"header over 1 MiB", dkimSigned(t, f, "X-Long: "+strings.Repeat("a", 1<<20)+"\r\n", "text/plain", "x\r\n"), verify.ReasonMalformed, 4 * MiB},
		{"1.5 million header fields", headerFields(1_500_000), verify.ReasonMalformed, 4 * MiB},
		// The same caps on the headers of the parts go-message reads.
		{"a signed part's header over the caps", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			"--b\r\n"+strings.Repeat("X-P: v\r\n", 10001)+"\r\nhello\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--b--\r\n"), verify.ReasonMalformed, 4 * MiB},
		{"a part's header over the caps, boundary ending in --", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary="x--"`,
			"--x--\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n"+strings.Repeat("X-P: v\r\n", 10001)+"Content-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--x----\r\n"), verify.ReasonMalformed, 4 * MiB},
		{"a mixed first part's header over the caps", dkimSigned(t, f, "", `multipart/mixed; boundary=m`,
			"--m\r\n"+strings.Repeat("X-P: v\r\n", 10001)+"\r\nhello\r\n--m--\r\n"), verify.ReasonMalformed, 4 * MiB},
		{"an epilogue is no header", dkimSigned(t, f, "", `multipart/mixed; boundary=m`,
			"--m\r\nContent-Type: text/plain\r\n\r\nhello\r\n--m--\r\n"+strings.Repeat("X-P: v\r\n", 10001)), verify.ReasonNoSignature, 4 * MiB},
		{"invalid base64 signature", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			signedPrefix+"!!!not base64!!!\r\n--b--\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"unpadded base64 signature", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			signedPrefix+"MIIB\r\nMA\r\n--b--\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"BER with an absurd length", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			signedPrefix+"MIT/////AQIDBA==\r\n--b--\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"BER nested deep", dkimSigned(t, f, "", `application/pkcs7-mime; smime-type=signed-data`,
			"Content-Transfer-Encoding: base64\r\n\r\n"+berNest(5000)+"\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"signature part missing", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"no closing boundary", dkimSigned(t, f, "", `multipart/signed; protocol="application/pkcs7-signature"; boundary=b`,
			"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"), verify.ReasonSignatureMalformed, 1 * MiB},
		{"PGP signed", dkimSigned(t, f, "", `multipart/signed; protocol="application/pgp-signature"; boundary=b`,
			"--b\r\n\r\nx\r\n--b--\r\n"), verify.ReasonNoSignature, 1 * MiB},
		{"encrypted, not signed", dkimSigned(t, f, "", `application/pkcs7-mime; smime-type=enveloped-data`, "AAAA\r\n"), verify.ReasonNoSignature, 1 * MiB},
		{"unparseable Content-Type", dkimSigned(t, f, "", `multipart/signed; protocol=`, "x\r\n"), verify.ReasonNoSignature, 1 * MiB},
		{"NUL bytes and 8-bit in headers", nul, verify.ReasonOK, 1 * MiB},
		{"header without body separator", []byte("From: x@example.com\r\nSubject: x"), verify.ReasonDKIMMissing, 1 * MiB},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000), verify.ReasonMalformed, 1 * MiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := checkBounded(t, p, tt.raw, tt.want, 5*time.Second, tt.maxAlloc)
			if res.Detail == "" || len(res.Detail) > 600 {
				t.Errorf("detail of %d bytes: %.200q", len(res.Detail), res.Detail)
			}
			if regexp.MustCompile(`[\x00-\x1f]`).MatchString(res.Detail) {
				t.Errorf("control characters in the detail: %q", res.Detail)
			}
		})
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.certs) != 1 || store.certs["nul@example.com"] == nil {
		t.Errorf("stored %d certificates, want only nul@example.com's", len(store.certs))
	}
}

// headerFields is an unsigned message of n tiny header fields, X-H0: v to
// X-Hn-1: v (21 MB for 1.5 million).
func headerFields(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: x@example.com\r\n")
	for i := range n {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	b.WriteString("\r\nbody\r\n")
	return b.Bytes()
}

// berNest is base64 of n nested indefinite-length SEQUENCEs.
func berNest(n int) string {
	b := bytes.Repeat([]byte{0x30, 0x80}, n)
	b = append(b, bytes.Repeat([]byte{0, 0}, n)...)
	return b64(b)
}

func TestPipelineRelaxedAlignment(t *testing.T) {
	f := testFixture(t)
	// Re-sign an accepted message (From @example.com) as d=mail.example.com.
	var c testcorpus.Case
	for _, cc := range f.Cases() {
		if cc.Name == "ok-rsa-detached" {
			c = cc
		}
	}
	unsigned := regexp.MustCompile(`(?s)^DKIM-Signature:.*?\r\n([^ \t])`).ReplaceAll(c.Data, []byte("$1"))
	if bytes.Contains(unsigned, []byte("DKIM-Signature")) {
		t.Fatal("could not strip the DKIM signature")
	}
	f.DKIMKeys["mail.example.com"] = f.DKIMKeys["example.com"]
	defer delete(f.DKIMKeys, "mail.example.com")
	signed, err := f.DKIMSign(unsigned, "mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(ctx context.Context, name string) ([]string, error) {
		return lookupFrom(f)(ctx, strings.Replace(name, "mail.example.com", "example.com", 1))
	}
	for _, tt := range []struct {
		align verify.Alignment
		want  verify.Reason
	}{{verify.AlignStrict, verify.ReasonDKIMDomainMismatch}, {verify.AlignRelaxed, verify.ReasonOK}} {
		p, _ := newPipeline(t, f, func(o *verify.Options) { o.LookupTXT = lookup; o.Align = tt.align })
		res := p.Verify(context.Background(), &verify.Message{Raw: signed})
		if res.Reason != tt.want {
			t.Errorf("%s: reason = %s (%s), want %s", tt.align, res.Reason, res.Detail, tt.want)
		}
	}
}
