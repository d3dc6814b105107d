package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

var (
	fixtureOnce sync.Once
	fixture     *testcorpus.Fixture
	fixtureErr  error
)

// testFixture generates the test PKI and corpus once per test binary.
func testFixture(t testing.TB) *testcorpus.Fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = testcorpus.New() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

// memStore is a CertStore in memory.
type memStore struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
	err   error
}

func (s *memStore) StoreSet(_ context.Context, addr string, set verify.CertSet) (verify.StoreResult, error) {
	cert := set.Encryption
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return verify.StoreResult{}, s.err
	}
	if s.certs == nil {
		s.certs = map[string]*x509.Certificate{}
	}
	if cur, ok := s.certs[addr]; ok && cur.Equal(cert) {
		return verify.StoreResult{Action: verify.ActionUnchanged, Path: addr}, nil
	}
	s.certs[addr] = cert
	return verify.StoreResult{Action: verify.ActionStored, Path: addr, Bytes: len(cert.Raw)}, nil
}

func lookupFrom(f *testcorpus.Fixture) verify.LookupTXTFunc {
	return func(_ context.Context, name string) ([]string, error) {
		txts, err := f.LookupTXT(name)
		if err != nil {
			return nil, &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
		}
		return txts, nil
	}
}

func newPipeline(t testing.TB, f *testcorpus.Fixture, mod func(*verify.Options)) (*verify.Pipeline, *memStore) {
	t.Helper()
	store := &memStore{}
	opts := verify.Options{
		Roots:     f.TrustPool(),
		LookupTXT: lookupFrom(f),
		Now:       func() time.Time { return testcorpus.At },
		Store:     store,
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := verify.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, store
}

// firstAccepted returns the corpus's first case that must be accepted.
func firstAccepted(t *testing.T, f *testcorpus.Fixture) testcorpus.Case {
	t.Helper()
	for _, c := range f.Cases() {
		if c.Reason == testcorpus.ReasonOK {
			return c
		}
	}
	t.Fatal("the corpus has no accepted case")
	return testcorpus.Case{}
}

func TestPipelineCorpus(t *testing.T) {
	f := testFixture(t)
	p, store := newPipeline(t, f, nil)
	for _, c := range f.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			res := p.Verify(context.Background(), &verify.Message{Raw: c.Data, Envelope: verify.Envelope{Source: "test"}})
			if string(res.Reason) != c.Reason {
				t.Fatalf("reason = %s (%s), want %s", res.Reason, res.Detail, c.Reason)
			}
			if res.Detail == "" {
				t.Error("no detail")
			}
			if !res.Accepted() {
				if res.Action != "" {
					t.Errorf("rejected message has action %s", res.Action)
				}
				return
			}
			if string(res.Action) != c.Action {
				t.Errorf("action = %s, want %s", res.Action, c.Action)
			}
			if res.From != c.Address {
				t.Errorf("from = %s, want %s", res.From, c.Address)
			}
			store.mu.Lock()
			stored := store.certs[c.Address]
			store.mu.Unlock()
			want := res.Cert
			if c.EncryptionCert != nil {
				var err error
				if want, err = x509.ParseCertificate(c.EncryptionCert); err != nil {
					t.Fatal(err)
				}
			}
			if stored == nil || !stored.Equal(want) || !res.EncCert.Equal(want) {
				t.Fatalf("certificate for %s not stored", c.Address)
			}
			if !strings.EqualFold(res.DKIM.Domain, c.Address[strings.IndexByte(c.Address, '@')+1:]) {
				t.Errorf("DKIM domain %s not aligned with %s", res.DKIM.Domain, c.Address)
			}
			if len(res.Chain) < 2 || !res.Chain[len(res.Chain)-1].Equal(f.Root) {
				t.Errorf("chain does not end at the test root: %d certificates", len(res.Chain))
			}
		})
	}
}

// Archived Unix mail has bare LF line endings; the verdict must not change.
func TestPipelineBareLF(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, nil)
	for _, c := range f.Cases() {
		if len(c.Data) == 0 {
			continue
		}
		res := p.Verify(context.Background(), &verify.Message{Raw: testcorpus.ToLF(c.Data)})
		if string(res.Reason) != c.Reason {
			t.Errorf("%s as LF: reason = %s (%s), want %s", c.Name, res.Reason, res.Detail, c.Reason)
		}
	}
}

