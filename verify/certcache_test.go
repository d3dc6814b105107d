package verify

import (
	"bytes"
	"testing"
)

func TestCertCacheKeepsCAsOnly(t *testing.T) {
	var ca, leaf []byte
	for _, e := range loadFuzzSample(t).signatures() {
		sd, ok := parseSignedDataDER(e.cms, nil)
		if !ok {
			continue
		}
		for _, c := range sd.certs {
			if c.IsCA && ca == nil {
				ca = c.Raw
			}
			if !c.IsCA && leaf == nil {
				leaf = c.Raw
			}
		}
	}
	if ca == nil || leaf == nil {
		t.Fatal("the sample has no DER CMS with a CA and a signer certificate")
	}
	var cache certCache
	der := bytes.Clone(ca)
	first, err := cache.parse(der, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The cached certificate does not share the caller's bytes.
	der[len(der)-1] ^= 0xff
	if !bytes.Equal(first.Raw, ca) {
		t.Fatal("cached certificate changed with the caller's buffer")
	}
	second, err := cache.parse(ca, nil)
	if err != nil || second != first {
		t.Fatalf("second parse of a CA certificate: %p, %v; want the cached %p", second, err, first)
	}
	l1, err := cache.parse(leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := cache.parse(leaf, nil); l2 == l1 {
		t.Error("a signer certificate was cached")
	}
	if len(cache.certs) != 1 {
		t.Errorf("cache holds %d certificates, want 1", len(cache.certs))
	}
	var nilCache *certCache
	if c, err := nilCache.parse(ca, nil); err != nil || !bytes.Equal(c.Raw, ca) {
		t.Errorf("nil cache: %v", err)
	}
	if _, err := cache.parse([]byte("not a certificate"), nil); err == nil {
		t.Error("garbage parsed")
	}
}
