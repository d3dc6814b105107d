package verify

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// A story with a storyCache says of every certificate what one without
// says, keeps only CA certificates, by their bytes (a certificate parsed
// again finds its words), and keeps at most maxStoryCacheCertificates.
func TestStoryCache(t *testing.T) {
	f, err := internalFixture()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "story@example.com", SubjectEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	again, err := x509.ParseCertificate(f.Intermediate.Raw)
	if err != nil {
		t.Fatal(err)
	}
	cached := &story{cache: &storyCache{}}
	for range 2 {
		for _, c := range []*x509.Certificate{f.Intermediate, f.Root, leaf, again} {
			for _, s := range []*story{cached, {}} {
				if got, want := s.certificateLine(c), certificateLine(c); got != want {
					t.Errorf("certificateLine(%s) = %q, want %q", certName(c), got, want)
				}
				if got, want := s.quotedName(c), strconv.Quote(certName(c)); got != want {
					t.Errorf("quotedName(%s) = %q, want %q", certName(c), got, want)
				}
			}
		}
	}
	if n := len(cached.cache.certs); n != 2 {
		t.Errorf("%d certificates kept, want 2 (the intermediate and the root)", n)
	}

	full := &storyCache{}
	for i := range maxStoryCacheCertificates + 10 {
		c := &x509.Certificate{
			Raw:       []byte(fmt.Sprintf("ca %d", i)),
			IsCA:      true,
			Subject:   pkix.Name{CommonName: fmt.Sprintf("CA %d", i)},
			NotBefore: time.Unix(int64(i), 0),
		}
		if w := full.words(c); w.line != certificateLine(c) || w.quoted != strconv.Quote(certName(c)) {
			t.Fatalf("words of CA %d: %+v", i, w)
		}
	}
	if n := len(full.certs); n != maxStoryCacheCertificates {
		t.Errorf("%d certificates kept, want the bound, %d", n, maxStoryCacheCertificates)
	}
}