func TestPipelineDKIMKeys(t *testing.T) {
	f := testFixture(t)
	ok := firstAccepted(t, f)
	tests := []struct {
		name   string
		lookup verify.LookupTXTFunc
		want   verify.Reason
	}{
		{"key absent (NXDOMAIN)", func(context.Context, string) ([]string, error) {
			return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
		}, verify.ReasonDKIMInvalid},
		{"DNS timeout", func(context.Context, string) ([]string, error) {
			return nil, &net.DNSError{Err: "i/o timeout", IsTimeout: true}
		}, verify.ReasonDKIMTempError},
		{"SERVFAIL", func(context.Context, string) ([]string, error) {
			return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
		}, verify.ReasonDKIMTempError},
		{"key revoked (empty p=)", func(context.Context, string) ([]string, error) {
			return []string{"v=DKIM1; k=rsa; p="}, nil
		}, verify.ReasonDKIMInvalid},
		{"two records", func(ctx context.Context, name string) ([]string, error) {
			txts, err := lookupFrom(f)(ctx, name)
			return append(txts, txts...), err
		}, verify.ReasonDKIMInvalid},
		{"keys file", func() verify.LookupTXTFunc {
			keys, err := verify.ParseDKIMKeys(bytes.NewReader(f.KeysFile()))
			if err != nil {
				t.Fatal(err)
			}
			return keys.LookupTXT
		}(), verify.ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPipeline(t, f, func(o *verify.Options) { o.LookupTXT = tt.lookup })
			res := p.Verify(context.Background(), &verify.Message{Raw: ok.Data})
			if res.Reason != tt.want {
				t.Fatalf("reason = %s (%s), want %s", res.Reason, res.Detail, tt.want)
			}
			if tt.want == verify.ReasonDKIMTempError && !res.Reason.Temporary() {
				t.Error("dkim_temperror is not temporary")
			}
		})
	}
}

// A message relayed by a mailing service carries the service's DKIM
// signature beside the sender's. When the sender's key cannot be fetched
// this time, the verdict must stay temporary (a later attempt may pass),
// not become a final dkim_domain_mismatch; a temporary failure of another
// domain's key alone can never make the message pass.
func TestPipelineDKIMTemporaryBeforeMismatch(t *testing.T) {
	f := testFixture(t)
	ok := firstAccepted(t, f)
	fromDomain := ok.Address[strings.LastIndexByte(ok.Address, '@')+1:]
	var service string
	for _, d := range testcorpus.DKIMDomains {
		if d != fromDomain {
			service = d
			break
		}
	}
	relayed, err := f.DKIMSign(ok.Data, service)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(fromErr, serviceErr error) verify.LookupTXTFunc {
		return func(ctx context.Context, name string) ([]string, error) {
			switch {
			case strings.HasSuffix(name, "._domainkey."+fromDomain) && fromErr != nil:
				return nil, fromErr
			case strings.HasSuffix(name, "._domainkey."+service) && serviceErr != nil:
				return nil, serviceErr
			}
			return lookupFrom(f)(ctx, name)
		}
	}
	timeout := &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	absent := &net.DNSError{Err: "no such host", IsNotFound: true}
	tests := []struct {
		name                string
		fromErr, serviceErr error
		want                verify.Reason
	}{
		{"both pass", nil, nil, verify.ReasonOK},
		{"sender's key times out, the service's passes", timeout, nil, verify.ReasonDKIMTempError},
		{"sender's key absent, the service's passes", absent, nil, verify.ReasonDKIMDomainMismatch},
		{"sender's passes, the service's key times out", nil, timeout, verify.ReasonOK},
		{"sender's key absent, the service's times out", absent, timeout, verify.ReasonDKIMInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPipeline(t, f, func(o *verify.Options) { o.LookupTXT = lookup(tt.fromErr, tt.serviceErr) })
			res := p.Verify(context.Background(), &verify.Message{Raw: relayed})
			if res.Reason != tt.want {
				t.Fatalf("reason = %s (%s), want %s", res.Reason, res.Detail, tt.want)
			}
		})
	}
}

func TestPipelineStoreFailure(t *testing.T) {
	f := testFixture(t)
	p, store := newPipeline(t, f, nil)
	store.err = errors.New("disk full")
	for _, c := range f.Cases() {
		if c.Reason != testcorpus.ReasonOK {
			continue
		}
		res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
		if res.Reason != verify.ReasonStoreFailed || !strings.Contains(res.Detail, "disk full") {
			t.Fatalf("reason = %s (%s), want store_failed", res.Reason, res.Detail)
		}
		return
	}
}

func TestPipelineWithoutStore(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, func(o *verify.Options) { o.Store = nil })
	c := f.Cases()[0]
	res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
	if !res.Accepted() || res.Action != "" || res.CertFile != "" {
		t.Fatalf("reason = %s, action = %q, file = %q", res.Reason, res.Action, res.CertFile)
	}
}

