package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"testing"
)

// BenchmarkVerify compares one RSA PKCS #1 v1.5 SHA-256 verification by
// crypto/rsa (stdlib) with one by a Verifier that keeps the key (kept) and
// one whose key is not kept yet (miss: a Verifier that keeps one key,
// verifying with two in turn).
func BenchmarkVerify(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		key := newTestKey(bits, 65537)
		other := newTestKey(bits, 65537)
		hashed := digest(crypto.SHA256, []byte("benchmark"))
		sig := key.signPKCS1v15(crypto.SHA256, hashed)
		otherSig := other.signPKCS1v15(crypto.SHA256, hashed)
		name := map[int]string{2048: "RSA2048", 4096: "RSA4096"}[bits]
		b.Run(name+"/stdlib", func(b *testing.B) {
			for b.Loop() {
				if err := rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, hashed, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/kept", func(b *testing.B) {
			v := New(Options{})
			for b.Loop() {
				if err := v.VerifyPKCS1v15(key.pub, crypto.SHA256, hashed, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/miss", func(b *testing.B) {
			v := New(Options{MaxKeys: 1})
			i := 0
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
	}
}
