package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // crypto.SHA1 for rsa-sha1
	"fmt"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// handDKIM makes a DKIM signature (RFC 6376 §5) with the choices
// go-msgauth's signer refuses to make: rsa-sha1, a body length tag, an h=
// without From. It canonicalizes simple/simple (§3.4.1, §3.4.3), under
// which a header field is hashed as it is and the body as it is less its
// trailing empty lines.
type handDKIM struct {
	selector   string
	key        crypto.Signer
	hash       crypto.Hash // crypto.SHA256 or crypto.SHA1
	headers    []string    // h=
	bodyLength bool        // l=, covering the whole body
}

func (s handDKIM) sign(t *testing.T, msg []byte, domain string) []byte {
	t.Helper()
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatal("no end of header")
	}
	header, body := msg[:end+2], msg[end+4:]
	body = append(bytes.TrimRight(bytes.Clone(body), "\r\n"), "\r\n"...)
	alg := map[crypto.Hash]string{crypto.SHA256: "sha256", crypto.SHA1: "sha1"}[s.hash]
	bh := s.hash.New()
	bh.Write(body)
	var tags strings.Builder
	fmt.Fprintf(&tags, "v=1; a=rsa-%s; c=simple/simple; d=%s; s=%s; h=%s;", alg, domain, s.selector, strings.Join(s.headers, ":"))
	if s.bodyLength {
		fmt.Fprintf(&tags, " l=%d;", len(body))
	}
	fmt.Fprintf(&tags, " bh=%s; b=", b64(bh.Sum(nil)))
	field := "DKIM-Signature: " + tags.String()

	// The header fields, continuation lines included; each name in h=
	// takes the last field of that name not yet taken (§5.4.2).
	var fields [][]byte
	for _, line := range bytes.SplitAfter(header, []byte("\r\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
		} else if len(line) > 0 {
			fields = append(fields, bytes.Clone(line))
		}
	}
	h := s.hash.New()
	taken := map[int]bool{}
	for _, name := range s.headers {
		for i := len(fields) - 1; i >= 0; i-- {
			n, _, _ := bytes.Cut(fields[i], []byte(":"))
			if !taken[i] && strings.EqualFold(string(bytes.TrimSpace(n)), name) {
				h.Write(fields[i])
				taken[i] = true
				break
			}
		}
	}
	h.Write([]byte(field)) // without its CRLF, b= empty (§3.7)
	sig, err := s.key.Sign(rand.Reader, h.Sum(nil), s.hash)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(field+b64(sig)+"\r\n"), msg...)
}

// A DKIM signature that could let Mallory speak for the From domain does
// not count, even when it verifies: one with l= (content can be appended
// after the signed length, RFC 6376 §8.2), one that does not cover From
// (Mallory can put his own, §5.4), rsa-sha1 and an RSA key under 1,024
// bits (RFC 8301 §3.1, §3.2). go-msgauth refuses all four (dkim/verify.go, query.go),
// and so does internal/dkimfast, which keeps those checks as they are;
// certharvest adds no check of its own, and this test holds the verifier
// to it. Each message is otherwise valid, and its only signature is
// cryptographically sound: the control, signed the same way without the
// weakness, is accepted (and each of the four verified with a copy of
// go-msgauth whose four checks were removed).
func TestPipelineDKIMWeakSignatures(t *testing.T) {
	f := testFixture(t)
	c := caseData(t, f, "ok-rsa-detached")
	unsigned := stripDKIM(t, c)
	domainKey := f.DKIMKeys["example.com"]
	weakKey := newMultiPrimeKey(t, 512, 65537)
	weakRecord := "v=DKIM1; k=rsa; p=" + b64(mustMarshalPKIX(t, weakKey.Public()))
	lookup := func(ctx context.Context, name string) ([]string, error) {
		if name == "weak._domainkey.example.com" {
			return []string{weakRecord}, nil
		}
		return lookupFrom(f)(ctx, name)
	}
	withoutFrom := testcorpus.DKIMHeaderKeys[1:]
	if testcorpus.DKIMHeaderKeys[0] != "From" {
		t.Fatal("DKIMHeaderKeys no longer starts with From")
	}
	tests := []struct {
		name   string
		sig    handDKIM
		want   verify.Reason
		detail string
	}{
		{"control: rsa-sha256, From signed, no l=", handDKIM{selector: "s1", key: domainKey, hash: crypto.SHA256, headers: testcorpus.DKIMHeaderKeys},
			verify.ReasonOK, "certificate stored"},
		{"l= over the whole body", handDKIM{selector: "s1", key: domainKey, hash: crypto.SHA256, headers: testcorpus.DKIMHeaderKeys, bodyLength: true},
			verify.ReasonDKIMInvalid, "insecure body length tag"},
		{"From not signed", handDKIM{selector: "s1", key: domainKey, hash: crypto.SHA256, headers: withoutFrom},
			verify.ReasonDKIMInvalid, "From field not signed"},
		{"rsa-sha1", handDKIM{selector: "s1", key: domainKey, hash: crypto.SHA1, headers: testcorpus.DKIMHeaderKeys},
			verify.ReasonDKIMInvalid, "hash algorithm too weak: sha1"},
		{"512-bit RSA key", handDKIM{selector: "weak", key: weakKey, hash: crypto.SHA256, headers: testcorpus.DKIMHeaderKeys},
			verify.ReasonDKIMInvalid, "key is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, store := newPipeline(t, f, func(o *verify.Options) { o.LookupTXT = lookup })
			res := p.Verify(context.Background(), &verify.Message{Raw: tt.sig.sign(t, unsigned, "example.com")})
			if res.Reason != tt.want || !strings.Contains(res.Detail, tt.detail) {
				t.Fatalf("reason = %s (%s), want %s with %q", res.Reason, res.Detail, tt.want, tt.detail)
			}
			store.mu.Lock()
			defer store.mu.Unlock()
			if stored := len(store.certs); (tt.want == verify.ReasonOK) != (stored == 1) || stored > 1 {
				t.Errorf("%d certificates stored", stored)
			}
		})
	}
}
