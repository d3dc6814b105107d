package rsaverify

import (
	"crypto"
	_ "crypto/md5" // digest with crypto.MD5
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // digest with crypto.SHA1
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
)

// testKey is an RSA key made here, with math/big, so that its exponent
// can be any (crypto/rsa generates 65537 only) and its signatures are made
// without crypto/rsa, the implementation under comparison.
type testKey struct {
	pub  *rsa.PublicKey
	d    *big.Int
	p, q *big.Int
	// dP, dQ and qInv sign by the Chinese remainder theorem (RFC 8017
	// §5.1.2): four times as fast as with d.
	dP, dQ, qInv *big.Int
}

// newKey returns the key of n = pq, e and d, its CRT values computed.
func newKey(p, q *big.Int, e int, d *big.Int) testKey {
	one := big.NewInt(1)
	return testKey{
		pub:  &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: e},
		d:    d,
		p:    p,
		q:    q,
		dP:   new(big.Int).Mod(d, new(big.Int).Sub(p, one)),
		dQ:   new(big.Int).Mod(d, new(big.Int).Sub(q, one)),
		qInv: new(big.Int).ModInverse(q, p),
	}
}

// newTestKey returns a key of exactly bits bits with exponent e.
func newTestKey(bits, e int) testKey {
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			panic(err)
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			panic(err)
		}
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if d == nil {
			continue
		}
		return newKey(p, q, e, d)
	}
}

// sign returns em^d mod n, k bytes long: em is signed as it is, whatever
// its padding.
func (k testKey) sign(em []byte) []byte {
	c := new(big.Int).SetBytes(em)
	m1 := new(big.Int).Exp(c, k.dP, k.p)
	m2 := new(big.Int).Exp(c, k.dQ, k.q)
	h := m1.Sub(m1, m2)
	h.Mul(h, k.qInv).Mod(h, k.p)
	s := h.Mul(h, k.q).Add(h, m2)
	return s.FillBytes(make([]byte, k.pub.Size()))
}

// signPKCS1v15 returns the PKCS #1 v1.5 signature of hashed, a digest with
// hash.
func (k testKey) signPKCS1v15(hash crypto.Hash, hashed []byte) []byte {
	prefix, ok := hashPrefix(hash)
	if !ok {
		panic("no prefix for " + hash.String())
	}
	em, ok := encodePKCS1v15(k.pub.Size(), prefix, hashed)
	if !ok {
		panic("key too short")
	}
	return k.sign(em)
}

// testKeySizes are the sizes and exponents of testKeys.
var testKeySizes = []struct{ bits, e int }{
	{2048, 65537},
	{1024, 65537},
	{1025, 3},
	{1536, 65537},
	{2047, 17},
	{2049, 1<<31 - 1}, // a prime: any φ without it as a factor
	{3072, 65537},
	{4096, 65537},
	{4103, 3},
	{2048, 65537}, // second keys of the usual sizes, for BenchmarkVerify's misses
	{4096, 65537},
}

// testKeys are read from testdata/keys.txt, made by
// TestWriteKeys (primes of 2,048 bits take seconds on a loaded machine):
// one key a line, p, q, e and d in hexadecimal.
var testKeys = sync.OnceValue(func() []testKey {
	text, err := os.ReadFile("testdata/keys.txt")
	if err != nil {
		panic(err)
	}
	var keys []testKey
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var p, q, d big.Int
		var e int
		if _, err := fmt.Sscanf(line, "%x %x %x %x", &p, &q, &e, &d); err != nil {
			panic(fmt.Sprintf("testdata/keys.txt: %q: %v", line, err))
		}
		keys = append(keys, newKey(&p, &q, e, &d))
	}
	return keys
})

func digest(hash crypto.Hash, data []byte) []byte {
	switch hash {
	case crypto.SHA256:
		h := sha256.Sum256(data)
		return h[:]
	case crypto.SHA384:
		h := sha512.Sum384(data)
		return h[:]
	case crypto.SHA512:
		h := sha512.Sum512(data)
		return h[:]
	}
	h := hash.New()
	h.Write(data)
	return h.Sum(nil)
}
