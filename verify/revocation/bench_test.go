package revocation

import (
	"crypto/x509"
	"testing"
)

// The warm path, what --revocation costs a message whose statuses are
// kept: from memory (a certificate seen before by this process), and from
// the cache folder (seen by another process, as by each new scan).
//
//	go test -run '^$' -bench . ./verify/revocation/
func BenchmarkCheckChainWarm(b *testing.B) {
	p := newPKI(b)
	dir := b.TempDir()
	leaves := make([]chainOf, 1000)
	warm := newChecker(b, dir, CheckerOptions{})
	for i := range leaves {
		leaves[i] = chainOf(p.chain(p.leaf(b, nil, nil)))
		if r := checkChain(warm, leaves[i], at); r.Status != Good {
			b.Fatal(r)
		}
	}
	b.Run("memory", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if r := checkChain(warm, leaves[i%len(leaves)], at); r.Status != Good || !r.Cached {
				b.Fatal(r)
			}
		}
	})
	b.Run("folder", func(b *testing.B) {
		var c *Checker
		for i := 0; b.Loop(); i++ {
			if i%len(leaves) == 0 {
				b.StopTimer()
				c = newChecker(b, dir, CheckerOptions{}) // an empty memory
				b.StartTimer()
			}
			if r := checkChain(c, leaves[i%len(leaves)], at); r.Status != Good || !r.Cached {
				b.Fatal(r)
			}
		}
	})
}

type chainOf = []*x509.Certificate
