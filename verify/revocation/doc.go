// Package revocation tells whether the certificates of a verified chain
// have been revoked by their issuers, for certharvest's opt-in
// --revocation (docs/REVOCATION.md).
//
// A Checker asks, for each certificate of the chain but the trust anchor:
//
//  1. the OCSP responders its Authority Information Access extension names
//     (RFC 6960, RFC 5019), through golang.org/x/crypto/ocsp: the response
//     must be signed by the issuer or by a responder it certified with
//     id-kp-OCSPSigning, name the certificate and its issuer, and be fresh
//     at the verification time (checkOCSP); no nonce is sent;
//  2. failing that, the CRLs of its CRL distribution points (RFC 5280
//     §5, §6.3): signed by the issuer, issued for the certificate's
//     distribution point and kind, fresh (parseCRL, crlInfo.lookup).
//
// Only http and https URLs are fetched, at most a few per certificate
// (DefaultMaxURLs), each fetch bounded in time (through its context) and
// size, with at most three redirects and never to another scheme
// (fetch.go). The first good or revoked answer decides; when none can be
// had, the status is Unknown, with every failure in CertStatus.Err, and
// the caller decides what that means (soft or hard).
//
// Every good or revoked status is kept until the answer's nextUpdate:
// in memory, and in a cache folder when one is given (cache.go: one file
// per issuer and serial number, written atomically, never through a link,
// its size bounded). Concurrent checks of one certificate share one fetch,
// so a status is fetched once per validity window whatever the traffic.
// An unknown status is not kept: the next check asks again. CRLs are also
// kept in memory, whole, so one fetch serves every certificate of an
// issuer.
//
// The cache folder also keeps the intermediate certificates of the chains
// checked (Checker.Issuers), from which certharvest revalidate rebuilds
// the chain of a stored certificate, whose store keeps only the
// certificate.
//
// The package depends on nothing of certharvest: verify calls it through
// the small interface verify.RevocationChecker, with any verified chain.
package revocation
