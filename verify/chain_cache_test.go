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
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The link cache must never change a verdict or a chain: every combination
// of signer, certificate bag and verification time below is verified by a
// fresh pipeline (no cached link) and by one pipeline that has seen all of
// them before, and the two must agree exactly.
func TestLinkCacheAgreesWithFullVerification(t *testing.T) {
	pki := newCachePKI(t)
	warm := warmPipeline(t, pki)
	type combo struct {
		name   string
		leaf   *x509.Certificate
		bag    []*x509.Certificate
		at     time.Time
		reason Reason // from the cold pipeline
		detail string
		chain  []*x509.Certificate
	}
	var combos []*combo
	for _, leafName := range pki.leafOrder {
		leaf := pki.leaves[leafName]
		for bagName, bag := range pki.bags(leaf) {
			for _, at := range cacheTimes {
				combos = append(combos, &combo{name: fmt.Sprintf("%s/%s/%s", leafName, bagName, at.Format("2006")),
					leaf: leaf, bag: append([]*x509.Certificate{leaf}, bag...), at: at})
			}
		}
	}
	for _, c := range combos {
		chain, err := pki.pipeline(t).verifyChain(c.leaf, c.bag, c.at, quietStory())
		c.reason, c.chain = ReasonOf(err), chain
		if err != nil {
			c.detail = err.Error()
		}
	}
	// One warm pipeline sees the combinations in order, another in reverse
	// order (so links are learnt at other times), each twice.
	reversed := warmPipeline(t, pki)
	accepted := 0
	for pass := range 4 {
		p, order := warm, combos
		if pass%2 == 1 {
			p, order = reversed, slices.Clone(combos)
			slices.Reverse(order)
		}
		for _, c := range order {
			chain, err := p.verifyChain(c.leaf, c.bag, c.at, quietStory())
			detail := ""
			if err != nil {
				detail = err.Error()
			}
			if ReasonOf(err) != c.reason || detail != c.detail {
				t.Errorf("pass %d, %s: %s (%s), full verification says %s (%s)", pass, c.name, ReasonOf(err), detail, c.reason, c.detail)
			}
			if !sameChain(chain, c.chain) {
				t.Errorf("pass %d, %s: chain %s, full verification gives %s", pass, c.name, chainNames(chain), chainNames(c.chain))
			}
			if err == nil && pass == 0 {
				accepted++
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no combination verifies: the test PKI is wrong")
	}

	// The cache must have been used: the plain chain verifies from it.
	warm.links.mu.RLock()
	n := len(warm.links.links)
	warm.links.mu.RUnlock()
	if n == 0 {
		t.Fatal("no link was learnt")
	}
	leaf := pki.leaves["ok"]
	if chain := warm.links.verify(pki.roots, leaf, []*x509.Certificate{pki.certs["inter"]}, cacheTimes[2]); len(chain) != 3 {
		t.Fatalf("a learnt link was not used: %s", chainNames(chain))
	}
	// Links that could depend on the signer are not learnt.
	for _, name := range []string{"inter-policy", "inter-nc-root", "inter-twin-root", "inter-eku-root"} {
		warm.links.mu.RLock()
		_, ok := warm.links.links[string(pki.certs[name].Raw)]
		warm.links.mu.RUnlock()
		if ok {
			t.Errorf("the link of %s was learnt", name)
		}
	}
}

func warmPipeline(t *testing.T, pki *cachePKI) *Pipeline { return pki.pipeline(t) }

// The cache is safe for concurrent use.
func TestLinkCacheConcurrent(t *testing.T) {
	pki := newCachePKI(t)
	p := pki.pipeline(t)
	leaf := pki.leaves["ok"]
	bag := []*x509.Certificate{leaf, pki.certs["inter"]}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := p.verifyChain(leaf, bag, cacheTimes[2], quietStory()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

var cacheTimes = []time.Time{
	time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC), // before everything
	time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC), // the old intermediate and the old leaf are valid
	time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), // the usual case
	time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC), // the short-lived roots have expired
	time.Date(2041, 6, 1, 0, 0, 0, 0, time.UTC), // after everything
}

func quietStory() *story { return &story{mu: new(sync.Mutex)} }

