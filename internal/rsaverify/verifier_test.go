package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
)

var fastHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

func TestVerifyValidAndWrongHash(t *testing.T) {
	v := New(Options{})
	for _, key := range testKeys() {
		for _, hash := range fastHashes {
			t.Run(fmt.Sprintf("%d-bit e=%d %v", key.pub.N.BitLen(), key.pub.E, hash), func(t *testing.T) {
				hashed := digest(hash, []byte("message"))
				sig := key.signPKCS1v15(hash, hashed)
				if err := v.VerifyPKCS1v15(key.pub, hash, hashed, sig); err != nil {
					t.Fatalf("valid signature: %v", err)
				}
				if err := rsa.VerifyPKCS1v15(key.pub, hash, hashed, sig); err != nil {
					t.Fatalf("crypto/rsa refuses the test's signature: %v", err)
				}
				// The same digest bytes under another hash's prefix, and
				// another message's digest.
				for _, other := range fastHashes {
					if other == hash {
						continue
					}
					otherHashed := digest(other, []byte("message"))
					if err := v.VerifyPKCS1v15(key.pub, other, otherHashed, sig); err != rsa.ErrVerification {
						t.Errorf("verified as %v: %v, want rsa.ErrVerification", other, err)
					}
				}
				if err := v.VerifyPKCS1v15(key.pub, hash, digest(hash, []byte("massage")), sig); err != rsa.ErrVerification {
					t.Errorf("another message: %v, want rsa.ErrVerification", err)
				}
			})
		}
	}
}

// TestRefusesWhatCryptoRSARefuses compares the Verifier with crypto/rsa on
// the signatures and keys crypto/rsa refuses, and on those of hashes the
// fast path passes on.
func TestRefusesWhatCryptoRSARefuses(t *testing.T) {
	key := testKeys()[0]
	k := key.pub.Size()
	hashed := digest(crypto.SHA256, []byte("message"))
	sig := key.signPKCS1v15(crypto.SHA256, hashed)
	n := key.pub.N
	withN := func(n *big.Int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: 65537} }
	withE := func(e int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: e} }
	bytesOf := func(x *big.Int) []byte { return x.FillBytes(make([]byte, k)) }
	ones := make([]byte, k)
	for i := range ones {
		ones[i] = 0xff
	}
	short := newTestKey(512, 65537)
	shortHashed := digest(crypto.SHA256, []byte("message"))
	shortSig := short.signPKCS1v15(crypto.SHA256, shortHashed)
	sha1Hashed := digest(crypto.SHA1, []byte("message"))
	em, _ := encodePKCS1v15(k, hashPrefixes[crypto.SHA1], sha1Hashed)
	sha1Sig := key.sign(em)
	em, _ = encodePKCS1v15(k, nil, []byte("raw"))
	rawSig := key.sign(em)

	tests := []struct {
		name   string
		pub    *rsa.PublicKey
		hash   crypto.Hash
		hashed []byte
		sig    []byte
	}{
		{"valid", key.pub, crypto.SHA256, hashed, sig},
		{"signature a byte short", key.pub, crypto.SHA256, hashed, sig[1:]},
		{"signature with a leading zero", key.pub, crypto.SHA256, hashed, append([]byte{0}, sig...)},
		{"empty signature", key.pub, crypto.SHA256, hashed, nil},
		{"signature 0", key.pub, crypto.SHA256, hashed, make([]byte, k)},
		{"signature 1", key.pub, crypto.SHA256, hashed, bytesOf(big.NewInt(1))},
		{"signature n-1", key.pub, crypto.SHA256, hashed, bytesOf(new(big.Int).Sub(n, big.NewInt(1)))},
		{"signature n", key.pub, crypto.SHA256, hashed, bytesOf(n)},
		{"signature n+1", key.pub, crypto.SHA256, hashed, bytesOf(new(big.Int).Add(n, big.NewInt(1)))},
		{"signature s+n", key.pub, crypto.SHA256, hashed, append([]byte{1}, new(big.Int).Add(n, new(big.Int).SetBytes(sig)).Bytes()...)},
		{"signature all ones", key.pub, crypto.SHA256, hashed, ones},
		{"digest too short", key.pub, crypto.SHA256, hashed[1:], sig},
		{"digest too long", key.pub, crypto.SHA256, append(hashed, 0), sig},
		{"SHA-1 signature", key.pub, crypto.SHA1, sha1Hashed, sha1Sig},
		{"unprefixed signature", key.pub, 0, []byte("raw"), rawSig},
		{"MD5 digest length, SHA-256 signature", key.pub, crypto.MD5, hashed[:16], sig},
		{"modulus missing", &rsa.PublicKey{E: 65537}, crypto.SHA256, hashed, sig},
		{"modulus 0", withN(new(big.Int)), crypto.SHA256, hashed, sig},
		{"modulus even", withN(new(big.Int).Add(n, big.NewInt(1))), crypto.SHA256, hashed, sig},
		{"modulus negative", withN(new(big.Int).Neg(n)), crypto.SHA256, hashed, sig},
		{"modulus of 512 bits", short.pub, crypto.SHA256, shortHashed, shortSig},
		{"modulus of 1023 bits", withN(new(big.Int).Rsh(n, 1025)), crypto.SHA256, hashed, sig[:128]},
		{"modulus of 8193 bits", withN(new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 8192), big.NewInt(1))), crypto.SHA256, hashed, make([]byte, 1025)},
		{"exponent 0", withE(0), crypto.SHA256, hashed, sig},
		{"exponent 1", withE(1), crypto.SHA256, hashed, sig},
		{"exponent 2", withE(2), crypto.SHA256, hashed, sig},
		{"exponent -3", withE(-3), crypto.SHA256, hashed, sig},
		{"exponent 65536", withE(65536), crypto.SHA256, hashed, sig},
		{"exponent 3", withE(3), crypto.SHA256, hashed, sig},
		{"exponent 2^31-1", withE(1<<31 - 1), crypto.SHA256, hashed, sig},
		{"exponent 2^31+1", withE(1<<31 + 1), crypto.SHA256, hashed, sig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := New(Options{})
			want := rsa.VerifyPKCS1v15(tt.pub, tt.hash, tt.hashed, tt.sig)
			sameAnswer(t, "first call", want, v.VerifyPKCS1v15(tt.pub, tt.hash, tt.hashed, tt.sig))
			sameAnswer(t, "second call", want, v.VerifyPKCS1v15(tt.pub, tt.hash, tt.hashed, tt.sig))
			sameAnswer(t, "nil Verifier", want, (*Verifier)(nil).VerifyPKCS1v15(tt.pub, tt.hash, tt.hashed, tt.sig))
		})
	}
}

