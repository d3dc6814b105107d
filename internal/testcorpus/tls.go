package testcorpus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"
)

// TLSServer is a self-signed TLS server certificate: what a server is
// given, in memory and in PEM, and the pool with which a client trusts it.
type TLSServer struct {
	// Cert is the certificate and its key, Leaf set, for tls.Config.Certificates.
	Cert tls.Certificate
	// Pool trusts Cert alone, for tls.Config.RootCAs.
	Pool *x509.CertPool
	// CertPEM and KeyPEM (PKCS #8) are Cert as files hold it (--tls-cert
	// and --tls-key).
	CertPEM, KeyPEM []byte
}

// SelfSignedTLS makes a self-signed server certificate for hosts, DNS
// names or IP addresses, on a new ECDSA P-256 key. The first host is the
// subject's common name. Unlike the corpus's certificates, it is valid from
// an hour before the wall clock's now to a day after: a TLS client checks
// it at its own time, not at At.
func SelfSignedTLS(hosts ...string) (*TLSServer, error) {
	if len(hosts) == 0 {
		return nil, errors.New("testcorpus: a TLS server certificate needs a host name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcorpus: generating a TLS key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, err := SelfSigned(tmpl, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testcorpus: encoding a TLS key: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &TLSServer{
		Cert:    tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
		Pool:    pool,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}