func sameChain(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

func chainNames(chain []*x509.Certificate) string {
	var names []string
	for _, c := range chain {
		names = append(names, c.Subject.CommonName)
	}
	return fmt.Sprint(names)
}

// cachePKI is a PKI with the shapes that could fool a link cache: roots
// that share a subject, a root with name constraints, a root whose extended
// key usage excludes email, intermediates that share a subject, a
// cross-certified intermediate, an intermediate with policy constraints,
// validity periods that end at different times.
type cachePKI struct {
	roots     *x509.CertPool
	certs     map[string]*x509.Certificate // CAs by name
	keys      map[string]crypto.Signer
	leaves    map[string]*x509.Certificate
	leafOrder []string
	issuers   map[string]*x509.Certificate // by the leaf's raw bytes
}

func (p *cachePKI) pipeline(t *testing.T) *Pipeline {
	t.Helper()
	pl, err := New(Options{
		Roots:     p.roots,
		LookupTXT: func(context.Context, string) ([]string, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// bags returns the certificate bags to try with a leaf (besides the leaf).
func (p *cachePKI) bags(leaf *x509.Certificate) map[string][]*x509.Certificate {
	issuer := p.issuers[string(leaf.Raw)]
	bags := map[string][]*x509.Certificate{
		"empty":        nil,
		"with-root":    {issuer, p.certs["root"]},
		"with-twin":    {p.certs["inter-twin"], issuer},
		"with-cross":   {issuer, p.certs["inter-cross"]},
		"cross-first":  {p.certs["inter-cross"], issuer},
		"with-old":     {p.certs["inter-old"], issuer},
		"unrelated-ca": {p.certs["inter-eku"], p.certs["inter-policy"]},
		"with-x":       {issuer, p.certs["inter-x"]},
	}
	bags["issuer"] = []*x509.Certificate{issuer}
	bags["issuer-twice"] = []*x509.Certificate{issuer, issuer}
	return bags
}

func newCachePKI(t *testing.T) *cachePKI {
	t.Helper()
	p := &cachePKI{roots: x509.NewCertPool(), certs: map[string]*x509.Certificate{},
		keys: map[string]crypto.Signer{}, leaves: map[string]*x509.Certificate{},
		issuers: map[string]*x509.Certificate{}}
	y := func(year int) time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC) }
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, parent string, key crypto.Signer) *x509.Certificate {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		var parentCert *x509.Certificate // self-signed
		parentKey := key
		if parent != "" {
			parentCert, parentKey = p.certs[parent], p.keys[parent]
		}
		c, err := testcorpus.Issue(tmpl, parentCert, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newKey := func() crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ca := func(name, cn, parent string, from, to int, key crypto.Signer, mod func(*x509.Certificate)) {
		if key == nil {
			key = newKey()
		}
		tmpl := &x509.Certificate{
			Subject:   pkix.Name{CommonName: cn, Organization: []string{"cache test"}},
			NotBefore: y(from), NotAfter: y(to),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true, IsCA: true,
		}
		if mod != nil {
			mod(tmpl)
		}
		p.certs[name], p.keys[name] = issue(tmpl, parent, key), key
	}
	ca("root", "Root One", "", 2020, 2040, nil, nil)
	ca("root-short", "Root Short", "", 2020, 2030, nil, nil)
	ca("root-eku", "Root EKU", "", 2020, 2040, nil, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	ca("root-nc", "Root NC", "", 2020, 2040, nil, func(c *x509.Certificate) {
		c.PermittedEmailAddresses = []string{"example.com"}
	})
	ca("root-twin-a", "Root Twin", "", 2020, 2040, nil, nil)
	ca("root-twin-b", "Root Twin", "", 2020, 2040, nil, nil)
	ca("untrusted", "Untrusted Root", "", 2020, 2040, nil, nil)
	// A root re-issued with the same key and subject, valid later.
	reissueKey := newKey()
	ca("root-reissue-a", "Root Reissue", "", 2020, 2030, reissueKey, nil)
	ca("root-reissue-b", "Root Reissue", "", 2025, 2045, reissueKey, nil)
	// A short-lived root whose key the main root also certified.
	xKey := newKey()
	ca("root-x", "Root X", "", 2020, 2025, xKey, nil)
	for _, r := range []string{"root", "root-short", "root-eku", "root-nc", "root-twin-a", "root-twin-b",
		"root-reissue-a", "root-reissue-b", "root-x"} {
		p.roots.AddCert(p.certs[r])
	}

	interKey := newKey()
	ca("inter", "Inter One", "root", 2020, 2035, interKey, func(c *x509.Certificate) { c.MaxPathLenZero = true })
	// Same subject and key, other issuer: a cross certificate.
	ca("inter-cross", "Inter One", "root-short", 2020, 2035, interKey, nil)
	// Same subject, other key.
	ca("inter-twin", "Inter One", "root", 2020, 2035, nil, nil)
	ca("inter-old", "Inter Old", "root", 2020, 2024, nil, nil)
	ca("inter-eku", "Inter EKU", "root", 2020, 2035, nil, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	ca("inter-nc", "Inter NC", "root", 2020, 2035, nil, func(c *x509.Certificate) {
		c.PermittedEmailAddresses = []string{"example.com"}
	})
	ca("inter-policy", "Inter Policy", "root", 2020, 2035, nil, func(c *x509.Certificate) {
		c.Policies = []x509.OID{mustOID(t, "1.2.3.4")}
		c.ExtraExtensions = append(c.ExtraExtensions, requireExplicitPolicyZero)
	})
	ca("inter-short-root", "Inter Short Root", "root-short", 2020, 2035, nil, nil)
	ca("inter-eku-root", "Inter EKU Root", "root-eku", 2020, 2035, nil, nil)
	ca("inter-nc-root", "Inter NC Root", "root-nc", 2020, 2035, nil, nil)
	ca("inter-twin-root", "Inter Twin Root", "root-twin-a", 2020, 2035, nil, nil)
	ca("inter-reissue", "Inter Reissue", "root-reissue-b", 2020, 2040, nil, nil)
	ca("inter-x", "Root X", "root", 2020, 2035, xKey, nil)
	ca("inter-untrusted", "Inter Untrusted", "untrusted", 2020, 2035, nil, nil)
	ca("inter-not-ca", "Inter Not CA", "root", 2020, 2035, nil, func(c *x509.Certificate) {
		c.IsCA = false
		c.KeyUsage = x509.KeyUsageDigitalSignature
	})

	leaf := func(name, parent, addr string, from, to int, mod func(*x509.Certificate)) {
		tmpl := &x509.Certificate{
			Subject:   pkix.Name{CommonName: name},
			NotBefore: y(from), NotAfter: y(to),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			EmailAddresses:        []string{addr},
			BasicConstraintsValid: true,
		}
		if mod != nil {
			mod(tmpl)
		}
		p.leaves[name] = issue(tmpl, parent, newKey())
		p.issuers[string(p.leaves[name].Raw)] = p.certs[parent]
		p.leafOrder = append(p.leafOrder, name)
	}
	leaf("ok", "inter", "a@example.com", 2020, 2030, nil)
	leaf("ok-2", "inter", "b@example.com", 2021, 2029, nil)
	leaf("ok-old", "inter", "c@example.com", 2020, 2022, nil)
	leaf("server-auth", "inter", "d@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	leaf("no-eku", "inter", "e@example.com", 2020, 2030, func(c *x509.Certificate) { c.ExtKeyUsage = nil })
	leaf("any-eku", "inter", "f@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	})
	leaf("other-domain", "inter", "g@example.org", 2020, 2030, nil)
	leaf("explicit-policy", "inter", "h@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, requireExplicitPolicyZero)
	})
	leaf("explicit-policy-ok", "inter", "h2@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.Policies = []x509.OID{mustOID(t, "1.2.3.4")}
		c.ExtraExtensions = append(c.ExtraExtensions, requireExplicitPolicyZero)
	})
	leaf("ca-leaf", "inter", "i@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.IsCA = true
		c.KeyUsage |= x509.KeyUsageCertSign
	})
	leaf("by-twin", "inter-twin", "j@example.com", 2020, 2030, nil)
	leaf("by-old", "inter-old", "k@example.com", 2020, 2030, nil)
	leaf("by-eku", "inter-eku", "l@example.com", 2020, 2030, nil)
	leaf("by-nc-ok", "inter-nc", "m@example.com", 2020, 2030, nil)
	leaf("by-nc-bad", "inter-nc", "n@example.org", 2020, 2030, nil)
	leaf("by-policy", "inter-policy", "o@example.com", 2020, 2030, func(c *x509.Certificate) {
		c.Policies = []x509.OID{mustOID(t, "1.2.3.4")}
	})
	leaf("by-policy-none", "inter-policy", "p@example.com", 2020, 2030, nil)
	// Valid after its root expires.
	leaf("by-short-root", "inter-short-root", "q@example.com", 2020, 2035, nil)
	leaf("by-eku-root", "inter-eku-root", "r@example.com", 2020, 2030, nil)
	leaf("by-nc-root-ok", "inter-nc-root", "s@example.com", 2020, 2030, nil)
	leaf("by-nc-root-bad", "inter-nc-root", "t@example.org", 2020, 2030, nil)
	leaf("by-twin-root", "inter-twin-root", "u@example.com", 2020, 2030, nil)
	leaf("by-untrusted", "inter-untrusted", "v@example.com", 2020, 2030, nil)
	leaf("by-not-ca", "inter-not-ca", "w@example.com", 2020, 2030, nil)
	leaf("by-reissue", "inter-reissue", "y@example.com", 2020, 2040, nil)
	leaf("by-x", "inter-x", "z@example.com", 2020, 2030, nil)
	leaf("by-root", "root", "x@example.com", 2020, 2030, nil)
	// An end-entity certificate that is itself in the trust bundle.
	leaf("trusted-leaf", "inter", "trusted@example.com", 2020, 2030, nil)
	p.roots.AddCert(p.leaves["trusted-leaf"])
	return p
}

// requireExplicitPolicyZero is a policy constraints extension (RFC 5280
// §4.2.1.11) with requireExplicitPolicy 0, which x509.CreateCertificate
// does not write from the template fields.
var requireExplicitPolicyZero = pkix.Extension{
	Id: asn1.ObjectIdentifier{2, 5, 29, 36}, Critical: true,
	Value: []byte{0x30, 0x03, 0x80, 0x01, 0x00},
}

func mustOID(t *testing.T, s string) x509.OID {
	t.Helper()
	oid, err := x509.ParseOID(s)
	if err != nil {
		t.Fatal(err)
	}
	return oid
}
