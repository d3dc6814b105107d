// Package testcorpus builds, entirely in memory, a reproducible-in-shape test
// corpus for certharvest: a small PKI, DKIM keys and a set of email messages
// covering every accept and reject path of the verifier.
//
// A Fixture (see New) holds
//
//   - a trusted root CA ("certharvest Test Root") and an intermediate CA
//     ("certharvest Test Intermediate") that issues the S/MIME end-entity
//     certificates, an ECDSA and an Ed25519 intermediate for the other
//     signer kinds (SignerKinds: RSASSA-PSS, Ed25519, ECDSA P-384 and
//     P-521), plus an untrusted root that is not in the trust bundle;
//   - RSA-2048 DKIM keys for example.com, example.net and example.org under the
//     selector "s1" (see KeysFile and LookupTXT);
//   - helpers that S/MIME-sign (CMS, RFC 5652 / S/MIME 4.0, RFC 8551) and
//     DKIM-sign (RFC 6376) messages.
//
// Issue and SelfSigned make any other certificate a test needs, odd ones
// included, and SelfSignedTLS a TLS server certificate with the pool that
// trusts it.
//
// Fixture.Cases returns one Case per behaviour, each with the reason code and
// action the verifier is expected to report. Fixture.SignedMessage and
// Fixture.SignedMessages mint valid messages for arbitrary addresses, for
// benchmarks.
//
// Keys and signatures are random on every New, but the certificate validity
// periods, the CMS signingTime attributes and the message Date headers are
// fixed (NotBefore, NotAfter, At, SigningTime), so the expected verdicts are
// the same on every run and at any wall-clock time, provided the verifier
// evaluates certificates at At (certharvest's --at flag).
//
// The scripts/gencorpus command writes a Fixture's corpus to disk.
package testcorpus
