package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"testing"

	"github.com/certharvest/certharvest/internal/cputime"
)

// cpuPerOp reports the CPU time of the benchmark's loop per operation
// (cputime.Process, the process's, GC included) beside the wall time: on
// the shared 2-core machine wall time varies by tens of percent with the
// load, CPU time far less.
func cpuPerOp(b *testing.B, loop func()) {
	start := cputime.Process()
	loop()
	b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkVerify compares one RSA PKCS #1 v1.5 SHA-256 verification by
// crypto/rsa (stdlib) with one by a Verifier that keeps the key (kept) and
// one whose key is not kept yet (miss: a Verifier that keeps one key,
// verifying with two in turn).
func BenchmarkVerify(b *testing.B) {
	keys := testKeys()
	// testdata's keys, two of each size, e = 65537.
	benchKeys := map[int][2]testKey{2048: {keys[0], keys[9]}, 4096: {keys[7], keys[10]}}
	for _, bits := range []int{2048, 4096} {
		key, other := benchKeys[bits][0], benchKeys[bits][1]
		hashed := digest(crypto.SHA256, []byte("benchmark"))
		sig := key.signPKCS1v15(crypto.SHA256, hashed)
		otherSig := other.signPKCS1v15(crypto.SHA256, hashed)
		name := fmt.Sprintf("key=RSA%d", bits)
		b.Run(name+"/impl=stdlib", func(b *testing.B) {
			cpuPerOp(b, func() {
				for b.Loop() {
					if err := rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, hashed, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(name+"/impl=kept", func(b *testing.B) {
			v := New(Options{})
			cpuPerOp(b, func() {
				for b.Loop() {
					if err := v.VerifyPKCS1v15(key.pub, crypto.SHA256, hashed, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(name+"/impl=miss", func(b *testing.B) {
			v := New(Options{MaxKeys: 1})
			i := 0
			cpuPerOp(b, func() {
				for b.Loop() {
					k, s := key, sig
					if i++; i%2 == 0 {
						k, s = other, otherSig
					}
					if err := v.VerifyPKCS1v15(k.pub, crypto.SHA256, hashed, s); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