func TestNilKeyPanicsAsCryptoRSA(t *testing.T) {
	hashed := digest(crypto.SHA256, nil)
	for name, verify := range map[string]func(){
		"crypto/rsa": func() { _ = rsa.VerifyPKCS1v15(nil, crypto.SHA256, hashed, nil) },
		"Verifier":   func() { _ = New(Options{}).VerifyPKCS1v15(nil, crypto.SHA256, hashed, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic on a nil key", name)
				}
			}()
			verify()
		}()
	}
}

// TestShortKeysWithGODEBUG: crypto/rsa accepts keys under 1,024 bits when
// GODEBUG has rsa1024min=0; the Verifier passes such keys to it.
func TestShortKeysWithGODEBUG(t *testing.T) {
	t.Setenv("GODEBUG", "rsa1024min=0")
	short := newTestKey(512, 65537)
	hashed := digest(crypto.SHA256, []byte("message"))
	sig := short.signPKCS1v15(crypto.SHA256, hashed)
	if err := rsa.VerifyPKCS1v15(short.pub, crypto.SHA256, hashed, sig); err != nil {
		t.Fatalf("crypto/rsa with rsa1024min=0: %v", err)
	}
	if err := New(Options{}).VerifyPKCS1v15(short.pub, crypto.SHA256, hashed, sig); err != nil {
		t.Fatalf("Verifier with rsa1024min=0: %v", err)
	}
}

// TestKeptByValue: a key is kept by its modulus and exponent, not by the
// *rsa.PublicKey: another pointer to the same values finds it, and a key
// changed in place is a different key.
func TestKeptByValue(t *testing.T) {
	keys := testKeys()
	a, b := keys[0], keys[6]
	hashed := digest(crypto.SHA256, []byte("message"))
	sigA := a.signPKCS1v15(crypto.SHA256, hashed)
	sigB := b.signPKCS1v15(crypto.SHA256, hashed)
	v := New(Options{})

	pub := &rsa.PublicKey{N: new(big.Int).Set(a.pub.N), E: a.pub.E}
	if err := v.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sigA); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyPKCS1v15(a.pub, crypto.SHA256, hashed, sigA); err != nil || v.Len() != 1 {
		t.Fatalf("the same key through another pointer: %v, %d keys kept, want 1", err, v.Len())
	}

	// The same *rsa.PublicKey, now b's modulus: b's signature verifies, a's
	// does not.
	pub.N.Set(b.pub.N)
	if err := v.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sigB); err != nil {
		t.Fatalf("after the modulus changed in place: %v", err)
	}
	if err := v.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sigA); err == nil {
		t.Fatal("a's signature verified with b's modulus")
	}
	if v.Len() != 2 {
		t.Fatalf("%d keys kept, want 2", v.Len())
	}

	// The same modulus with another exponent is another key, with its own
	// verdicts.
	pub.E = 3
	if err := v.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sigB); err != rsa.ErrVerification {
		t.Fatalf("b's signature with e=3: %v, want rsa.ErrVerification", err)
	}
	if v.Len() != 3 {
		t.Fatalf("%d keys kept, want 3", v.Len())
	}
}

