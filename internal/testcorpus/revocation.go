package testcorpus

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
)

// RevocationIntermediate issues a CA under Root, with a fresh ECDSA P-256
// key, whose certificate names the OCSP responder ocspURL and the CRL
// crlURL (either may be ""), where the revocation checks of
// --revocation ask about it: for tests and benchmarks with a local
// responder (internal/ocsptest). The certificates it issues (Revocable)
// name their own.
func (f *Fixture) RevocationIntermediate(cn, ocspURL, crlURL string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("testcorpus: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"certharvest tests"}},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter.AddDate(-5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		OCSPServer:            nonEmpty(ocspURL),
		CRLDistributionPoints: nonEmpty(crlURL),
	}
	cert, err := Issue(tmpl, f.Root, key.Public(), f.RootKey)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// revocable is the issuer and the revocation URLs of Revocable.
type revocable struct {
	issuer    *x509.Certificate
	key       crypto.Signer
	ocsp, crl []string
}

// Revocable makes SignedMessage issue the signer's certificate from
// issuer (a RevocationIntermediate; key is its key), naming the OCSP
// responder ocspURL and the CRL crlURL (either may be ""), with issuer in
// the certificate bag instead of the RSA intermediate.
func Revocable(issuer *x509.Certificate, key crypto.Signer, ocspURL, crlURL string) MessageOption {
	return func(o *messageOptions) {
		o.revocable = &revocable{issuer: issuer, key: key, ocsp: nonEmpty(ocspURL), crl: nonEmpty(crlURL)}
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
