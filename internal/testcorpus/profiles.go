package testcorpus

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// The S/MIME Baseline Requirements profiles ("generations", S/MIME BRs
// §7.1.6.1), as ProfileSpec.Profile names them.
const (
	ProfileLegacy       = "legacy"
	ProfileMultipurpose = "multipurpose"
	ProfileStrict       = "strict"
)

// MailboxValidatedPolicy returns the S/MIME BR certificate policy of a
// mailbox-validated certificate of profile (legacy, multipurpose or
// strict): 2.23.140.1.5.1.G, G the generation (1, 2, 3).
func MailboxValidatedPolicy(profile string) (asn1.ObjectIdentifier, error) {
	gen := map[string]int{ProfileLegacy: 1, ProfileMultipurpose: 2, ProfileStrict: 3}[profile]
	if gen == 0 {
		return nil, fmt.Errorf("testcorpus: unknown S/MIME BR profile %q", profile)
	}
	return asn1.ObjectIdentifier{2, 23, 140, 1, 5, 1, gen}, nil
}

// ProfileLegacyNotBefore is the NotBefore of the legacy certificates
// IssueProfileLeaf makes: the BRs stopped the legacy generation for
// certificates issued from 2025-07-15 (ballot SMC08; zlint's
// e_legacy_generation_deprecated), so a legacy certificate that is still
// valid at At was issued before.
var ProfileLegacyNotBefore = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// ProfileSpec describes a mailbox-validated S/MIME BR subscriber
// certificate.
type ProfileSpec struct {
	// Address goes into the SAN rfc822Name, the subject commonName and
	// the subject emailAddress (all a mailbox-validated subject may hold,
	// S/MIME BRs §7.1.4.2.2).
	Address string
	// Profile is legacy, multipurpose or strict; "" for a certificate
	// without any certificate policy (a private CA's).
	Profile string
	// Key is the subject key: LeafKey (RSA) when nil; an ECDSA key
	// gets keyAgreement where RSA gets keyEncipherment.
	Key crypto.Signer
	// Broken adds what the BRs forbid to a certificate that claims a
	// profile: an organizationName in the mailbox-validated subject
	// (e_mailbox_validated_enforce_subject_field_restrictions) and no
	// CRL distribution point (e_subscribers_shall_have_crl_distribution_points).
	Broken bool
}

// IssueProfileLeaf issues, from the RSA intermediate, a certificate with
// what its profile requires (S/MIME BRs §7.1.2.3), so that zlint's S/MIME
// BR lints find nothing in it unless spec.Broken: one S/MIME BR policy,
// the subject and SAN of a mailbox-validated certificate, keyUsage
// digitalSignature with keyEncipherment (RSA) or keyAgreement (ECDSA),
// extKeyUsage emailProtection alone, an HTTP CRL distribution point and
// HTTP authority information access. It is valid from NotBefore (legacy:
// ProfileLegacyNotBefore) to NotAfter.
func (f *Fixture) IssueProfileLeaf(spec ProfileSpec) (*x509.Certificate, error) {
	key := spec.Key
	if key == nil {
		key = f.LeafKey
	}
	ku := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if _, rsaKey := key.Public().(*rsa.PublicKey); !rsaKey {
		ku = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	}
	subj := pkix.Name{CommonName: spec.Address, ExtraNames: []pkix.AttributeTypeAndValue{{
		Type:  OIDEmailAddress,
		Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(spec.Address)},
	}}}
	tmpl := &x509.Certificate{
		Subject:               subj,
		NotBefore:             NotBefore,
		NotAfter:              NotAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		BasicConstraintsValid: true,
		EmailAddresses:        []string{spec.Address},
		CRLDistributionPoints: []string{"http://crl.example.org/intermediate.crl"},
		OCSPServer:            []string{"http://ocsp.example.org/"},
		IssuingCertificateURL: []string{"http://ca.example.org/intermediate.crt"},
	}
	if spec.Profile != "" {
		oid, err := MailboxValidatedPolicy(spec.Profile)
		if err != nil {
			return nil, err
		}
		policy, err := x509.OIDFromInts([]uint64{2, 23, 140, 1, 5, 1, uint64(oid[6])})
		if err != nil {
			return nil, err
		}
		tmpl.Policies = []x509.OID{policy}
		if spec.Profile == ProfileLegacy {
			tmpl.NotBefore = ProfileLegacyNotBefore
		}
	}
	if spec.Broken {
		tmpl.Subject.Organization = []string{"certharvest tests"}
		tmpl.CRLDistributionPoints = nil
	}
	return Issue(tmpl, f.Intermediate, key.Public(), f.IntermediateKey)
}

// WithProfile makes SignedMessage sign with a certificate from
// IssueProfileLeaf(spec), spec.Address set to the message's From.
func WithProfile(spec ProfileSpec) MessageOption {
	return func(o *messageOptions) {
		o.issue = func(f *Fixture, addr string) (*x509.Certificate, crypto.Signer, error) {
			spec.Address = addr
			cert, err := f.IssueProfileLeaf(spec)
			return cert, spec.Key, err
		}
	}
}
