package verify

import (
	"context"
	"crypto/x509"
	"errors"
	"strconv"
	"time"

	"github.com/certharvest/certharvest/verify/revocation"
)

// RevocationMode is what a certificate's revocation status decides
// (--revocation).
type RevocationMode string

// The revocation modes.
const (
	// RevocationOff: no revocation check (the default: a check is a
	// network call per new certificate, and tells its CA who wrote).
	RevocationOff RevocationMode = "off"
	// RevocationSoft: a certificate known revoked is refused
	// (cert_revoked); an unknown status passes, with a warning.
	RevocationSoft RevocationMode = "soft"
	// RevocationHard: an unknown status is a temporary failure too
	// (revocation_unknown): serve tries again later, and nothing is
	// stored meanwhile.
	RevocationHard RevocationMode = "hard"
)

// ParseRevocationMode parses off, soft or hard.
func ParseRevocationMode(s string) (RevocationMode, error) {
	switch m := RevocationMode(s); m {
	case RevocationOff, RevocationSoft, RevocationHard:
		return m, nil
	}
	return "", errors.New("want off, soft or hard")
}

// RevocationChecker tells the revocation status of the certificates of a
// verified chain, signer first, at the verification time:
// *revocation.Checker (package verify/revocation).
type RevocationChecker interface {
	CheckChain(ctx context.Context, chain []*x509.Certificate, at time.Time) revocation.Result
}

// RevocationInfo is what the revocation check found, in the report line
// ("revocation").
type RevocationInfo struct {
	// Status is good, revoked or unknown.
	Status string `json:"status"`
	// Source is ocsp or crl, for a known status.
	Source string `json:"source,omitempty"`
	// Cert names the certificate the status is about when it is not the
	// signer's: an intermediate CA's subject.
	Cert string `json:"cert,omitempty"`
	// NextUpdate ends the answer's validity (a good status).
	NextUpdate *time.Time `json:"next_update,omitempty"`
	// RevokedAt and Reason (the CRLReason's name, e.g. keyCompromise) for
	// a revoked certificate.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    string     `json:"revocation_reason,omitempty"`
	// Cached is set when no fetch was needed.
	Cached bool `json:"cached,omitempty"`
	// Detail says why the status is unknown.
	Detail string `json:"detail,omitempty"`
}

// revocationStage checks the revocation of the signer's chain and, when
// the certificate to encrypt to is another (encChain not nil), of its
// chain too, as Options.RevocationMode says, and records them in res:
// Revocation, EncRevocation, and a warning for an unknown status that
// passes (soft). The encryption certificate's failure is said to be its.
func (p *Pipeline) revocationStage(ctx context.Context, chain, encChain []*x509.Certificate, res *Result, log *story) error {
	info, err := p.checkRevocation(ctx, chain, res.At, log)
	res.Revocation = info
	if err != nil {
		return err
	}
	if info != nil && info.Status == "unknown" {
		res.Warnings = append(res.Warnings, "revocation status unknown: "+info.Detail)
	}
	if encChain == nil {
		return nil
	}
	info, err = p.checkRevocation(ctx, encChain, res.At, log)
	res.EncRevocation = info
	if err != nil {
		return encryptionCertError(err)
	}
	if info != nil && info.Status == "unknown" {
		res.Warnings = append(res.Warnings, "revocation status of the encryption certificate unknown: "+info.Detail)
	}
	return nil
}

// checkRevocation checks the revocation status of a verified chain,
// signer (or any end-entity certificate) first and trust anchor last, at
// the verification time at, as Options.RevocationMode says: nil, nil when
// it is off. A revoked certificate in the chain is cert_revoked; an
// unknown status is revocation_unknown in hard mode, and passes in soft
// mode (the caller warns). It serves any chain the pipeline verified: the
// signer's, and a certificate to encrypt to chosen beside it.
func (p *Pipeline) checkRevocation(ctx context.Context, chain []*x509.Certificate, at time.Time, log *story) (*RevocationInfo, error) {
	mode := p.opts.RevocationMode
	if p.opts.Revocation == nil || mode == "" || mode == RevocationOff || len(chain) == 0 {
		return nil, nil
	}
	r := p.opts.Revocation.CheckChain(ctx, chain, at)
	info, err := RevocationVerdict(r, mode)
	switch {
	case r.Status == revocation.Good:
		log.Info("revocation: not revoked (" + revocationSource(r) + ", until " + info.NextUpdate.Format(time.RFC3339) + ")")
	case r.Status == revocation.Unknown && err == nil:
		log.Warn("revocation status of " + revocationSubject(r) + " unknown; accepted all the same (--revocation soft): " + info.Detail)
	}
	return info, err
}

// RevocationVerdict turns the revocation status of a chain into what the
// report says of it and, as mode has it, the failure: cert_revoked for a
// revoked certificate, revocation_unknown for an unknown status in hard
// mode. certharvest revalidate judges a stored certificate with it, as
// the pipeline does a message's.
func RevocationVerdict(r revocation.Result, mode RevocationMode) (*RevocationInfo, error) {
	info := &RevocationInfo{Status: r.Status.String(), Source: r.Source, Cached: r.Cached}
	if r.Cert != nil && r.Depth > 0 {
		info.Cert = r.Cert.Subject.String()
	}
	switch r.Status {
	case revocation.Good:
		next := r.NextUpdate.UTC()
		info.NextUpdate = &next
		return info, nil
	case revocation.Revoked:
		revokedAt := r.RevokedAt.UTC()
		info.RevokedAt, info.Reason = &revokedAt, revocation.ReasonName(r.Reason)
		return info, fail(ReasonCertRevoked, "%s was revoked at %s (%s), says %s",
			revocationSubject(r), revokedAt.Format(time.RFC3339), info.Reason, revocationSource(r))
	}
	detail := "no answer"
	if r.Err != nil {
		detail = r.Err.Error()
	}
	info.Detail = sanitize(detail, maxDetail)
	if mode == RevocationHard {
		return info, fail(ReasonRevocationUnknown, "the revocation status of %s is unknown: %s", revocationSubject(r), info.Detail)
	}
	return info, nil
}

// revocationSubject names the certificate a status is about, for a story
// line or a detail.
func revocationSubject(r revocation.Result) string {
	if r.Cert != nil && r.Depth > 0 {
		return "CA certificate " + strconv.Quote(certName(r.Cert))
	}
	return "the certificate"
}

// revocationSource says where a status came from.
func revocationSource(r revocation.Result) string {
	s := r.Source + " " + r.URL
	if r.Cached {
		s += ", cached"
	}
	return s
}
