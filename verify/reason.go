package verify

import (
	"errors"
	"fmt"
)

// A Reason is the stable, machine-readable code of a verdict. Every report
// line carries one; the list below is the complete set and each code keeps its
// meaning across releases.
//
// A Reason is also an error, so a failure can be tested with errors.Is:
//
//	if errors.Is(err, verify.ReasonDKIMInvalid) { ... }
type Reason string

// The reason codes, in pipeline order.
const (
	// ReasonOK: every check passed; the certificate was handed to the store.
	ReasonOK Reason = "ok"

	// ReasonReadError: the message could not be read from its source (an
	// unreadable file). Nothing about the message itself was judged.
	ReasonReadError Reason = "read_error"
	// ReasonTooLarge: the message is larger than the configured maximum size.
	ReasonTooLarge Reason = "message_too_large"
	// ReasonMalformed: the message is empty or its header cannot be parsed.
	ReasonMalformed Reason = "message_malformed"

	// ReasonMultipleFrom: the header has more than one From field.
	ReasonMultipleFrom Reason = "multiple_from"
	// ReasonInvalidFrom: From is missing, holds other than exactly one
	// mailbox, or its address is not a plain dot-atom address that is safe to
	// use as a file name (an internationalised one: NormalizeAddress).
	ReasonInvalidFrom Reason = "invalid_from_address"

	// ReasonDKIMMissing: the message has no DKIM-Signature.
	ReasonDKIMMissing Reason = "dkim_missing"
	// ReasonDKIMInvalid: no DKIM signature verifies (bad signature, body
	// changed, key absent or unacceptable).
	ReasonDKIMInvalid Reason = "dkim_invalid"
	// ReasonDKIMDomainMismatch: a DKIM signature verifies, but none for a
	// domain aligned with the From domain.
	ReasonDKIMDomainMismatch Reason = "dkim_domain_mismatch"
	// ReasonDKIMTempError: a DKIM key could not be fetched because of a
	// temporary DNS failure; a later attempt may pass.
	ReasonDKIMTempError Reason = "dkim_temperror"

	// ReasonNoSignature: no S/MIME signature where one is accepted.
	ReasonNoSignature Reason = "no_signature"
	// ReasonSignatureMalformed: the S/MIME structure or the CMS cannot be
	// parsed, or it lacks what a signature needs (a signer, its certificate).
	ReasonSignatureMalformed Reason = "signature_malformed"
	// ReasonSignatureInvalid: the CMS signature does not verify over the
	// signed content, or uses an algorithm or key that is not accepted:
	// unknown, or weak (SHA-1, an RSA key under 2,048 bits, a curve other
	// than P-256, P-384 and P-521, an RSASSA-PSS salt shorter than the
	// hash).
	ReasonSignatureInvalid Reason = "signature_invalid"

	// ReasonCertUntrusted: no path from the signer certificate to a trusted
	// root, or only through a certificate signed with SHA-1 (or another
	// algorithm x509 refuses) or holding a weak key.
	ReasonCertUntrusted Reason = "cert_untrusted"
	// ReasonCertExpired: the signer certificate (or one in its chain) had
	// expired at the verification time.
	ReasonCertExpired Reason = "cert_expired"
	// ReasonCertNotYetValid: the signer certificate (or one in its chain) was
	// not yet valid at the verification time.
	ReasonCertNotYetValid Reason = "cert_not_yet_valid"
	// ReasonCertWrongEKU: the certificate is not allowed for email
	// protection (extended key usage, or key usage without digitalSignature).
	ReasonCertWrongEKU Reason = "cert_wrong_eku"

	// ReasonFromCertMismatch: the certificate's addresses do not include the
	// From address.
	ReasonFromCertMismatch Reason = "from_cert_mismatch"

	// ReasonCertPolicy: --require-profile is set and the certificate falls
	// short of it: it claims a lower S/MIME BR profile, or none, or zlint
	// finds an error in it (profile.go).
	ReasonCertPolicy Reason = "cert_policy"
	// ReasonCertNoEncryption: the signer's certificate verifies, but no
	// application could encrypt to it (its key usage allows signing only:
	// RSA without keyEncipherment, EC without keyAgreement, Ed25519), and
	// the message names or carries no other certificate for the From
	// address that allows encryption (enccert.go). Nothing is stored.
	ReasonCertNoEncryption Reason = "cert_no_encryption"
	// ReasonCertRevoked: the signer's certificate, the certificate to
	// encrypt to, or a CA certificate of their chains, is revoked, says its
	// issuer's OCSP responder or CRL (--revocation soft or hard).
	ReasonCertRevoked Reason = "cert_revoked"
	// ReasonRevocationUnknown: with --revocation hard, the revocation
	// status of a certificate of the chain could not be had (responder and
	// CRLs unreachable, slow, or their answers refused). Temporary: serve
	// tries again, and never stores a certificate of unknown status.
	ReasonRevocationUnknown Reason = "revocation_unknown"

	// ReasonStoreFailed: every check passed but the certificate could not be
	// written. Temporary: the message should be processed again.
	ReasonStoreFailed Reason = "store_failed"
	// ReasonStoreRefused: every check passed but the certificate folder
	// holds something other than a regular file or folder where the
	// certificate, its history or its lock file goes (a symbolic link
	// planted there): the store neither follows nor replaces it and writes
	// nothing. Not temporary: no retry helps until someone removes it, and
	// the sender is not at fault; the message is archived and can be
	// scanned again.
	ReasonStoreRefused Reason = "store_refused"
	// ReasonInternalError: the pipeline failed unexpectedly (a recovered
	// panic). The detail says where; please report it. serve also gives it
	// to a message set aside after crashing the service (quarantine).
	ReasonInternalError Reason = "internal_error"
)

