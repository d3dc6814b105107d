package verify

import (
	"bytes"
	"crypto/x509"
	"slices"
	"sync"

	"github.com/certharvest/certharvest/internal/gencache"
)

// maxCachedCertificates bounds a certCache's CA certificates: the number
// in use by the senders, in practice a few dozen.
const maxCachedCertificates = 1024

// certCache keeps parsed certificates by their DER encoding. Every message
// signed under the same intermediate CA carries that intermediate; parsing
// it once saves a fifth of the CMS stage. CA certificates are kept up to
// maxCachedCertificates. The senders' own certificates (not CAs) are kept
// in leaves, when it is not nil (knownLeaf): a sender already known, the
// common case of real traffic and of an archive re-scanned, costs no parse
// of its certificate, nor a description of it. A parsed certificate is
// never modified, so one can serve every message. The zero value is ready
// and keeps CA certificates only; a nil cache parses every time.
type certCache struct {
	mu    sync.RWMutex
	certs map[string]*x509.Certificate

	leaves *gencache.Cache[*knownLeaf]
}

// parse returns der parsed, from the cache when it holds it. bag are the
// certificates of the same CMS parsed before der: a signer's certificate
// that the CMS carries twice is parsed twice, so that the two are two
// certificates (two pointers), as without the cache, for the code that
// tells the signer's certificate from the others by its pointer
// (verifyPath, encryptionCert).
func (c *certCache) parse(der []byte, bag []*x509.Certificate) (*x509.Certificate, error) {
	if c == nil {
		return x509.ParseCertificate(der)
	}
	c.mu.RLock()
	cert := c.certs[string(der)]
	c.mu.RUnlock()
	if cert != nil {
		return cert, nil
	}
	known, ok := c.leaves.Get(der)
	if ok && !slices.Contains(bag, known.cert) {
		return known.cert, nil
	}
	// A copy: the parsed certificate refers to the bytes it was parsed
	// from, which here belong to one message.
	cert, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		if !ok {
			c.leaves.Put(string(cert.Raw), newKnownLeaf(cert), knownLeafSize(cert))
		}
		return cert, nil
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
