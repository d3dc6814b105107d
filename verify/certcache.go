package verify

import (
	"bytes"
	"crypto/x509"
	"sync"
)

// maxCachedCertificates bounds a certCache: the number of CA certificates
// in use by the senders, in practice a few dozen.
const maxCachedCertificates = 1024

// certCache keeps parsed CA certificates by their DER encoding. Every
// message signed under the same intermediate CA carries that intermediate;
// parsing it once saves a fifth of the CMS stage. Only CA certificates are
// kept (a signer's certificate is seldom seen twice), up to
// maxCachedCertificates. A parsed certificate is never modified, so one can
// serve every message. The zero value is ready; a nil cache parses every
// time.
type certCache struct {
	mu    sync.RWMutex
	certs map[string]*x509.Certificate
}

// parse returns der parsed, from the cache when it holds it.
func (c *certCache) parse(der []byte) (*x509.Certificate, error) {
	if c == nil {
		return x509.ParseCertificate(der)
	}
	c.mu.RLock()
	cert := c.certs[string(der)]
	c.mu.RUnlock()
	if cert != nil {
		return cert, nil
	}
	// A copy: the parsed certificate refers to the bytes it was parsed
	// from, which here belong to one message.
	cert, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil || !cert.IsCA {
		return cert, err
	}
	c.mu.Lock()
	if c.certs == nil {
		c.certs = make(map[string]*x509.Certificate)
	}
	if len(c.certs) < maxCachedCertificates {
		c.certs[string(cert.Raw)] = cert
	}
	c.mu.Unlock()
	return cert, nil
}
