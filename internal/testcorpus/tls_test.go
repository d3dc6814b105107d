package testcorpus_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// SelfSigned keeps a serial number it is given, draws one otherwise, and
// leaves the template as it was.
func TestSelfSigned(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "self"}, NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter}
	cert, err := testcorpus.SelfSigned(tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber != nil {
		t.Error("SelfSigned set the template's serial number")
	}
	if cert.SerialNumber.Sign() <= 0 || cert.Issuer.CommonName != "self" || !cert.NotAfter.Equal(testcorpus.NotAfter) {
		t.Errorf("serial %v, issuer %q, not after %v", cert.SerialNumber, cert.Issuer.CommonName, cert.NotAfter)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not signed by its own key: %v", err)
	}
	tmpl.SerialNumber = big.NewInt(7)
	if cert, err = testcorpus.SelfSigned(tmpl, key); err != nil || cert.SerialNumber.Int64() != 7 {
		t.Errorf("serial %v (%v), want 7", cert.SerialNumber, err)
	}
}

// A client trusting SelfSignedTLS's pool completes a handshake with a
// server given its certificate, by name and by IP address, whether loaded
// from memory or from the PEM files.
func TestSelfSignedTLS(t *testing.T) {
	srv, err := testcorpus.SelfSignedTLS("mx.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	fromPEM, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fromPEM.Certificate[0], srv.Cert.Leaf.Raw) {
		t.Error("CertPEM is not Cert")
	}
	for _, tt := range []struct {
		name string
		cert tls.Certificate
	}{{"mx.test", srv.Cert}, {"127.0.0.1", srv.Cert}, {"mx.test", fromPEM}} {
		c, s := net.Pipe()
		server := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{tt.cert}})
		go func() {
			server.Handshake()
			io.Copy(io.Discard, server)
			server.Close()
		}()
		client := tls.Client(c, &tls.Config{RootCAs: srv.Pool, ServerName: tt.name})
		if err := client.Handshake(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		client.Close()
	}
	if _, err := testcorpus.SelfSignedTLS(); err == nil {
		t.Error("SelfSignedTLS without a host succeeded")
	}
}
