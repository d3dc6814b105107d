package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The reference path (Options.Reference) is for audits: it must give every
// message what the default path gives, and it must really leave out the CMS
// fast path and the chain link cache.

// TestReferencePathCorpus runs every case of the test corpus, and every
// message of the frozen sample, twice (the second time with the caches warm
// and the certificates already stored) through a pipeline on the default
// path and one on the reference path: reason, detail, action, certificate,
// chain and story must be the same. Then the reference pipeline's link
// cache and parsed-certificate cache must be empty (only the fast path
// parses through the latter: an empty one means no CMS went that way),
// while the default pipeline's are not, so that the check can fail; so
// for the RSA moduli kept (internal/rsaverify).
func TestReferencePathCorpus(t *testing.T) {
	f, err := internalFixture()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseDKIMKeys(bytes.NewReader(f.KeysFile()))
	if err != nil {
		t.Fatal(err)
	}
	var corpus []referenceMessage
	for _, c := range f.Cases() {
		corpus = append(corpus, referenceMessage{c.Name, c.Data})
	}
	sample := loadFuzzSample(t)
	var messages []referenceMessage
	for i, raw := range sample.messages {
		messages = append(messages, referenceMessage{fmt.Sprintf("sample-%02d", i+1), raw})
	}
	for _, run := range []struct {
		name     string
		roots    *x509.CertPool
		lookup   LookupTXTFunc
		at       time.Time
		messages []referenceMessage
	}{
		{"testcorpus", f.TrustPool(), keys.LookupTXT, testcorpus.At, corpus},
		{"sample", sample.roots, sample.keys.LookupTXT, sampleAt, messages},
	} {
		t.Run(run.name, func(t *testing.T) {
			fast := newReferenceTestPipeline(t, run.roots, run.lookup, run.at, false)
			ref := newReferenceTestPipeline(t, run.roots, run.lookup, run.at, true)
			accepted := 0
			for pass := range 2 {
				for _, m := range run.messages {
					a, b := fast.verify(m), ref.verify(m)
					if a.Reason == ReasonOK {
						accepted++
					}
					if a.Reason != b.Reason || a.Detail != b.Detail || a.Action != b.Action {
						t.Errorf("pass %d, %s: default path %s %q %s, reference path %s %q %s",
							pass, m.name, a.Reason, a.Detail, a.Action, b.Reason, b.Detail, b.Action)
					}
					if !a.Cert.Equal(b.Cert) || !sameChain(a.Chain, b.Chain) {
						t.Errorf("pass %d, %s: default path certificate %s chain %s, reference path %s %s",
							pass, m.name, certName(a.Cert), chainNames(a.Chain), certName(b.Cert), chainNames(b.Chain))
					}
					if a.story == "" {
						t.Fatalf("%s: no story told", m.name)
					}
					if a.story != b.story {
						t.Errorf("pass %d, %s: the stories differ\ndefault path:\n%s\nreference path:\n%s", pass, m.name, a.story, b.story)
					}
				}
			}
			if accepted == 0 {
				t.Fatal("no message accepted: the comparison proves little")
			}
			if links, certs := fast.cacheSizes(); links == 0 || certs == 0 {
				t.Errorf("default path: %d links, %d parsed certificates cached; want some of each", links, certs)
			}
			if links, certs := ref.cacheSizes(); links != 0 || certs != 0 {
				t.Errorf("reference path: %d links, %d parsed certificates cached; want none", links, certs)
			}
			// RSA signatures went through the default path's
			// rsaverify.Verifier, kept from pass to pass, and through
			// crypto/rsa alone on the reference path.
			if n := fast.rsa.Len(); n == 0 || ref.rsa != nil {
				t.Errorf("default path: %d RSA keys kept, want some; reference path has a Verifier: %v", n, ref.rsa != nil)
			}
		})
	}
}

type referenceMessage struct {
	name string
	raw  []byte
}

// referenceTestPipeline is a pipeline that keeps each message's story and
// stores certificates in memory.
type referenceTestPipeline struct {
	*Pipeline
	log *bytes.Buffer
}

func newReferenceTestPipeline(t *testing.T, roots *x509.CertPool, lookup LookupTXTFunc, at time.Time, reference bool) *referenceTestPipeline {
	t.Helper()
	var log bytes.Buffer
	p, err := New(Options{
		Roots:     roots,
		LookupTXT: lookup,
		Now:       func() time.Time { return at },
		Store:     &addressStore{},
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})),
		Reference: reference,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &referenceTestPipeline{Pipeline: p, log: &log}
}

// referenceResult is a Result with the story told.
type referenceResult struct {
	*Result
	story string
}

func (p *referenceTestPipeline) verify(m referenceMessage) referenceResult {
	p.log.Reset()
	res := p.Verify(context.Background(), &Message{Raw: m.raw, ID: m.name, Envelope: Envelope{Source: "test"}})
	return referenceResult{res, p.log.String()}
}

// cacheSizes returns the number of links and of parsed certificates cached.
func (p *referenceTestPipeline) cacheSizes() (links, certs int) {
	p.links.mu.RLock()
	links = len(p.links.links)
	p.links.mu.RUnlock()
	p.certs.mu.RLock()
	certs = len(p.certs.certs)
	p.certs.mu.RUnlock()
	return links, certs
}

// addressStore keeps the current certificate of each address in memory.
type addressStore struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

func (s *addressStore) StoreSet(_ context.Context, addr string, set CertSet) (StoreResult, error) {
	cert := set.Encryption
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certs[addr].Equal(cert) {
		return StoreResult{Action: ActionUnchanged, Path: filepath.Join("certs", addr+".crt")}, nil
	}
	if s.certs == nil {
		s.certs = map[string]*x509.Certificate{}
	}
	s.certs[addr] = cert
	return StoreResult{Action: ActionStored, Path: filepath.Join("certs", addr+".crt"), Bytes: len(cert.Raw)}, nil
}
