package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// queryOCSP asks the OCSP responder at raw (RFC 6960) for the status of
// cert, issued by issuer, and checks the answer (checkOCSP).
//
// The request is an HTTP POST (RFC 6960 Appendix A.1), with a SHA-1
// CertID, the hash every responder knows (RFC 5019 §2.1.1; it identifies,
// it does not protect), and without a nonce: see checkOCSP.
func (c *Checker) queryOCSP(ctx context.Context, raw string, cert, issuer *x509.Certificate, at time.Time) (CertStatus, error) {
	u, err := checkURL(raw)
	if err != nil {
		return CertStatus{}, err
	}
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return CertStatus{}, fmt.Errorf("making the request: %w", err)
	}
	data, err := c.fetch.get(ctx, u, req, "application/ocsp-request", c.opts.MaxOCSPBytes)
	if err != nil {
		return CertStatus{}, err
	}
	st, err := checkOCSP(data, cert, issuer, at, c.opts.Skew, c.opts.NoNextUpdateFor)
	if err != nil {
		return CertStatus{}, err
	}
	st.Source, st.URL = SourceOCSP, raw
	return st, nil
}

// checkOCSP parses an OCSP response about cert and checks, at the
// verification time at:
//
//   - its signature, by the issuer itself or by a responder the issuer
//     certified for it (RFC 6960 §4.2.2.2): a certificate the response
//     carries, issued and signed by the issuer, with the extended key usage
//     id-kp-OCSPSigning, valid at at; any other signer is refused;
//   - the responder ID (§4.2.2.3) names that signer, by name or key hash;
//   - the single response is about cert as the issuer's (§4.1.1 CertID: the
//     serial number and the hashes of the issuer's name and key);
//   - freshness (§4.2.2.1, RFC 5019 §4): thisUpdate not after at (but for
//     skew, the responder's clock), and at before nextUpdate; a response
//     without nextUpdate counts as valid for noNext after thisUpdate;
//   - no signature with SHA-1 or weaker, as nowhere else in certharvest.
//
// Nonce policy: no nonce is sent and none is required. Responders mostly
// answer with responses signed in advance (RFC 5019 §2.1.1, §4), and a
// response is kept for its validity window (the cache): replay is bounded
// by the freshness checks above instead, as RFC 5019 prescribes.
//
// A response status other than successful (tryLater, unauthorized…) and
// every failed check are errors: the status is then unknown.
func checkOCSP(data []byte, cert, issuer *x509.Certificate, at time.Time, skew, noNext time.Duration) (CertStatus, error) {
	resp, err := ocsp.ParseResponseForCert(data, cert, nil)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return CertStatus{}, fmt.Errorf("responder answered %q", re.Status)
		}
		return CertStatus{}, fmt.Errorf("response: %w", err)
	}
	signer, err := ocspSigner(resp, issuer, at)
	if err != nil {
		return CertStatus{}, err
	}
	if weakSignature(resp.SignatureAlgorithm) {
		return CertStatus{}, fmt.Errorf("response signed with %v: refused", resp.SignatureAlgorithm)
	}
	if err := checkResponderID(resp, signer); err != nil {
		return CertStatus{}, err
	}
	if err := checkCertID(resp, cert, issuer); err != nil {
		return CertStatus{}, err
	}
	next, err := fresh(resp.ThisUpdate, resp.NextUpdate, at, skew, noNext)
	if err != nil {
		return CertStatus{}, err
	}
	st := CertStatus{ThisUpdate: resp.ThisUpdate, NextUpdate: next}
	switch resp.Status {
	case ocsp.Good:
		st.Status = Good
	case ocsp.Revoked:
		st.Status, st.RevokedAt, st.Reason = Revoked, resp.RevokedAt, resp.RevocationReason
	default:
		return CertStatus{}, errors.New("responder does not know the certificate (status unknown)")
	}
	return st, nil
}

