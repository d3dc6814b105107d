package verify

import (
	"crypto/x509"
	"strconv"
	"sync"

	"github.com/certharvest/certharvest/internal/gencache"
)

// maxStoryCacheCertificates bounds a storyCache: the CA certificates in use
// by the senders, in practice a few dozen (as maxCachedCertificates).
const maxStoryCacheCertificates = 1024

// storyCache keeps what the stories say about the CA certificates that
// recur from message to message (the intermediate in every CMS, the
// intermediate and the root of every chain), so that each is described
// once rather than on every message: its "Certificate: ..." line and its
// quoted name in the "chain verified" line. Both are functions of the
// certificate's DER encoding alone, by which they are kept. A sender's
// certificate (not a CA) is described once too when it is among the known
// senders' certificates, leaves (certCache.leaves), else every time. The
// zero value is ready and keeps the CAs' words only; a nil cache describes
// every time.
type storyCache struct {
	mu    sync.RWMutex
	certs map[string]*certWords // by the certificate's DER encoding

	leaves *gencache.Cache[*knownLeaf]
}

// certWords are what the stories say about one certificate.
type certWords struct {
	line   string // certificateLine
	quoted string // strconv.Quote(certName(c))
}

// words returns what the stories say about c, from the cache when c is a CA
// certificate or a known sender's; nil when it is neither, or the cache is
// nil.
func (sc *storyCache) words(c *x509.Certificate) *certWords {
	if sc == nil {
		return nil
	}
	if !c.IsCA {
		if known, ok := sc.leaves.Get(c.Raw); ok {
			return known.words()
		}
		return nil
	}
	sc.mu.RLock()
	w := sc.certs[string(c.Raw)]
	sc.mu.RUnlock()
	if w != nil {
		return w
	}
	w = &certWords{line: certificateLine(c), quoted: strconv.Quote(certName(c))}
	sc.mu.Lock()
	if sc.certs == nil {
		sc.certs = make(map[string]*certWords)
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