// A certificate is judged at the injected time, never the CMS signingTime
// or the wall clock.
func TestPipelineVerificationTime(t *testing.T) {
	f := testFixture(t)
	c := f.Cases()[0]
	for _, tt := range []struct {
		at   time.Time
		want verify.Reason
	}{
		{testcorpus.At, verify.ReasonOK},
		{time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), verify.ReasonCertExpired},
		{time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), verify.ReasonCertNotYetValid},
	} {
		p, _ := newPipeline(t, f, func(o *verify.Options) { o.Now = func() time.Time { return tt.at } })
		res := p.Verify(context.Background(), &verify.Message{Raw: c.Data})
		if res.Reason != tt.want {
			t.Errorf("at %s: reason = %s (%s), want %s", tt.at, res.Reason, res.Detail, tt.want)
		}
		if !res.At.Equal(tt.at) {
			t.Errorf("At = %s, want %s", res.At, tt.at)
		}
	}
}

// Truncated and bit-flipped versions of every case get a verdict, never a
// panic or an internal error.
func TestPipelineDamagedInput(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, nil)
	for _, c := range f.Cases() {
		for i := 1; i < 16; i++ {
			n := len(c.Data) * i / 16
			truncated := c.Data[:n]
			flipped := bytes.Clone(c.Data)
			if n < len(flipped) {
				flipped[n] ^= 0x55
			}
			for _, raw := range [][]byte{truncated, flipped} {
				res := p.Verify(context.Background(), &verify.Message{Raw: raw})
				if res.Reason == verify.ReasonInternalError || res.Reason == "" {
					t.Fatalf("%s damaged at %d: %s (%s)", c.Name, n, res.Reason, res.Detail)
				}
			}
		}
	}
}

func TestPipelineLogStory(t *testing.T) {
	f := testFixture(t)
	var buf bytes.Buffer
	logger := slogText(&buf)
	p, _ := newPipeline(t, f, func(o *verify.Options) { o.Logger = logger; o.BlockPrefix = true })
	res := p.Verify(context.Background(), &verify.Message{Raw: f.Cases()[0].Data, ID: "m1", Envelope: verify.Envelope{Source: "test"}})
	if !res.Accepted() {
		t.Fatal(res.Reason, res.Detail)
	}
	log := buf.String()
	for _, want := range []string{"DKIM passed", "content-type=multipart/signed", "Certificate: subject email_address=",
		"role=signer", "chain verified", "certificate address matches From", "written file", "accepted"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.Contains(line, "id=m1") {
			t.Errorf("line %d is not tagged with the message id: %s", i, line)
		}
		if i > 0 && !strings.Contains(line, "msg=\"| ") {
			t.Errorf("line %d is not prefixed: %s", i, line)
		}
	}
}

func TestPipelineStageTimes(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, nil)
	res := p.Verify(context.Background(), &verify.Message{Raw: f.Cases()[0].Data})
	if !res.Accepted() {
		t.Fatal(res.Reason, res.Detail)
	}
	var sum time.Duration
	for s, d := range res.Stages {
		if d <= 0 {
			t.Errorf("stage %s not timed", verify.Stage(s))
		}
		sum += d
	}
	if sum > res.Duration {
		t.Errorf("stages add up to %v, more than the whole %v", sum, res.Duration)
	}
	res = p.Verify(context.Background(), &verify.Message{Raw: []byte("garbage")})
	if res.Stages[verify.StageParse] <= 0 || res.Stages[verify.StageDKIM] != 0 {
		t.Errorf("a message rejected at parse: stages %v", res.Stages)
	}
	if verify.StageDKIM.String() != "dkim" || verify.NumStages.String() != "unknown" {
		t.Error("stage names changed")
	}
}

// panicStore panics in Store, as a bug anywhere in a stage would.
type panicStore struct{}

func (panicStore) StoreSet(context.Context, string, verify.CertSet) (verify.StoreResult, error) {
	panic("a bug in a stage")
}

// A panic in any stage is recovered for its message alone: the message is
// reported as internal_error with the panic in its detail, the log says to
// report it, and the pipeline goes on with the next message.
func TestPipelineRecoversPanic(t *testing.T) {
	f := testFixture(t)
	ok := firstAccepted(t, f)
	var log bytes.Buffer
	p, _ := newPipeline(t, f, func(o *verify.Options) {
		o.Store = panicStore{}
		o.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	res := p.Verify(context.Background(), &verify.Message{Raw: ok.Data})
	if res.Reason != verify.ReasonInternalError || !strings.Contains(res.Detail, "a bug in a stage") {
		t.Fatalf("reason = %s (%s), want internal_error naming the panic", res.Reason, res.Detail)
	}
	if !strings.Contains(log.String(), "internal error: please report it") {
		t.Errorf("the log does not ask for a report:\n%s", log.String())
	}
	// The pipeline goes on with the next message.
	if res := p.Verify(context.Background(), &verify.Message{Raw: []byte("From: x\r\n\r\n")}); res.Reason == verify.ReasonInternalError {
		t.Errorf("the pipeline that panicked no longer works: %s (%s)", res.Reason, res.Detail)
	}
}
