package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// sameAnswer fails t unless got, from a Verifier, is what crypto/rsa
// answered (want): both nil, or the same text, and rsa.ErrVerification
// itself where crypto/rsa's is.
func sameAnswer(t *testing.T, what string, want, got error) {
	t.Helper()
	switch {
	case (want == nil) != (got == nil):
		t.Fatalf("%s: crypto/rsa: %v, Verifier: %v", what, want, got)
	case want == nil:
	case want.Error() != got.Error():
		t.Fatalf("%s: crypto/rsa: %q, Verifier: %q", what, want, got)
	case errors.Is(want, rsa.ErrVerification) != errors.Is(got, rsa.ErrVerification):
		t.Fatalf("%s: crypto/rsa's error is rsa.ErrVerification: %v, the Verifier's: %v", what, errors.Is(want, rsa.ErrVerification), errors.Is(got, rsa.ErrVerification))
	}
}

// fuzzHashes are the hashes a fuzzed call verifies with: the fast path's
// three, and others crypto/rsa takes, which the Verifier passes on.
var fuzzHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1, crypto.MD5, crypto.SHA224, 0}

// The ways FuzzDifferential makes a signature from its input.
const (
	sigValid       = iota // the signature of the digest
	sigBitFlip            // the signature of the digest, one bit flipped
	sigRaw                // the input's bytes
	sigZero               // k zero bytes
	sigModulusPlus        // n + the input's first byte (s ≥ n)
	sigAllOnes            // k 0xff bytes
	sigLength             // the signature, a byte longer or shorter
	sigOtherHash          // valid for the digest with another hash's prefix
	sigPadding            // the digest's encoding with one byte changed, signed
	sigRawEncoding        // the input as the encoded message, signed
	sigOddKey             // the input's bytes as the modulus, any exponent
	sigWays
)

// FuzzDifferential checks a Verifier against crypto/rsa: for keys of 1,024
// to 4,103 bits with exponents 3, 17, 65537 and 2³¹-1 (and moduli and
// exponents made from the input, valid or not), the fast path's hashes and
// others, valid signatures and mutated ones, the verdict and the error are
// the same. The Verifier keeps three keys, so that both kept keys and
// evictions are exercised, and every call is made twice (the second finds
// the key kept).
func FuzzDifferential(f *testing.F) {
	for way := range sigWays {
		f.Add(uint8(0), uint8(0), uint8(way), uint16(7), []byte("a message"))
		f.Add(uint8(way), uint8(way), uint8(way), uint16(300), make([]byte, 300))
	}
	f.Add(uint8(2), uint8(1), uint8(sigOddKey), uint16(3), append([]byte{0xc5}, make([]byte, 200)...))
	f.Add(uint8(5), uint8(2), uint8(sigOddKey), uint16(65535), append(make([]byte, 129), 1))
	keys := testKeys()
	v := New(Options{MaxKeys: 3})
	f.Fuzz(func(t *testing.T, keyIndex, hashIndex, way uint8, pos uint16, data []byte) {
		if len(data) > 1100 {
			data = data[:1100] // keys of 8,800 bits at most
		}
		key := keys[int(keyIndex)%len(keys)]
		hash := fuzzHashes[int(hashIndex)%len(fuzzHashes)]
		var hashed []byte
		if hash != 0 {
			hashed = digest(hash, data)
		} else {
			hashed = data
		}
		if pos%97 == 0 && len(hashed) > 0 {
			hashed = hashed[:len(hashed)-1] // not a digest of hash
		}
		pub := key.pub
		k := pub.Size()
		signed := hashPrefixes[hash] // nil for 0: hashed is signed as it is

		var sig []byte
		switch int(way) % sigWays {
		case sigValid:
			if em, ok := encodePKCS1v15(k, signed, hashed); ok {
				sig = key.sign(em)
			}
		case sigBitFlip:
			if em, ok := encodePKCS1v15(k, signed, hashed); ok {
				sig = key.sign(em)
				sig[int(pos/8)%len(sig)] ^= 1 << (pos % 8)
			}
		case sigRaw:
			sig = data
		case sigZero:
			sig = make([]byte, k)
		case sigModulusPlus:
			s := new(big.Int).Add(pub.N, big.NewInt(int64(pos%512)))
			sig = s.FillBytes(make([]byte, max(k, (s.BitLen()+7)/8)))
		case sigAllOnes:
			sig = make([]byte, k)
			for i := range sig {
				sig[i] = 0xff
			}
		case sigLength:
			if em, ok := encodePKCS1v15(k, signed, hashed); ok {
				sig = key.sign(em)
				if pos&1 == 0 {
					sig = append([]byte{0}, sig...)
				} else {
					sig = sig[1:]
				}
			}
		case sigOtherHash:
			other := hashPrefixes[fuzzHashes[int(pos)%3]]
			if em, ok := encodePKCS1v15(k, other, hashed); ok {
				sig = key.sign(em)
			}
		case sigPadding:
			if em, ok := encodePKCS1v15(k, signed, hashed); ok {
				i := int(pos) % len(em)
				em[i] ^= byte(pos>>8) | 1
				if new(big.Int).SetBytes(em).Cmp(pub.N) < 0 {
					sig = key.sign(em)
				}
			}
		case sigRawEncoding:
			em := make([]byte, k)
			copy(em, data)
			em[0] = 0
			sig = key.sign(em)
		case sigOddKey:
			// An arbitrary modulus (odd, even, short, long) and exponent:
			// the key need not be one; signatures are the input's.
			n := new(big.Int).SetBytes(data)
			e := int(pos)
			if pos&3 == 3 {
				e = int(pos) << 16
			}
			pub = &rsa.PublicKey{N: n, E: e}
			sig = data
			if len(sig) > 1 && pos&4 != 0 {
				sig = sig[1:]
			}
		}

		want := rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
		got := v.VerifyPKCS1v15(pub, hash, hashed, sig)
		sameAnswer(t, "first call", want, got)
		got = v.VerifyPKCS1v15(pub, hash, hashed, sig)
		sameAnswer(t, "second call", want, got)
		if int(way)%sigWays == sigValid && sig != nil && (hash == 0 || len(hashed) == hash.Size()) && want != nil {
			t.Fatalf("crypto/rsa refuses a valid signature with %v by a %d-bit key: %v", hash, key.pub.N.BitLen(), want)
		}
	})
}

// hashPrefixes are the DigestInfo prefixes the tests sign with, copied
// from crypto/internal/fips140/rsa's table.
var hashPrefixes = map[crypto.Hash][]byte{
	crypto.MD5:    {0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10},
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}
