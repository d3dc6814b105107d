// Package rsaverify verifies RSA PKCS #1 v1.5 signatures (RFC 8017 §8.2.2)
// with crypto/rsa's verdicts, for less CPU when keys recur.
//
// crypto/rsa rebuilds the modulus of the public key on every verification:
// its Montgomery constants, R² mod N above all, cost about as much as the
// exponentiation itself (on the 2-core VM of docs/PERFORMANCE.md, some 15
// µs of an RSA-2048 verification's 30). rsa.PublicKey keeps no
// precomputation (rsa.PrivateKey does), and the arithmetic that could
// (crypto/internal/fips140/bigmod) is internal to the standard library. A
// Verifier keeps the moduli of the keys it has seen, a bounded number of
// them (Options.MaxKeys), the least recently used leaving first, keyed by
// the key's value (the modulus's bytes and the exponent), never by a
// pointer: in certharvest the DKIM key of a domain recurs on every message
// from it, and a known sender's key on each of its messages.
//
// What a Verifier keeps is a function of the modulus alone, not a verdict:
// every verification computes s^e mod n afresh and compares it with the
// encoding of the digest. The verdicts, error values and texts, and limits
// are crypto/rsa's: the fast path takes only the keys and hashes whose
// verification crypto/rsa would carry out, and answers nil or
// rsa.ErrVerification exactly where crypto/rsa does; everything else is
// passed to crypto/rsa itself (FuzzDifferential checks both against each
// other).
//
// The arithmetic is a fork of Go 1.26.8's crypto/internal/fips140/bigmod
// (nat.go, nat_amd64.s, nat_amd64.go, nat_generic.go; Copyright The Go
// Authors, BSD licence: LICENSE.golang in this directory), reduced to what
// a public-key operation needs and otherwise unchanged.
package rsaverify
