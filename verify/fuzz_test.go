package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The fuzz targets of the pipeline. Their seeds (the generated corpus) run
// as ordinary tests; `go test -fuzz FuzzX ./verify` explores further.

// fuzzSample is the committed sample corpus: the seeds, its trust bundle
// and its DKIM keys. Fuzzing reads it rather than generating a fixture,
// since key generation is very slow under coverage instrumentation.
type fuzzSample struct {
	messages [][]byte
	roots    *x509.CertPool
	keys     *DKIMKeys
}

func loadFuzzSample(f testing.TB) *fuzzSample {
	dir := filepath.Join("..", "testdata", "sample")
	files, err := filepath.Glob(filepath.Join(dir, "messages", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no sample messages in %s", dir)
	}
	s := &fuzzSample{roots: x509.NewCertPool()}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		s.messages = append(s.messages, data)
	}
	pemData, err := os.ReadFile(filepath.Join(dir, "trust.pem"))
	if err != nil || !s.roots.AppendCertsFromPEM(pemData) {
		f.Fatalf("sample trust bundle: %v", err)
	}
	kf, err := os.Open(filepath.Join(dir, "dkim-keys.txt"))
	if err != nil {
		f.Fatal(err)
	}
	defer kf.Close()
	if s.keys, err = ParseDKIMKeys(kf); err != nil {
		f.Fatal(err)
	}
	return s
}

// signatures returns the S/MIME signatures of the sample's messages.
func (s *fuzzSample) signatures() []*signedEntity {
	var out []*signedEntity
	for _, raw := range s.messages {
		m, err := parseMessage(raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			continue
		}
		if e, err := locateSignature(m, &story{mu: &sync.Mutex{}}); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func fuzzPipeline(f testing.TB, s *fuzzSample) *Pipeline {
	p, err := New(Options{Roots: s.roots, LookupTXT: s.keys.LookupTXT, Now: func() time.Time { return sampleAt }})
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// sampleAt is the time the sample corpus is verified at (make run's --at).
var sampleAt = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// FuzzVerify runs the whole pipeline: whatever the input, a verdict with a
// known reason, never a panic (the recover in Verify would turn one into
// internal_error, which fails here).
func FuzzVerify(f *testing.F) {
	sample := loadFuzzSample(f)
	for _, m := range sample.messages {
		f.Add(m)
	}
	p := fuzzPipeline(f, sample)
	known := map[Reason]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res := p.Verify(context.Background(), &Message{Raw: raw})
		if res.Reason == ReasonInternalError || !known[res.Reason] {
			t.Fatalf("reason %q: %s", res.Reason, res.Detail)
		}
		if res.Accepted() && (res.Cert == nil || res.From == "") {
			t.Fatal("accepted without a certificate or a From address")
		}
	})
}

// FuzzSignature runs the stages after DKIM (which would turn almost every
// mutation away): MIME location, CMS and chain, on any message.
func FuzzSignature(f *testing.F) {
	sample := loadFuzzSample(f)
	for _, m := range sample.messages {
		f.Add(m)
	}
	p := fuzzPipeline(f, sample)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseMessage(raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			return
		}
		log := &story{mu: &sync.Mutex{}}
		e, err := locateSignature(m, log)
		if err != nil {
			checkReason(t, err, ReasonNoSignature, ReasonSignatureMalformed)
			return
		}
		cms, err := verifyCMS(e, nil, log)
		if err != nil {
			checkReason(t, err, ReasonSignatureMalformed, ReasonSignatureInvalid)
			return
		}
		for _, s := range cms.signers {
			if _, err := p.verifyChain(s, cms.bag, sampleAt, log); err != nil {
				checkReason(t, err, ReasonCertUntrusted, ReasonCertExpired, ReasonCertNotYetValid, ReasonCertWrongEKU)
			}
		}
	})
}

// FuzzCMS feeds raw bytes to the CMS stage, as both a detached and an opaque
// signature.
func FuzzCMS(f *testing.F) {
	for _, e := range loadFuzzSample(f).signatures() {
		f.Add(e.cms, e.content)
	}
	f.Fuzz(func(t *testing.T, der, content []byte) {
		log := &story{mu: &sync.Mutex{}}
		for _, e := range []*signedEntity{{cms: der, content: content}, {opaque: true, cms: der}} {
			if _, err := verifyCMS(e, nil, log); err != nil {
				checkReason(t, err, ReasonSignatureMalformed, ReasonSignatureInvalid)
			}
		}
	})
}

