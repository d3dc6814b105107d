package verify

import (
	"bytes"
	"crypto/x509"
	"time"

	"github.com/certharvest/certharvest/internal/gencache"
)

// The verdicts of chains already verified (chainCache).

// maxChainVerdicts and maxChainVerdictBytes bound the chain verdicts a
// Pipeline keeps (chainCache): one per sender's certificate, as
// maxKnownLeaves.
const (
	maxChainVerdicts     = 4096
	maxChainVerdictBytes = 16 << 20
)

// chainVerdictOverhead estimates what a chainVerdict holds besides the DER
// encodings it is keyed and compared by.
const chainVerdictOverhead = 512

// chainCache keeps, by the leaf certificate's DER encoding, the chain that
// verifyPath found for it (a successful verdict; a failure is never kept),
// so that a sender already known costs no x509.Certificate.Verify: about
// 50 µs and an RSA verification per message.
//
// A kept chain is returned only for the same inputs, where a verification
// would find the same chain:
//
//   - the same leaf, byte for byte (the key), and the same usable
//     certificates of the message (verifyPath's bag less the signer and
//     the weak keys, whose warnings are logged every time), byte for byte
//     and in the same order;
//   - the same trust roots, EKU (emailProtection) and key-size rules: the
//     cache belongs to one Pipeline, whose Options.Roots never change, and
//     the rules are constants of the code;
//   - a verification time at which every certificate of the chain and of
//     the usable ones is as valid, or not yet or no longer valid, as when
//     the chain was verified: x509 looks at the time only to judge
//     validity, so the path search at that time is the same one, chain
//     for chain;
//   - and no trusted root that was not in the chain could have come into
//     it: for the leaf and every usable certificate, the trusted roots with
//     its issuer's name are none, or exactly the one that ends the chain
//     (the pool of roots cannot be listed, so the roots that chain could
//     not be checked for validity otherwise). Else nothing is kept.
//
// The checks after the chain (revocation, the S/MIME BR profile, the
// store) run on every message, as do the leaf's own checks before it
// (checkValidity and key usage, in verifyChain); the chain's keys
// (checkChainKeys) and its SmtpUTF8Mailbox constraints are checked again
// too, which costs next to nothing. On the reference path
// (Options.Reference) nothing is kept: the cache is nil.
type chainCache struct {
	verdicts *gencache.Cache[*chainVerdict]
}

// chainVerdict is a verified chain, kept in the terms of the inputs it was
// verified from (see chainCache).
type chainVerdict struct {
	// usable are the DER encodings of verifyPath's usable certificates.
	usable [][]byte
	// links are the chain's certificates after the leaf: by their place
	// in usable, or (the trusted root) as a certificate of the pool.
	links []chainLink
	// validity are the certificates whose validity at the verification
	// time must be what it was: the chain's and the usable ones.
	validity []validityState
}

type chainLink struct {
	usable int // index in usable, or -1: root
	root   *x509.Certificate
}

type validityState struct {
	notBefore, notAfter time.Time
	valid, early        bool // valid; else not yet valid (early) or expired
}

func validityAt(c *x509.Certificate, at time.Time) validityState {
	s := validityState{notBefore: c.NotBefore, notAfter: c.NotAfter}
	// As x509 judges it (and checkValidity).
	s.early = at.Before(c.NotBefore)
	s.valid = !s.early && !at.After(c.NotAfter)
	return s
}

func (s validityState) sameAt(at time.Time) bool {
	early := at.Before(s.notBefore)
	return early == s.early && (!early && !at.After(s.notAfter)) == s.valid
}

// get returns the chain kept for signer with these usable certificates at
// time at, in this message's certificates (signer first); nil when there is
// none to reuse.
func (cc *chainCache) get(signer *x509.Certificate, usable []*x509.Certificate, at time.Time) []*x509.Certificate {
	v, ok := cc.verdicts.Get(signer.Raw)
	if !ok || len(v.usable) != len(usable) {
		return nil
	}
	for i, c := range usable {
		if !bytes.Equal(c.Raw, v.usable[i]) {
			return nil
		}
	}
	for _, s := range v.validity {
		if !s.sameAt(at) {
			return nil
		}
	}
	chain := make([]*x509.Certificate, 1+len(v.links))
	chain[0] = signer
	for i, l := range v.links {
		if l.usable >= 0 {
			chain[i+1] = usable[l.usable]
		} else {
			chain[i+1] = l.root
		}
	}
	return chain
}

// put keeps chain, the verified chain of signer with these usable
// certificates at time at, when it can be reused (see chainCache).
// rootSubjects counts the pipeline's trusted roots by subject
// (linkCache.rootSubjects); nil keeps nothing.
func (cc *chainCache) put(rootSubjects map[string]int, signer *x509.Certificate, usable, chain []*x509.Certificate, at time.Time) {
	if cc.verdicts == nil || rootSubjects == nil || len(chain) == 0 || chain[0] != signer {
		return
	}
	// The chain's last certificate is a trusted root (x509 ends every
	// chain at one); a root that could stand elsewhere in the search is
	// not tracked.
	root := chain[len(chain)-1]
	for _, c := range append([]*x509.Certificate{signer}, usable...) {
		switch rootSubjects[string(c.RawIssuer)] {
		case 0:
		case 1:
			if !bytes.Equal(c.RawIssuer, root.RawSubject) {
				return
			}
		default:
			return
		}
	}
	v := &chainVerdict{usable: make([][]byte, len(usable))}
	size := len(signer.Raw) + chainVerdictOverhead
	for i, c := range usable {
		// A copy: on the pkcs7 path a certificate's Raw is a slice of
		// the whole re-encoded CMS, content and all, which the verdict
		// would otherwise keep.
		v.usable[i] = bytes.Clone(c.Raw)
		size += len(c.Raw)
		v.validity = append(v.validity, validityAt(c, at))
	}
	for i, c := range chain {
		v.validity = append(v.validity, validityAt(c, at))
		if i == 0 {
			continue
		}
		l := chainLink{usable: -1}
		if i == len(chain)-1 {
			l.root = c
		} else {
			for j, u := range usable {
				if u == c {
					l.usable = j
					break
				}
			}
			if l.usable < 0 {
				return // not from this message: not expected of x509
			}
		}
		v.links = append(v.links, l)
	}
	cc.verdicts.Put(string(signer.Raw), v, size)
}
