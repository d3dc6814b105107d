package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The chain cache must give what a full verification gives, chain for
// chain and pointer for pointer: every combination of the cache PKI's
// signers, bags and times, by a warm pipeline (which has verified them all
// before, in one order or another) and by a pipeline without caches
// (Options.Reference).
func TestChainCacheAgreesWithFullVerification(t *testing.T) {
	pki := newCachePKI(t)
	cold, err := New(Options{Roots: pki.roots, LookupTXT: pki.pipeline(t).opts.LookupTXT, Reference: true})
	if err != nil {
		t.Fatal(err)
	}
	type combo struct {
		name   string
		leaf   *x509.Certificate
		bag    []*x509.Certificate
		at     time.Time
		detail string
		places []int // the chain, as places in bag (-1: not from bag)
	}
	var combos []*combo
	for _, leafName := range pki.leafOrder {
		leaf := pki.leaves[leafName]
		bags := pki.bags(leaf)
		// The leaf twice, as two certificates (as certCache parses a
		// signer's certificate carried twice): the second one is a
		// certificate of the bag like any other.
		twin := *leaf
		bags["leaf-twice"] = []*x509.Certificate{pki.issuers[string(leaf.Raw)], &twin}
		for bagName, bag := range bags {
			for _, at := range cacheTimes {
				combos = append(combos, &combo{name: fmt.Sprintf("%s/%s/%s", leafName, bagName, at.Format("2006")),
					leaf: leaf, bag: append([]*x509.Certificate{leaf}, bag...), at: at})
			}
		}
	}
	places := func(chain, bag []*x509.Certificate) []int {
		var out []int
		for _, c := range chain {
			out = append(out, slices.Index(bag, c))
		}
		return out
	}
	for _, c := range combos {
		chain, err := cold.verifyChain(c.leaf, c.bag, c.at, quietStory())
		c.places = places(chain, c.bag)
		if err != nil {
			c.detail = string(ReasonOf(err)) + ": " + err.Error()
		}
	}
	warm, reversed := pki.pipeline(t), pki.pipeline(t)
	for pass := range 4 {
		p, order := warm, combos
		if pass%2 == 1 {
			p, order = reversed, slices.Clone(combos)
			slices.Reverse(order)
		}
		for _, c := range order {
			// The bag's certificates as another message would carry
			// them: the same bytes, other pointers where the cold run
			// had its own.
			chain, err := p.verifyChain(c.leaf, c.bag, c.at, quietStory())
			detail := ""
			if err != nil {
				detail = string(ReasonOf(err)) + ": " + err.Error()
			}
			if detail != c.detail {
				t.Errorf("pass %d, %s: %s, full verification says %s", pass, c.name, detail, c.detail)
			}
			if got := places(chain, c.bag); !slices.Equal(got, c.places) {
				t.Errorf("pass %d, %s: chain %v (places %v), full verification gives places %v", pass, c.name, chainNames(chain), got, c.places)
			}
		}
	}
	if warm.chains.verdicts.Len() == 0 {
		t.Fatal("no chain verdict was kept")
	}
	// A verdict is kept for the usual chain, and not for a chain a root
	// of the same name as another could enter.
	// (one per leaf: the last chain verified for it).
	ok := pki.leaves["ok"]
	if _, err := warm.verifyChain(ok, []*x509.Certificate{ok, pki.certs["inter"]}, cacheTimes[2], quietStory()); err != nil {
		t.Fatal(err)
	}
	if warm.chains.get(ok, []*x509.Certificate{pki.certs["inter"]}, cacheTimes[2]) == nil {
		t.Error("no verdict kept for the usual chain")
	}
	twinRoot := pki.leaves["by-twin-root"]
	if _, kept := warm.chains.verdicts.Get(twinRoot.Raw); kept {
		t.Error("a verdict was kept for a chain under a root whose name another root has")
	}
}

// validityPKI is a root, an intermediate and a leaf with the validity
// periods given, and a pipeline trusting the root.
type validityPKI struct {
	root, inter, leaf *x509.Certificate
	roots             *x509.CertPool
}

