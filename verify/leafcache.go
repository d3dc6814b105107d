package verify

import (
	"crypto/x509"
	"strconv"
	"sync"
)

// The senders' certificates, parsed once (certCache.leaves).

// maxKnownLeaves and maxKnownLeafBytes bound the senders' certificates a
// Pipeline keeps parsed (certCache.leaves): about 4,096 senders of an
// RSA-2048 certificate. A sender sending endless new certificates only
// pushes the others out (gencache).
const (
	maxKnownLeaves    = 4096
	maxKnownLeafBytes = 24 << 20
)

// knownLeafOverhead estimates what a parsed certificate holds besides its
// DER encoding (the parsed names, extensions, key and big integers), and
// its CertInfo and story words: measured at 3-4 KB for the benchmark
// corpus's RSA-2048 certificates.
const knownLeafOverhead = 4096

// knownLeaf is a sender's certificate, parsed, and what is derived from it
// alone, computed on first use: its CertInfo and its story words.
type knownLeaf struct {
	cert  *x509.Certificate
	info  func() *CertInfo
	words func() *certWords
}

func newKnownLeaf(c *x509.Certificate) *knownLeaf {
	return &knownLeaf{
		cert: c,
		info: sync.OnceValue(func() *CertInfo { return DescribeCertificate(c) }),
		words: sync.OnceValue(func() *certWords {
			return &certWords{line: certificateLine(c), quoted: strconv.Quote(certName(c))}
		}),
	}
}

// knownLeafSize is what a knownLeaf of c costs, its key in the cache
// included.
func knownLeafSize(c *x509.Certificate) int { return 2*len(c.Raw) + knownLeafOverhead }

// describe returns DescribeCertificate(c), from the cache of known senders'
// certificates when it holds c. The CertInfo is the caller's own (the
// profile stage fills in its Profile and Lint); its Emails are shared and
// never modified.
func (p *Pipeline) describe(c *x509.Certificate) *CertInfo {
	known, ok := p.certs.leaves.Get(c.Raw)
	if !ok {
		return DescribeCertificate(c)
	}
	info := *known.info()
	return &info
}
