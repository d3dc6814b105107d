package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"runtime"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// TestKeptChainsHoldNoMessage: on the pkcs7 path (here a BER CMS with
// indefinite lengths) a certificate's Raw is a slice of the whole
// re-encoded CMS, content and all. What the chain verdict cache and the
// link cache keep must be copies, or a known sender's verdict would hold a
// message of up to --max-size while counted as a few kilobytes.
func TestKeptChainsHoldNoMessage(t *testing.T) {
	f := signingTimeFixture(t)
	leaf, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "big.ber@example.com", SubjectEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	content := append([]byte("Content-Type: text/plain\r\n\r\n"), bytes.Repeat([]byte("x"), 4<<20)...)
	der := buildCMS(t, cmsSpec{signer: leaf, key: f.LeafKey, bag: []*x509.Certificate{f.Intermediate},
		content: content, opaque: true, hash: crypto.SHA256, digestAlg: oidSHA256, sigAlg: oidSHA256WithRSA})
	ber, err := testcorpus.BERIndefinite(der, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Roots: f.TrustPool(), LookupTXT: func(context.Context, string) ([]string, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // kept from a sender's second message
		cms, err := verifyCMS(&signedEntity{cms: ber, opaque: true}, &p.cms, &story{mu: &sync.Mutex{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.verifyChain(cms.signers[0], cms.bag, testcorpus.At, &story{mu: &sync.Mutex{}}); err != nil {
			t.Fatal(err)
		}
	}
	if p.chains.verdicts.Len() == 0 || len(p.links.links) == 0 {
		t.Fatal("nothing kept: the test no longer exercises the caches")
	}
	ber, der, content = nil, nil, nil
	with := liveHeap()
	p.chains.verdicts.Clear()
	p.links.links = nil
	freed := int64(with) - int64(liveHeap())
	if freed > 1<<20 {
		t.Errorf("dropping the kept chain and link frees %d bytes: they hold the 4 MiB message", freed)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