func newValidityPKI(t *testing.T, root, inter, leaf [2]time.Time) *validityPKI {
	t.Helper()
	key := func() crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	issue := func(cn string, period [2]time.Time, ca bool, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: period[0], NotAfter: period[1], BasicConstraintsValid: true, IsCA: ca,
		}
		if ca {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
			tmpl.EmailAddresses = []string{"valid@example.com"}
		}
		c, err := testcorpus.Issue(tmpl, parent, pub, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, interKey := key(), key()
	p := &validityPKI{roots: x509.NewCertPool()}
	p.root = issue("Validity Root", root, true, nil, rootKey.Public(), rootKey)
	p.inter = issue("Validity Inter", inter, true, p.root, interKey.Public(), rootKey)
	p.leaf = issue("Validity Leaf", leaf, false, p.inter, key().Public(), interKey)
	p.roots.AddCert(p.root)
	return p
}

// A kept chain is not reused at a time outside the validity of any of its
// certificates, before its NotBefore or after its NotAfter, to the
// nanosecond; and it is reused again once the time is back inside.
func TestChainCacheValidity(t *testing.T) {
	d := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	wide := [2]time.Time{d(2020, 1), d(2040, 1)}
	late := [2]time.Time{d(2025, 6), d(2040, 1)}  // not yet valid in January 2025
	short := [2]time.Time{d(2020, 1), d(2027, 1)} // expired in 2028
	cached := d(2026, 6)
	for _, tc := range []struct {
		name              string
		root, inter, leaf [2]time.Time
		at                time.Time
		edge              time.Time // the boundary crossed
	}{
		{"leaf not yet valid", wide, wide, late, d(2025, 1), late[0]},
		{"leaf expired", wide, wide, short, d(2028, 1), short[1]},
		{"intermediate not yet valid", wide, late, wide, d(2025, 1), late[0]},
		{"intermediate expired", wide, short, wide, d(2028, 1), short[1]},
		{"root not yet valid", late, wide, wide, d(2025, 1), late[0]},
		{"root expired", short, wide, wide, d(2028, 1), short[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pki := newValidityPKI(t, tc.root, tc.inter, tc.leaf)
			warm, err := New(Options{Roots: pki.roots, LookupTXT: lookupNone})
			if err != nil {
				t.Fatal(err)
			}
			bag := []*x509.Certificate{pki.leaf, pki.inter}
			for range 2 { // kept from the second time (gencache.NewSeenTwice)
				if _, err := warm.verifyChain(pki.leaf, bag, cached, quietStory()); err != nil {
					t.Fatalf("at %s: %v", cached, err)
				}
			}
			if warm.chains.get(pki.leaf, bag[1:], cached) == nil {
				t.Fatal("the chain was not kept")
			}
			times := []time.Time{tc.at, tc.edge.Add(-time.Nanosecond), tc.edge, tc.edge.Add(time.Nanosecond), cached}
			rejected := 0
			for _, at := range times {
				cold, _ := New(Options{Roots: pki.roots, LookupTXT: lookupNone, Reference: true})
				for _, check := range []struct {
					name string
					run  func(p *Pipeline) ([]*x509.Certificate, error)
				}{
					{"verifyChain", func(p *Pipeline) ([]*x509.Certificate, error) {
						return p.verifyChain(pki.leaf, bag, at, quietStory())
					}},
					// The path alone (as for an encryption certificate,
					// whose own validity enccert.go checks first).
					{"verifyPath", func(p *Pipeline) ([]*x509.Certificate, error) {
						return p.verifyPath(pki.leaf, bag, at, quietStory())
					}},
				} {
					want, wantErr := check.run(cold)
					got, gotErr := check.run(warm)
					if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !sameChain(got, want) {
						t.Errorf("%s at %s: %v %s; full verification: %v %s", check.name, at.Format(time.RFC3339Nano),
							gotErr, chainNames(got), wantErr, chainNames(want))
					}
					if wantErr != nil {
						rejected++
					}
				}
			}
			if rejected == 0 {
				t.Fatal("no time was outside the validity: the test is wrong")
			}
			if warm.chains.get(pki.leaf, bag[1:], cached) == nil {
				t.Error("the chain kept is not reused at the time it was verified at")
			}
		})
	}
}

// A kept chain is only reused for the same usable certificates: another
// bag (none, another intermediate, the same in another order or with one
// more, a weak one) is verified afresh.
func TestChainCacheOtherBag(t *testing.T) {
	pki := newCachePKI(t)
	warm := pki.pipeline(t)
	leaf := pki.leaves["ok"]
	at := cacheTimes[2]
	inter := pki.certs["inter"]
	if _, err := warm.verifyChain(leaf, []*x509.Certificate{leaf, inter}, at, quietStory()); err != nil {
		t.Fatal(err)
	}
	for name, bag := range map[string][]*x509.Certificate{
		"no intermediate":    {leaf},
		"the twin instead":   {leaf, pki.certs["inter-twin"]},
		"the cross instead":  {leaf, pki.certs["inter-cross"]},
		"twin first":         {leaf, pki.certs["inter-twin"], inter},
		"an unrelated CA":    {leaf, inter, pki.certs["inter-eku"]},
		"an unrelated alone": {leaf, pki.certs["inter-eku"]},
	} {
		cold, _ := New(Options{Roots: pki.roots, LookupTXT: lookupNone, Reference: true})
		want, wantErr := cold.verifyChain(leaf, bag, at, quietStory())
		if warm.chains.get(leaf, slices.DeleteFunc(slices.Clone(bag), func(c *x509.Certificate) bool { return c == leaf }), at) != nil {
			t.Errorf("%s: the chain kept for another bag would be reused", name)
		}
		got, gotErr := warm.verifyChain(leaf, bag, at, quietStory())
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !sameChain(got, want) {
			t.Errorf("%s: %v %s; full verification: %v %s", name, gotErr, chainNames(got), wantErr, chainNames(want))
		}
	}
}

// Failures are never kept: a chain that does not verify is verified again
// every time.
func TestChainCacheKeepsNoFailure(t *testing.T) {
	pki := newCachePKI(t)
	p := pki.pipeline(t)
	for _, name := range []string{"by-untrusted", "server-auth", "by-not-ca", "by-nc-bad"} {
		leaf := pki.leaves[name]
		bag := []*x509.Certificate{leaf, pki.issuers[string(leaf.Raw)]}
		for range 2 {
			if _, err := p.verifyChain(leaf, bag, cacheTimes[2], quietStory()); err == nil {
				t.Fatalf("%s verified", name)
			}
		}
		if _, kept := p.chains.verdicts.Get(leaf.Raw); kept {
			t.Errorf("%s: a failure was kept", name)
		}
	}
}

// A stream of new certificates (a hostile sender minting one per message,
// each sent twice so that it is kept) keeps the caches within their
// bounds, and a known sender who keeps writing stays known, with the right
// verdict.
func TestKnownCachesHostileFlood(t *testing.T) {
	pki := newCachePKI(t)
	p := pki.pipeline(t)
	// The pipeline's caches as New makes them; parse through them as the
	// CMS fast path does.
	at := cacheTimes[2]
	inter, interKey := pki.certs["inter"], pki.keys["inter"]
	known := pki.leaves["ok"]
	// Two messages: a sender is kept from its second (NewSeenTwice).
	var knownParsed *x509.Certificate
	for range 2 {
		var err error
		if knownParsed, err = p.certs.parse(known.Raw, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.verifyChain(knownParsed, []*x509.Certificate{knownParsed, inter}, at, quietStory()); err != nil {
			t.Fatal(err)
		}
	}
	hostileKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := max(maxKnownLeaves, maxChainVerdicts) + 100
	issue := func(i int) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(1000 + i)), Subject: pkix.Name{CommonName: fmt.Sprintf("hostile %d", i)},
			NotBefore: known.NotBefore, NotAfter: known.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			EmailAddresses: []string{fmt.Sprintf("hostile%d@example.com", i)},
		}
		c, err := testcorpus.Issue(tmpl, inter, hostileKey.Public(), interKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Most of the flood: one certificate with its signature's last bytes
	// changed, another certificate for the caches (which key by the
	// bytes), minted without the cost of signing.
	template := issue(0).Raw
	for i := range n {
		der := bytes.Clone(template)
		der[len(der)-1], der[len(der)-2], der[len(der)-3] = byte(i), byte(i>>8), byte(i>>16)
		if i%100 == 0 {
			der = issue(i).Raw
		}
		// Each certificate twice, so that the caches keep it
		// (NewSeenTwice keeps nothing of a certificate seen once).
		for range 2 {
			parsed, err := p.certs.parse(der, nil)
			if err != nil {
				t.Fatal(err)
			}
			if i%100 == 0 {
				// Through the whole chain check now and then; else
				// the verdict it would keep.
				if _, err := p.verifyChain(parsed, []*x509.Certificate{parsed, inter}, at, quietStory()); err != nil {
					t.Fatalf("hostile %d: %v", i, err)
				}
			} else {
				p.chains.put(p.links.rootSubjects, parsed, []*x509.Certificate{inter}, []*x509.Certificate{parsed, inter, pki.certs["root"]}, at)
			}
		}
		if i%100 == 0 {
			// The known sender writes too.
			again, err := p.certs.parse(known.Raw, nil)
			if err != nil || again != knownParsed {
				t.Fatalf("after %d new certificates, the known sender's certificate was parsed again", i)
			}
			if p.chains.get(again, []*x509.Certificate{inter}, at) == nil {
				t.Fatalf("after %d new certificates, the known sender's chain was dropped", i)
			}
			if _, err := p.verifyChain(again, []*x509.Certificate{again, inter}, at, quietStory()); err != nil {
				t.Fatal(err)
			}
		}
		if i%1000 == 0 || i == n-1 {
			if l, b := p.certs.leaves.Len(), p.certs.leaves.Bytes(); l > maxKnownLeaves || b > maxKnownLeafBytes {
				t.Fatalf("after %d new certificates: %d certificates of %d bytes kept, over the bounds %d, %d", i+1, l, b, maxKnownLeaves, maxKnownLeafBytes)
			}
			if l, b := p.chains.verdicts.Len(), p.chains.verdicts.Bytes(); l > maxChainVerdicts || b > maxChainVerdictBytes {
				t.Fatalf("after %d new certificates: %d chains of %d bytes kept, over the bounds %d, %d", i+1, l, b, maxChainVerdicts, maxChainVerdictBytes)
			}
		}
	}
	if _, ok := p.certs.leaves.Get(knownParsed.Raw); !ok {
		t.Error("the known sender's certificate was dropped")
	}
}

func lookupNone(context.Context, string) ([]string, error) { return nil, nil }

// A signer's certificate carried twice in one CMS is parsed into two
// certificates, as without the cache; the first is the one kept.
func TestCertCacheLeafTwiceInOneBag(t *testing.T) {
	pki := newCachePKI(t)
	p := pki.pipeline(t)
	leaf := pki.leaves["ok"]
	once, err := p.certs.parse(leaf.Raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Kept from the second time it is seen (gencache.NewSeenTwice).
	first, err := p.certs.parse(leaf.Raw, nil)
	if err != nil || first == once {
		t.Fatalf("a certificate seen once was kept: %v", err)
	}
	again, err := p.certs.parse(leaf.Raw, nil)
	if err != nil || again != first {
		t.Fatalf("a known certificate was parsed again: %p, %p", again, first)
	}
	second, err := p.certs.parse(leaf.Raw, []*x509.Certificate{first})
	if err != nil || second == first || !bytes.Equal(second.Raw, first.Raw) {
		t.Fatalf("the second copy in one bag: %p (first %p), %v", second, first, err)
	}
	if third, _ := p.certs.parse(leaf.Raw, nil); third != first {
		t.Error("the copy replaced the certificate kept")
	}
	// The zero certCache (and so the reference path's) keeps no leaf.
	var zero certCache
	a, _ := zero.parse(leaf.Raw, nil)
	if b, _ := zero.parse(leaf.Raw, nil); a == b {
		t.Error("a certCache without leaves kept a leaf")
	}
}

// The reference path keeps nothing of a sender.
func TestReferencePathKeepsNothing(t *testing.T) {
	pki := newCachePKI(t)
	p, err := New(Options{Roots: pki.roots, LookupTXT: lookupNone, Reference: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := pki.leaves["ok"]
	bag := []*x509.Certificate{leaf, pki.certs["inter"]}
	for range 2 {
		if _, err := p.verifyChain(leaf, bag, cacheTimes[2], quietStory()); err != nil {
			t.Fatal(err)
		}
	}
	if p.chains.verdicts != nil || p.certs.leaves != nil || p.stories.leaves != nil || p.dkimKeys != nil {
		t.Error("the reference pipeline has caches of senders")
	}
}
