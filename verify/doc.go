// Package verify decides whether a signed email proves that its sender owns
// an S/MIME certificate, and if so hands that certificate to a store.
//
// Anyone can send mail to a certharvest address, so a message is accepted only
// when every layer agrees, checked in this order (the first failure decides
// the [Reason]):
//
//  1. Parse: the message is canonicalised to CRLF line endings (RFC 5322
//     §2.1; archived Unix mail is bare LF) and its header is read.
//  2. From: exactly one From header field with exactly one mailbox whose
//     address is a dot-atom (RFC 5322 §3.4.1) that is safe as a file name;
//     in UTF-8 (RFC 6532) too, normalised with its domain in A-labels
//     (address.go).
//  3. DKIM (RFC 6376): at least one signature verifies and its signing domain
//     d= is aligned with the From domain (strict: equal; relaxed: the same
//     organisational domain, as DMARC defines it in RFC 7489 §3.1).
//  4. Locate the S/MIME signature (RFC 8551 §3.5): a top-level
//     multipart/signed with protocol application/pkcs7-signature, or an
//     opaque application/pkcs7-mime signed-data entity, possibly as the first
//     part of a top-level multipart/mixed. message/rfc822 parts are never
//     entered: a forwarded message is someone else's.
//  5. CMS (RFC 5652 §5): the SignedData parses and its signature verifies
//     over the exact canonical bytes that were signed. The signer certificate
//     is the one the SignerInfo names. Its algorithm is RSA PKCS #1 v1.5,
//     RSASSA-PSS (RFC 4056), ECDSA P-256/384/521 with SHA-256/384/512, or
//     Ed25519 (RFC 8419); SHA-1 and weak keys are refused (sigalg.go). A
//     signingTime attribute must be well-formed, but is not compared with
//     the certificate's validity: mail clients stamp the time of sending,
//     and a certificate that has expired is the chain's verdict, not a
//     broken signature.
//  6. Chain (RFC 5280 §6, RFC 8550 §4.4): a path from the signer certificate,
//     through the certificates carried in the CMS, to a trusted root, valid
//     at the verification time and allowed for email protection, without
//     a weak key. The CMS signingTime is not used: the signer chose it.
//  7. Identity (RFC 8550 §3): an address of the certificate (SAN rfc822Name,
//     or the subject emailAddress when there is no SAN address) equals the
//     From address; a From whose local part is not ASCII equals a SAN
//     SmtpUTF8Mailbox (RFC 9598, smtputf8.go), octet for octet.
//  8. Encryption certificate (RFC 8551 §2.5.3, RFC 8550 §4.4.2; enccert.go):
//     the certificate an application can encrypt to, the one the
//     SMIMEEncryptionKeyPreference signed attribute names, else the
//     signer's when its key usage allows encryption, else another of the
//     message for the From address that does; it passes the checks of 6
//     and 7. The sender's SMIMECapabilities are read beside it
//     (smimeattrs.go), from the signed attributes the signature covers.
//  9. Revocation (opt-in, [Options].RevocationMode): no certificate of the
//     signer's chain, nor of the encryption certificate's when it is
//     another, is revoked, says its issuer's OCSP responder or CRL, asked
//     through [Options].Revocation (package verify/revocation); an unknown
//     status passes with a warning (soft) or is a temporary failure (hard).
//  10. Store: the certificate to encrypt to, and the signer's when it is
//     another, are handed to a [CertStore].
//
// The pipeline takes its clock, DKIM key lookup, trust roots, revocation
// checker, certificate store and logger as [Options]; it has no global
// state and touches neither the network nor the file system except through
// them.
package verify
