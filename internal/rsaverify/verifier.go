package rsaverify

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"encoding/binary"
	"sync"
)

// DefaultMaxKeys is the number of moduli a Verifier keeps when
// Options.MaxKeys is zero. An entry holds the key's bytes, the modulus and
// its R² mod N: about 1 KB for an RSA-2048 key, 4 KB at most
// (maxCachedBits), so 4 MB at worst; the DKIM keys of the domains that send
// and the keys of the senders that recur are far fewer.
const DefaultMaxKeys = 1024

// The sizes of the keys a Verifier keeps. A key outside them is verified by
// crypto/rsa alone: under 1,024 bits crypto/rsa refuses it (unless
// GODEBUG rsa1024min=0, which it reads itself), and over maxCachedBits an
// entry would cost more memory than it saves time (certharvest refuses
// such keys before they reach here: verify's maxRSABits).
const (
	minCachedBits = 1024
	maxCachedBits = 8192
)

// Options configure a Verifier. The zero value is the default.
type Options struct {
	// MaxKeys bounds the moduli kept, the least recently used leaving
	// first: 0 means DefaultMaxKeys, a negative number none (every
	// verification by crypto/rsa).
	MaxKeys int
}

// A Verifier verifies RSA PKCS #1 v1.5 signatures, keeping the precomputed
// moduli of the keys it has verified with. It is safe for concurrent use. A
// nil *Verifier verifies with crypto/rsa alone.
type Verifier struct {
	maxKeys int
	// stdlib is set when crypto/rsa must answer every call: FIPS 140-3
	// mode, in which crypto/rsa applies rules of its own, or BoringCrypto.
	stdlib bool

	mu   sync.Mutex
	keys map[string]*entry // by keyID
	// lru is the sentinel of a ring of the entries, the most recently
	// used after it.
	lru entry
}

// entry is a kept modulus, in the ring of the least recently used.
type entry struct {
	id         string
	modulus    *Modulus
	prev, next *entry
}

// New returns a Verifier.
func New(opts Options) *Verifier {
	if opts.MaxKeys == 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	v := &Verifier{
		maxKeys: opts.MaxKeys,
		stdlib:  fips140.Enabled() || boringCrypto,
		keys:    make(map[string]*entry),
	}
	v.lru.prev, v.lru.next = &v.lru, &v.lru
	return v
}

// VerifyPKCS1v15 is rsa.VerifyPKCS1v15 (RFC 8017 §8.2.2): the same
// verdicts, the same error values and texts, the same limits on keys.
//
// The fast path takes SHA-256, SHA-384 and SHA-512 signatures by keys of
// minCachedBits to maxCachedBits with an odd modulus and an odd exponent
// from 3 to 2³¹-1: the keys crypto/rsa accepts, and only those. It returns
// nil or rsa.ErrVerification, where crypto/rsa returns the same. Every
// other call (another hash, a digest of the wrong length, a key crypto/rsa
// refuses or that is too large to keep) is crypto/rsa's, which answers it
// with its own words.
func (v *Verifier) VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	prefix, ok := hashPrefix(hash)
	if v == nil || v.maxKeys < 0 || v.stdlib || !ok || len(hashed) != hash.Size() || !fastKey(pub) {
		return rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
	}
	m := v.modulus(pub)

	// RFC 8017 §8.2.2 step 1: a signature of another length than the
	// modulus is invalid.
	k := m.Size()
	if len(sig) != k {
		return rsa.ErrVerification
	}
	// Step 2: RSAVP1; a representative s ≥ n is invalid (§5.2.2).
	s, err := NewNat().SetBytes(sig, m)
	if err != nil {
		return rsa.ErrVerification
	}
	em := NewNat().ExpShortVarTime(s, uint(pub.E), m).Bytes(m)
	// Step 3: EMSA-PKCS1-v1_5-ENCODE (§9.2), compared whole (step 4).
	expected, ok := encodePKCS1v15(k, prefix, hashed)
	if !ok || !bytes.Equal(em, expected) {
		return rsa.ErrVerification
	}
	return nil
}

// fastKey reports whether pub is a key of the fast path: one crypto/rsa
// accepts (it refuses a missing, even or short modulus, an exponent under 2,
// even or over 2³¹-1: crypto/rsa's checkPublicKeySize and
// crypto/internal/fips140/rsa's checkPublicKey), of a size to keep.
func fastKey(pub *rsa.PublicKey) bool {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 {
		return false
	}
	if bits := pub.N.BitLen(); bits < minCachedBits || bits > maxCachedBits {
		return false
	}
	return pub.E >= 3 && pub.E&1 == 1 && pub.E <= 1<<31-1
}

// modulus returns pub's modulus, kept or made and kept. pub is a fastKey.
func (v *Verifier) modulus(pub *rsa.PublicKey) *Modulus {
	// The key's identity is its modulus's bytes and its exponent, four
	// bytes after them: the length tells where the modulus ends, so two
	// keys have the same identity only if they are the same key.
	var buf [maxCachedBits/8 + 4]byte
	size := (pub.N.BitLen() + 7) / 8
	id := buf[:size+4]
	pub.N.FillBytes(id[:size])
	binary.BigEndian.PutUint32(id[size:], uint32(pub.E))

	v.mu.Lock()
	if e, ok := v.keys[string(id)]; ok {
		v.unlink(e)
		v.pushFront(e)
		v.mu.Unlock()
		return e.modulus
	}
	v.mu.Unlock()

	// Made outside the lock: R² mod N is most of a verification's cost.
	// NewModulus cannot fail on an odd modulus of minCachedBits or more.
	m, err := NewModulus(id[:size])
	if err != nil {
		panic("rsaverify: internal error: " + err.Error())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.keys[string(id)]; ok {
		// Made meanwhile by another goroutine.
		return e.modulus
	}
	for len(v.keys) >= v.maxKeys {
		oldest := v.lru.prev
		v.unlink(oldest)
		delete(v.keys, oldest.id)
	}
	e := &entry{id: string(id), modulus: m}
	v.keys[e.id] = e
	v.pushFront(e)
	return m
}

func (v *Verifier) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (v *Verifier) pushFront(e *entry) {
	e.prev, e.next = &v.lru, v.lru.next
	v.lru.next.prev = e
	v.lru.next = e
}

// Len returns the number of keys whose moduli v keeps.
func (v *Verifier) Len() int {
	if v == nil {
		return 0
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.keys)
}

// hashPrefix returns the DER prefix of a DigestInfo (RFC 8017 §9.2 note 1)
// for the hashes of the fast path, as crypto/internal/fips140/rsa's
// hashPrefixes has them.
func hashPrefix(hash crypto.Hash) ([]byte, bool) {
	switch hash {
	case crypto.SHA256:
		return []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, true
	case crypto.SHA384:
		return []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}, true
	case crypto.SHA512:
		return []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}, true
	}
	return nil, false
}

// encodePKCS1v15 is EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) of a digest
// with its DigestInfo prefix, k bytes long: 0x00 || 0x01 || PS || 0x00 ||
// T, PS at least eight 0xff bytes; false when k is too short for that.
// crypto/internal/fips140/rsa's pkcs1v15ConstructEM.
func encodePKCS1v15(k int, prefix, hashed []byte) ([]byte, bool) {
	if k < len(prefix)+len(hashed)+2+8+1 {
		return nil, false
	}
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(prefix)-len(hashed)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(prefix)-len(hashed):], prefix)
	copy(em[k-len(hashed):], hashed)
	return em, true
}
