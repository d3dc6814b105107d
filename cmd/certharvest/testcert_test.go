package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// selfSigned returns the certificate of tmpl signed by a new P-256 key of
// its own.
func selfSigned(t *testing.T, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := testcorpus.SelfSigned(tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// writeTLSPair writes a self-signed server certificate for hosts (see
// testcorpus.SelfSignedTLS) and its key as dir/tls.crt and dir/tls.key
// (PEM), for --tls-cert and --tls-key, and returns a pool trusting it.
func writeTLSPair(t *testing.T, dir string, hosts ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	srv, err := testcorpus.SelfSignedTLS(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, srv.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, srv.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, srv.Pool
}
