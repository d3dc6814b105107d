package verify_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"math/big"
	"sync"
	"testing"
)

// multiPrimeKey is an RSA signing key of any size that is cheap to make: its
// modulus is the product of many 256-bit primes (multi-prime RSA, RFC 8017
// §3), so a 16,384-bit key takes about a second under -race where a
// two-prime one takes minutes. The public key is an ordinary one, N and e,
// which nobody can tell from a two-prime key without factoring N; its
// signatures are ordinary PKCS #1 v1.5 signatures.
//
// It signs with math/big, by the Chinese remainder theorem over the primes:
// crypto/rsa refuses keys under 1,024 bits, and signs with a multi-prime
// key (deprecated) by one full-size exponentiation, seconds for the
// largest. For tests only: not constant time.
type multiPrimeKey struct {
	pub    *rsa.PublicKey
	primes []*big.Int
	exps   []*big.Int // e⁻¹ mod (p-1), per prime
	coeffs []*big.Int // (N/p)·((N/p)⁻¹ mod p), per prime
}

var multiPrimeKeys struct {
	sync.Mutex
	m map[[2]int]*multiPrimeKey
}

// newMultiPrimeKey returns a key whose modulus has exactly bits bits, with
// public exponent e; one per size and exponent in a test binary (the
// largest takes seconds under -race).
func newMultiPrimeKey(t testing.TB, bits, e int) *multiPrimeKey {
	t.Helper()
	multiPrimeKeys.Lock()
	defer multiPrimeKeys.Unlock()
	if k := multiPrimeKeys.m[[2]int{bits, e}]; k != nil {
		return k
	}
	if multiPrimeKeys.m == nil {
		multiPrimeKeys.m = map[[2]int]*multiPrimeKey{}
	}
	k := generateMultiPrimeKey(t, bits, e)
	multiPrimeKeys.m[[2]int{bits, e}] = k
	return k
}

func generateMultiPrimeKey(t testing.TB, bits, e int) *multiPrimeKey {
	t.Helper()
	const primeBits = 256
	bigE := big.NewInt(int64(e))
	prime := func(bits int) *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, bits)
			if err != nil {
				t.Fatal(err)
			}
			// e must be invertible modulo p-1.
			if new(big.Int).GCD(nil, nil, bigE, new(big.Int).Sub(p, big.NewInt(1))).Cmp(big.NewInt(1)) == 0 {
				return p
			}
		}
	}
	for {
		k := &multiPrimeKey{}
		n := big.NewInt(1)
		for len(k.primes) == 0 || n.BitLen() <= bits-2*primeBits {
			p := prime(primeBits)
			k.primes = append(k.primes, p)
			n.Mul(n, p)
		}
		// The last prime makes the size exact (or the attempt is repeated).
		p := prime(bits - n.BitLen())
		k.primes = append(k.primes, p)
		n.Mul(n, p)
		if n.BitLen() != bits || !distinct(k.primes) {
			continue
		}
		k.pub = &rsa.PublicKey{N: n, E: e}
		for _, p := range k.primes {
			pm1 := new(big.Int).Sub(p, big.NewInt(1))
			k.exps = append(k.exps, new(big.Int).ModInverse(bigE, pm1))
			m := new(big.Int).Div(n, p)
			inv := new(big.Int).ModInverse(new(big.Int).Mod(m, p), p)
			k.coeffs = append(k.coeffs, m.Mul(m, inv))
		}
		return k
	}
}

func distinct(ps []*big.Int) bool {
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.String()] {
			return false
		}
		seen[p.String()] = true
	}
	return true
}

func (k *multiPrimeKey) Public() crypto.PublicKey { return k.pub }

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017
// §9.2, note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// Sign makes an RSASSA-PKCS1-v1_5 signature of a SHA-256 digest (RFC 8017
// §8.2.1, §9.2).
func (k *multiPrimeKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != 32 {
		return nil, errors.New("multiPrimeKey signs SHA-256 digests only")
	}
	size := (k.pub.N.BitLen() + 7) / 8
	t := append(append([]byte(nil), sha256DigestInfo...), digest...)
	if size < len(t)+11 {
		return nil, errors.New("multiPrimeKey: modulus too short")
	}
	em := make([]byte, size) // 0x00 0x01 PS 0x00 T
	em[1] = 1
	for i := 2; i < size-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(t):], t)
	m := new(big.Int).SetBytes(em)
	s := new(big.Int)
	for i, p := range k.primes {
		si := new(big.Int).Exp(new(big.Int).Mod(m, p), k.exps[i], p)
		s.Add(s, si.Mul(si, k.coeffs[i]))
	}
	s.Mod(s, k.pub.N)
	// The signature must undo: s^e = m (mod N).
	if new(big.Int).Exp(s, big.NewInt(int64(k.pub.E)), k.pub.N).Cmp(m) != 0 {
		return nil, errors.New("multiPrimeKey: signature does not verify")
	}
	return s.FillBytes(make([]byte, size)), nil
}