// ocspSigner returns the certificate whose key signed resp, once it is
// known to be the issuer's or its authorised responder's (RFC 6960
// §4.2.2.2). ocsp.ParseResponseForCert, given no issuer, has verified the
// signature with the certificate the response carries, if any.
func ocspSigner(resp *ocsp.Response, issuer *x509.Certificate, at time.Time) (*x509.Certificate, error) {
	d := resp.Certificate
	switch {
	case d == nil:
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("response signature does not verify with the issuer's key: %w", err)
		}
		return issuer, nil
	case bytes.Equal(d.Raw, issuer.Raw):
		return issuer, nil
	}
	if !bytes.Equal(d.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("responder %q was not certified by the issuer %q", d.Subject, issuer.Subject)
	}
	if err := d.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("responder %q: its certificate is not signed by the issuer: %w", d.Subject, err)
	}
	if !slices.Contains(d.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return nil, fmt.Errorf("responder %q is not authorised: no id-kp-OCSPSigning", d.Subject)
	}
	if at.Before(d.NotBefore) || at.After(d.NotAfter) {
		return nil, fmt.Errorf("responder %q: its certificate is not valid at %s", d.Subject, at.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// checkResponderID checks that the response's responder ID names signer
// (RFC 6960 §4.2.2.3): its subject, or the SHA-1 hash of its public key.
func checkResponderID(resp *ocsp.Response, signer *x509.Certificate) error {
	if resp.RawResponderName != nil {
		if !bytes.Equal(resp.RawResponderName, signer.RawSubject) {
			return errors.New("the responder ID names another responder than the signer")
		}
		return nil
	}
	key, err := publicKeyBits(signer)
	if err != nil {
		return err
	}
	sum := sha1.Sum(key)
	if !bytes.Equal(resp.ResponderKeyHash, sum[:]) {
		return errors.New("the responder ID's key hash is not the signer's")
	}
	return nil
}

// checkCertID checks that the single response ocsp.ParseResponseForCert
// chose (the first with cert's serial number) names cert's issuer too: the
// hashes of its name and key (RFC 6960 §4.1.1), which the library does
// not compare. A responder certified by the issuer could otherwise answer
// for another CA's certificate of the same serial number.
func checkCertID(resp *ocsp.Response, cert, issuer *x509.Certificate) error {
	nameHash, keyHash, err := firstCertID(resp.TBSResponseData, cert.SerialNumber)
	if err != nil {
		return err
	}
	if !resp.IssuerHash.Available() {
		return fmt.Errorf("CertID hash %v not available", resp.IssuerHash)
	}
	key, err := publicKeyBits(issuer)
	if err != nil {
		return err
	}
	if !bytes.Equal(nameHash, digest(resp.IssuerHash, issuer.RawSubject)) || !bytes.Equal(keyHash, digest(resp.IssuerHash, key)) {
		return errors.New("the response is about a certificate of another issuer")
	}
	return nil
}

// firstCertID reads ResponseData (RFC 6960 §4.2.1) and returns the issuer
// name and key hashes of the first SingleResponse for serial.
func firstCertID(tbs []byte, serial *big.Int) (nameHash, keyHash []byte, err error) {
	in := cryptobyte.String(tbs)
	var data, responses cryptobyte.String
	if !in.ReadASN1(&data, cbasn1.SEQUENCE) ||
		!data.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!data.SkipASN1(readAnyTag(data)) || // responderID
		!data.SkipASN1(cbasn1.GeneralizedTime) || // producedAt
		!data.ReadASN1(&responses, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("response data malformed")
	}
	for !responses.Empty() {
		var single, certID cryptobyte.String
		var n big.Int
		if !responses.ReadASN1(&single, cbasn1.SEQUENCE) ||
			!single.ReadASN1(&certID, cbasn1.SEQUENCE) ||
			!certID.SkipASN1(cbasn1.SEQUENCE) || // hashAlgorithm
			!certID.ReadASN1Bytes(&nameHash, cbasn1.OCTET_STRING) ||
			!certID.ReadASN1Bytes(&keyHash, cbasn1.OCTET_STRING) ||
			!certID.ReadASN1Integer(&n) {
			return nil, nil, errors.New("single response malformed")
		}
		if n.Cmp(serial) == 0 {
			return nameHash, keyHash, nil
		}
	}
	return nil, nil, errors.New("no response for the certificate's serial number")
}

// readAnyTag returns the tag of the next element of s, without reading it.
func readAnyTag(s cryptobyte.String) cbasn1.Tag {
	var tag cbasn1.Tag
	var skip cryptobyte.String
	if !s.ReadAnyASN1(&skip, &tag) {
		return 0xff // no element: SkipASN1 with it fails
	}
	return tag
}

// publicKeyBits returns the subjectPublicKey BIT STRING of cert's
// SubjectPublicKeyInfo, what OCSP's key hashes are over (RFC 6960 §4.1.1).
func publicKeyBits(cert *x509.Certificate) ([]byte, error) {
	spki := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var seq cryptobyte.String
	var key []byte
	if !spki.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&key) {
		return nil, fmt.Errorf("certificate %q: public key malformed", cert.Subject)
	}
	return key, nil
}

func digest(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// fresh checks an answer's validity window at the verification time at
// and returns its end: nextUpdate, or for an answer without one,
// thisUpdate + noNext. thisUpdate may be up to skew after at (the other
// side's clock).
func fresh(thisUpdate, nextUpdate, at time.Time, skew, noNext time.Duration) (time.Time, error) {
	if thisUpdate.After(at.Add(skew)) {
		return time.Time{}, fmt.Errorf("not yet valid: thisUpdate %s is after the verification time %s",
			thisUpdate.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	next := nextUpdate
	if next.IsZero() {
		next = thisUpdate.Add(noNext)
	}
	if !at.Before(next) {
		return time.Time{}, fmt.Errorf("expired: nextUpdate %s is not after the verification time %s",
			next.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return next, nil
}

// weakSignature reports whether alg is refused for a response or a CRL:
// unknown, or over MD2, MD5 or SHA-1, as certharvest refuses them in a
// chain.
func weakSignature(alg x509.SignatureAlgorithm) bool {
	switch alg {
	case x509.UnknownSignatureAlgorithm, x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA,
		x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}