// TestKeptKeysBounded: a Verifier keeps at most MaxKeys keys, the least
// recently used leaving first, and verifies right with the keys it dropped.
func TestKeptKeysBounded(t *testing.T) {
	keys := testKeys()[:5]
	hashed := digest(crypto.SHA512, []byte("message"))
	sigs := make([][]byte, len(keys))
	for i, k := range keys {
		sigs[i] = k.signPKCS1v15(crypto.SHA512, hashed)
	}
	v := New(Options{MaxKeys: 3})
	verify := func(i int) {
		t.Helper()
		if err := v.VerifyPKCS1v15(keys[i].pub, crypto.SHA512, hashed, sigs[i]); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if err := v.VerifyPKCS1v15(keys[i].pub, crypto.SHA512, hashed, sigs[(i+1)%len(keys)]); err == nil {
			t.Fatalf("key %d verified key %d's signature", i, (i+1)%len(keys))
		}
	}
	verify(0)
	verify(1)
	verify(2)
	verify(0) // 1 is now the least recently used
	verify(3)
	if got := v.keptKeys(keys); fmt.Sprint(got) != "[true false true true false]" {
		t.Fatalf("kept %v, want [true false true true false]", got)
	}
	for round := 0; round < 3; round++ {
		for i := range keys {
			verify(i)
			if v.Len() > 3 {
				t.Fatalf("%d keys kept, the limit is 3", v.Len())
			}
		}
	}

	none := New(Options{MaxKeys: -1})
	for i := range keys {
		if err := none.VerifyPKCS1v15(keys[i].pub, crypto.SHA512, hashed, sigs[i]); err != nil {
			t.Fatalf("MaxKeys -1, key %d: %v", i, err)
		}
	}
	if none.Len() != 0 {
		t.Fatalf("MaxKeys -1 kept %d keys", none.Len())
	}
	if New(Options{}).maxKeys != DefaultMaxKeys {
		t.Fatalf("MaxKeys 0 is %d, want DefaultMaxKeys", New(Options{}).maxKeys)
	}
}

// keptKeys reports which of keys v keeps.
func (v *Verifier) keptKeys(keys []testKey) []bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := make([]bool, len(keys))
	for i, k := range keys {
		size := k.pub.Size()
		id := k.pub.N.FillBytes(make([]byte, size, size+4))
		id = append(id, byte(k.pub.E>>24), byte(k.pub.E>>16), byte(k.pub.E>>8), byte(k.pub.E))
		_, kept[i] = v.keys[string(id)]
	}
	return kept
}

// TestConcurrent verifies with several keys from several goroutines
// through a Verifier that keeps fewer: run with -race.
func TestConcurrent(t *testing.T) {
	keys := testKeys()[:4]
	hashed := digest(crypto.SHA384, []byte("message"))
	sigs := make([][]byte, len(keys))
	for i, k := range keys {
		sigs[i] = k.signPKCS1v15(crypto.SHA384, hashed)
	}
	v := New(Options{MaxKeys: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				key := (g + i) % len(keys)
				if err := v.VerifyPKCS1v15(keys[key].pub, crypto.SHA384, hashed, sigs[key]); err != nil {
					errs <- fmt.Errorf("key %d: %w", key, err)
					return
				}
				if err := v.VerifyPKCS1v15(keys[key].pub, crypto.SHA384, hashed, sigs[(key+1)%len(keys)]); !errors.Is(err, rsa.ErrVerification) {
					errs <- fmt.Errorf("key %d with another's signature: %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v.Len() > 2 {
		t.Fatalf("%d keys kept, the limit is 2", v.Len())
	}
}

// TestWriteKeys makes testdata/keys.txt when RSAVERIFY_WRITE_KEYS=1, and
// checks the keys in it otherwise: their sizes and exponents, and that d
// inverts e (a signature made with d verifies).
func TestWriteKeys(t *testing.T) {
	if os.Getenv("RSAVERIFY_WRITE_KEYS") == "1" {
		var lines []string
		for _, s := range testKeySizes {
			k := newTestKey(s.bits, s.e)
			lines = append(lines, fmt.Sprintf("%x %x %x %x", k.p, k.q, k.pub.E, k.d))
		}
		if err := os.WriteFile("testdata/keys.txt", []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys := testKeys()
	if len(keys) != len(testKeySizes) {
		t.Fatalf("%d keys, want %d", len(keys), len(testKeySizes))
	}
	hashed := digest(crypto.SHA256, []byte("message"))
	for i, k := range keys {
		if k.pub.N.BitLen() != testKeySizes[i].bits || k.pub.E != testKeySizes[i].e {
			t.Errorf("key %d: %d bits, e=%d, want %d bits, e=%d", i, k.pub.N.BitLen(), k.pub.E, testKeySizes[i].bits, testKeySizes[i].e)
		}
		if err := rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, hashed, k.signPKCS1v15(crypto.SHA256, hashed)); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
	}
}
