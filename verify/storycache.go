package verify

import (
	"crypto/x509"
	"strconv"
	"sync"
)

// maxStoryCacheCertificates bounds a storyCache: the CA certificates in use
// by the senders, in practice a few dozen (as maxCachedCertificates).
const maxStoryCacheCertificates = 1024

// storyCache keeps what the stories say about the CA certificates that
// recur from message to message (the intermediate in every CMS, the
// intermediate and the root of every chain), so that each is described
// once rather than on every message: its "Certificate: ..." line and its
// quoted name in the "chain verified" line. Both are functions of the
// certificate's DER encoding alone, by which they are kept; a leaf (not a
// CA) is described every time. The zero value is ready; a nil cache
// describes every time.
type storyCache struct {
	mu    sync.RWMutex
	certs map[string]*caWords // by the certificate's DER encoding
}

// caWords are what the stories say about one CA certificate.
type caWords struct {
	line   string // certificateLine
	quoted string // strconv.Quote(certName(c))
}

// words returns what the stories say about c, from the cache when c is a CA
// certificate; nil when c is not one, or the cache is nil.
func (sc *storyCache) words(c *x509.Certificate) *caWords {
	if sc == nil || !c.IsCA {
		return nil
	}
	sc.mu.RLock()
	w := sc.certs[string(c.Raw)]
	sc.mu.RUnlock()
	if w != nil {
		return w
	}
	w = &caWords{line: certificateLine(c), quoted: strconv.Quote(certName(c))}
	sc.mu.Lock()
	if sc.certs == nil {
		sc.certs = make(map[string]*caWords)
	}
	if len(sc.certs) < maxStoryCacheCertificates {
		sc.certs[string(c.Raw)] = w
	}
	sc.mu.Unlock()
	return w
}

// certificateLine returns the message of the story line describing c
// (logCertificate).
func (s *story) certificateLine(c *x509.Certificate) string {
	if w := s.cache.words(c); w != nil {
		return w.line
	}
	return certificateLine(c)
}

// quotedName returns the name of c in a story line, quoted:
// strconv.Quote(certName(c)).
func (s *story) quotedName(c *x509.Certificate) string {
	if w := s.cache.words(c); w != nil {
		return w.quoted
	}
	return strconv.Quote(certName(c))
}