func checkReason(t *testing.T, err error, allowed ...Reason) {
	t.Helper()
	got := ReasonOf(err)
	for _, r := range allowed {
		if got == r {
			return
		}
	}
	t.Fatalf("reason %s (%v), want one of %v", got, err, allowed)
}

// FuzzNormalizeAddress checks the properties that make an address safe as a
// file name, for ASCII and internationalised addresses alike, and that an
// ASCII address is only lower-cased.
func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"bob@example.com", "Carol.Mixed@Example.COM", "../x@example.com", "a/b@example.com",
		`"q"@example.com`, ".a@example.com", "a@b", "a@-b.com", "x@example.com\x00", "é@example.com", "a+b@x.y.z",
		"jörg@bücher.example", "Jörg@XN--BCHER-KVA.example", "李雷@例え.jp", "jo\u0308rg@example.com", "p\u0430ypal@example.com",
		"jörg\u202e@example.com", "ｊｏｒｇ@example.com", "a@ｅｘａｍｐｌｅ.com", "δοκιμή@παράδειγμα.δοκιμή", "j\xf6rg@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeAddress(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("error %v does not wrap ErrInvalidAddress", err)
			}
			return
		}
		name := out + ".crt"
		local, domain, _ := strings.Cut(out, "@")
		switch {
		case filepath.Base(name) != name, filepath.Clean(name) != name, strings.ContainsAny(out, "/\\\x00"):
			t.Fatalf("%q is not a plain file name", out)
		case strings.HasPrefix(out, "."), strings.Contains(out, ".."):
			t.Fatalf("%q has a leading or double dot", out)
		case len(name) > 255:
			t.Fatalf("%q is too long for a file name", out)
		case strings.Count(out, "@") != 1:
			t.Fatalf("%q: not one @", out)
		case !utf8.ValidString(out) || !norm.NFC.IsNormalString(out):
			t.Fatalf("%q: not UTF-8 in NFC", out)
		case strings.IndexFunc(out, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) }) >= 0:
			t.Fatalf("%q holds a character that is not graphic", out)
		case !isASCII(domain) || domain != strings.ToLower(domain):
			t.Fatalf("%q: the domain is not lower-case ASCII (A-labels)", out)
		case isASCII(in) && out != strings.ToLower(in):
			t.Fatalf("ASCII %q normalised to %q, not only lower-cased", in, out)
		case isASCII(local) && local != strings.ToLower(local):
			t.Fatalf("%q: an ASCII local part not lower-cased", out)
		case !isASCII(local) && !strings.HasPrefix(in, local+"@"):
			t.Fatalf("%q: a UTF-8 local part changed from %q", out, in)
		}
		if again, err := NormalizeAddress(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q, %v", out, again, err)
		}
	})
}

// FuzzParseDKIMKeys: any keys file either fails with an error or gives a
// set whose lookups answer.
func FuzzParseDKIMKeys(f *testing.F) {
	f.Add("s1._domainkey.example.com\tv=DKIM1; k=rsa; p=AAAA\n")
	f.Add("# c\n\ns2._domainkey.example.net. \"v=DKIM1; \" \"p=BBBB\"\n")
	f.Add("x._domainkey.y \"unterminated\n")
	f.Fuzz(func(t *testing.T, file string) {
		keys, err := ParseDKIMKeys(strings.NewReader(file))
		if err != nil {
			return
		}
		for name := range keys.records {
			if _, err := keys.LookupTXT(context.Background(), name); err != nil {
				t.Fatalf("listed name %q not found: %v", name, err)
			}
		}
	})
}

// FuzzCanonicalCRLF: the result has no bare LF and keeps every other byte.
func FuzzCanonicalCRLF(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\r\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := canonicalCRLF(in)
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		if !bytes.Equal(bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n"))) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}

// FuzzCountCMSCertificates: the BER walker that guards the CMS parser never
// panics and agrees with the parser on the sample's signatures.
func FuzzCountCMSCertificates(f *testing.F) {
	for _, e := range loadFuzzSample(f).signatures() {
		f.Add(e.cms)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		n, err := countCMSCertificates(der)
		if err != nil {
			return
		}
		if p7, perr := parseCMS(der); perr == nil && len(p7.Signers) > 0 && len(p7.Certificates) != n {
			t.Fatalf("counted %d certificates, the parser found %d", n, len(p7.Certificates))
		}
	})
}