// reasonInfo describes every code. It is the single list the documentation
// and the --help text are generated from.
var reasonInfo = []struct {
	reason    Reason
	temporary bool
	meaning   string
}{
	{ReasonOK, false, "every check passed; the certificate was stored (see action)"},
	{ReasonReadError, false, "the message could not be read from its source"},
	{ReasonTooLarge, false, "the message exceeds --max-size"},
	{ReasonMalformed, false, "the message is empty or its header cannot be parsed"},
	{ReasonMultipleFrom, false, "more than one From header field"},
	{ReasonInvalidFrom, false, "From missing, not exactly one mailbox, or its address is not a safe dot-atom address (one in UTF-8: in NFC, letters, marks and digits of one script)"},
	{ReasonDKIMMissing, false, "no DKIM-Signature header"},
	{ReasonDKIMInvalid, false, "no DKIM signature verifies"},
	{ReasonDKIMDomainMismatch, false, "a DKIM signature verifies, but not for the From domain"},
	{ReasonDKIMTempError, true, "the DKIM key of the From domain could not be fetched this time (DNS timeout or SERVFAIL)"},
	{ReasonNoSignature, false, "no S/MIME signature (multipart/signed or pkcs7-mime signed-data)"},
	{ReasonSignatureMalformed, false, "the S/MIME signature or its CMS structure cannot be parsed"},
	{ReasonSignatureInvalid, false, "the CMS signature does not verify over the signed content, or its algorithm or key is refused as weak (SHA-1, RSA under 2,048 bits)"},
	{ReasonCertUntrusted, false, "no chain from the signer certificate to a trusted root, or only through a SHA-1 signature or a weak key"},
	{ReasonCertExpired, false, "a certificate of the chain had expired at the verification time"},
	{ReasonCertNotYetValid, false, "a certificate of the chain was not yet valid at the verification time"},
	{ReasonCertWrongEKU, false, "the certificate is not allowed for email protection"},
	{ReasonFromCertMismatch, false, "the certificate's addresses do not include the From address"},
	{ReasonCertPolicy, false, "below --require-profile: the certificate claims a lower S/MIME BR profile or none, or zlint finds an error in it"},
	{ReasonCertNoEncryption, false, "no certificate to encrypt to: the signer's allows signing only and the message carries no encryption certificate for From"},
	{ReasonCertRevoked, false, "a certificate of the chain (the signer's or the encryption certificate's) is revoked, says its issuer's OCSP responder or CRL (--revocation)"},
	{ReasonRevocationUnknown, true, "with --revocation hard: the chain's revocation status could not be had (retried)"},
	{ReasonStoreFailed, true, "the certificate could not be written (retried)"},
	{ReasonStoreRefused, false, "the certificate folder holds a link or other non-regular file where the certificate goes: nothing written (not retried)"},
	{ReasonInternalError, false, "unexpected failure inside the pipeline (a bug: please report it); from serve, also a message in flight in 3 consecutive crashes, moved to the spool's quarantine/"},
}

// Error makes a Reason usable as a sentinel error.
func (r Reason) Error() string { return string(r) }

// Temporary reports whether a later attempt on the same message may succeed.
func (r Reason) Temporary() bool {
	for _, ri := range reasonInfo {
		if ri.reason == r {
			return ri.temporary
		}
	}
	return false
}

// Meaning returns a one-line explanation of the code.
func (r Reason) Meaning() string {
	for _, ri := range reasonInfo {
		if ri.reason == r {
			return ri.meaning
		}
	}
	return ""
}

// Reasons returns every reason code in pipeline order.
func Reasons() []Reason {
	rs := make([]Reason, len(reasonInfo))
	for i, ri := range reasonInfo {
		rs[i] = ri.reason
	}
	return rs
}

// Error is a failure of one pipeline stage: its Reason and the error that
// explains it. errors.Is(err, reason) matches the Reason.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() []error { return []error{e.Reason, e.Err} }

// fail returns an *Error for reason, with a message formatted like
// fmt.Errorf (so %w wraps).
func fail(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the Reason carried by err, ReasonOK for nil, and
// ReasonInternalError for an error that carries none.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ReasonInternalError
}
