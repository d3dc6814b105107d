package verify_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
	"github.com/certharvest/certharvest/verify/revocation"
)

// The caches of a sender already known (its parsed certificate and
// description, its chain, the DKIM key record) must never change what a
// message's verification says: every message of senders seen before is
// verified by a pipeline that has seen them (warm) and by a fresh one, and
// the verdicts, report data and stories must be the same byte for byte.
func TestKnownSenderSameAsNew(t *testing.T) {
	f := testFixture(t)
	var msgs [][]byte
	for i := range 3 {
		addr := fmt.Sprintf("known%d@example.com", i)
		leaf, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SubjectEmail: true})
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			m, err := f.SignedMessage(addr, testcorpus.WithLeaves(map[string]*x509.Certificate{addr: leaf}),
				testcorpus.WithBody(fmt.Sprintf("message %d\n", j)))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
	}
	// And the corpus: accepted and rejected cases, several of one sender.
	for _, c := range f.Cases() {
		msgs = append(msgs, c.Data)
	}
	var warmLog bytes.Buffer
	// Without a store: a store's answer (stored, unchanged) depends on
	// what it was given before, not on the pipeline.
	warm, _ := newPipeline(t, f, func(o *verify.Options) { o.Logger, o.BlockPrefix, o.Store = slogText(&warmLog), true, nil })
	for pass := range 2 {
		for i, m := range msgs {
			var freshLog bytes.Buffer
			fresh, _ := newPipeline(t, f, func(o *verify.Options) { o.Logger, o.BlockPrefix, o.Store = slogText(&freshLog), true, nil })
			warmLog.Reset()
			want := fresh.Verify(context.Background(), &verify.Message{Raw: m, Path: "m.eml"})
			got := warm.Verify(context.Background(), &verify.Message{Raw: m, Path: "m.eml"})
			name := fmt.Sprintf("pass %d, message %d", pass, i)
			if diff := resultDiff(got, want); diff != "" {
				t.Errorf("%s: %s", name, diff)
			}
			if g, w := stripTimes(warmLog.String()), stripTimes(freshLog.String()); g != w {
				t.Errorf("%s: story differs:\nwarm:\n%s\nfresh:\n%s", name, g, w)
			}
		}
	}
}

// resultDiff compares what a Result says, durations apart.
func resultDiff(got, want *verify.Result) string {
	g, w := resultData(got), resultData(want)
	if g != w {
		return "result\n" + g + "\nwant\n" + w
	}
	if !sameCerts(got.Chain, want.Chain) {
		return "chain differs"
	}
	if (got.Cert == nil) != (want.Cert == nil) || got.Cert != nil && !got.Cert.Equal(want.Cert) {
		return "signer differs"
	}
	if (got.EncCert == nil) != (want.EncCert == nil) || got.EncCert != nil && !got.EncCert.Equal(want.EncCert) {
		return "encryption certificate differs"
	}
	if (got.EncCert == got.Cert) != (want.EncCert == want.Cert) || (got.EncCertInfo == got.CertInfo) != (want.EncCertInfo == want.CertInfo) {
		return "the encryption certificate is the signer's in one result only"
	}
	return ""
}

func resultData(r *verify.Result) string {
	b, err := json.Marshal(struct {
		Reason            verify.Reason
		Detail, MessageID string
		From              string
		DKIM              *verify.DKIMResult
		CertInfo          *verify.CertInfo
		EncCertInfo       *verify.CertInfo
		Capabilities      []string
		Warnings          []string
		Action            verify.Action
		CertFile          string
	}{r.Reason, r.Detail, r.MessageID, r.From, r.DKIM, r.CertInfo, r.EncCertInfo, r.Capabilities, r.Warnings, r.Action, r.CertFile})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// stripTimes drops the time stamps of slog's text lines.
func stripTimes(log string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(log, "\n") {
		if strings.HasPrefix(line, "time=") {
			if i := strings.IndexByte(line, ' '); i >= 0 {
				line = line[i+1:]
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// knownSender mints n messages from addr, all signed with one certificate.
func knownSender(t *testing.T, f *testcorpus.Fixture, addr string, n int, opts ...testcorpus.MessageOption) [][]byte {
	t.Helper()
	leaf, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SubjectEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		o := append([]testcorpus.MessageOption{testcorpus.WithLeaves(map[string]*x509.Certificate{addr: leaf}),
			testcorpus.WithBody(fmt.Sprintf("message %d\n", i))}, opts...)
		if msgs[i], err = f.SignedMessage(addr, o...); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

// A chain verdict belongs to the pipeline made for one trust bundle: a
// pipeline with another bundle judges a known sender afresh.
func TestKnownSenderOtherBundle(t *testing.T) {
	f := testFixture(t)
	msgs := knownSender(t, f, "bundle@example.com", 2)
	p, _ := newPipeline(t, f, nil)
	for _, m := range msgs {
		if res := p.Verify(context.Background(), &verify.Message{Raw: m}); !res.Accepted() {
			t.Fatalf("%s: %s", res.Reason, res.Detail)
		}
	}
	// Another bundle: a root of its own, not the fixture's.
	other := x509.NewCertPool()
	other.AddCert(f.UntrustedRoot)
	q, _ := newPipeline(t, f, func(o *verify.Options) { o.Roots = other })
	res := q.Verify(context.Background(), &verify.Message{Raw: msgs[1]})
	if res.Reason != verify.ReasonCertUntrusted {
		t.Errorf("another bundle: %s (%s), want cert_untrusted", res.Reason, res.Detail)
	}
	// The first pipeline still accepts: its bundle has not changed.
	if res := p.Verify(context.Background(), &verify.Message{Raw: msgs[0]}); !res.Accepted() {
		t.Errorf("first bundle again: %s: %s", res.Reason, res.Detail)
	}
}

// A known sender whose certificate is revoked after its chain was kept is
// refused: revocation is checked on every message.
func TestKnownSenderRevokedAfterCaching(t *testing.T) {
	for _, mode := range []verify.RevocationMode{verify.RevocationSoft, verify.RevocationHard} {
		t.Run(string(mode), func(t *testing.T) { testKnownSenderRevokedAfterCaching(t, mode) })
	}
}

func testKnownSenderRevokedAfterCaching(t *testing.T, mode verify.RevocationMode) {
	r := newRevocationSetup(t)
	addr := "revoked.later@example.com"
	leaf, err := r.f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SubjectEmail: true, Issuer: r.inter, IssuerKey: r.key,
		OCSPServer: []string{r.srv.OCSPURL()}, CRLDistributionPoints: []string{r.srv.CRLURL("inter")}})
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 2 {
		m, err := r.f.SignedMessage(addr, testcorpus.Revocable(r.inter, r.key, r.srv.OCSPURL(), r.srv.CRLURL("inter")),
			testcorpus.WithLeaves(map[string]*x509.Certificate{addr: leaf}), testcorpus.WithBody(fmt.Sprintf("message %d\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	// The checker keeps answers until their next update: a fresh one
	// after the revocation, in the same pipeline, asks again.
	checker := &swappableChecker{}
	checker.renew(t)
	p, store := newPipeline(t, r.f, func(o *verify.Options) { o.Revocation, o.RevocationMode = checker, mode })
	for _, m := range msgs {
		res := p.Verify(context.Background(), &verify.Message{Raw: m})
		if !res.Accepted() || res.Revocation == nil || res.Revocation.Status != "good" {
			t.Fatalf("before: %s %s %+v", res.Reason, res.Detail, res.Revocation)
		}
	}
	delete(store.certs, addr)
	r.srv.Revoke(leaf.SerialNumber, testcorpus.At.Add(-time.Hour), 1)
	checker.renew(t)
	for _, m := range msgs {
		res := p.Verify(context.Background(), &verify.Message{Raw: m})
		if res.Reason != verify.ReasonCertRevoked {
			t.Errorf("revoked after caching: %s (%s), want cert_revoked", res.Reason, res.Detail)
		}
	}
	if store.certs[addr] != nil {
		t.Error("the revoked certificate was stored")
	}
}

// A known sender's certificate below the profile required is refused on
// every message, its chain kept or not: the profile is a later stage. And
// a pipeline that requires a profile judges a sender another pipeline
// knows afresh.
func TestKnownSenderProfileRequired(t *testing.T) {
	f := testFixture(t)
	addr := "profile.known@example.com"
	leaf, err := f.IssueProfileLeaf(testcorpus.ProfileSpec{Profile: testcorpus.ProfileLegacy, Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 3 {
		m, err := f.SignedMessage(addr, testcorpus.WithLeaves(map[string]*x509.Certificate{addr: leaf}),
			testcorpus.WithBody(fmt.Sprintf("message %d\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	lax, _ := newPipeline(t, f, nil)
	for _, m := range msgs {
		if res := lax.Verify(context.Background(), &verify.Message{Raw: m}); !res.Accepted() || res.CertInfo.Profile != verify.ProfileLegacy {
			t.Fatalf("no profile required: %s (%s) %+v", res.Reason, res.Detail, res.CertInfo)
		}
	}
	strict, store := newPipeline(t, f, func(o *verify.Options) { o.RequireProfile = verify.ProfileStrict })
	for i, m := range msgs {
		res := strict.Verify(context.Background(), &verify.Message{Raw: m})
		if res.Reason != verify.ReasonCertPolicy || res.CertInfo.Profile != verify.ProfileLegacy {
			t.Errorf("strict required, message %d: %s (%s) %+v", i, res.Reason, res.Detail, res.CertInfo)
		}
	}
	if len(store.certs) != 0 {
		t.Error("a certificate below the profile required was stored")
	}
}

// The DKIM key record is looked up on every message: a key changed or
// revoked in DNS after it was parsed and kept is seen at once, and the
// verdicts are a fresh pipeline's.
func TestKnownSenderDKIMKeyChanged(t *testing.T) {
	f := testFixture(t)
	addr := "dkim.known@example.com"
	msgs := knownSender(t, f, addr, 1)
	name := "" // the key record's DNS name, found at the first lookup
	var mu sync.Mutex
	override := map[string][]string{}
	base := lookupFrom(f)
	lookup := func(ctx context.Context, n string) ([]string, error) {
		mu.Lock()
		name = n
		txts, ok := override[n]
		mu.Unlock()
		if ok {
			return txts, nil
		}
		return base(ctx, n)
	}
	withLookup := func(o *verify.Options) { o.LookupTXT, o.Store = lookup, nil }
	p, _ := newPipeline(t, f, withLookup)
	verifyBoth := func(step string) *verify.Result {
		t.Helper()
		fresh, _ := newPipeline(t, f, withLookup)
		want := fresh.Verify(context.Background(), &verify.Message{Raw: msgs[0]})
		got := p.Verify(context.Background(), &verify.Message{Raw: msgs[0]})
		if got.Reason != want.Reason || got.Detail != want.Detail {
			t.Errorf("%s: %s (%s); a fresh pipeline says %s (%s)", step, got.Reason, got.Detail, want.Reason, want.Detail)
		}
		return got
	}
	if res := verifyBoth("the published key"); !res.Accepted() {
		t.Fatalf("%s: %s", res.Reason, res.Detail)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	original := name
	override[original] = []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}
	mu.Unlock()
	if res := verifyBoth("another key"); res.Reason != verify.ReasonDKIMInvalid {
		t.Errorf("another key: %s (%s), want dkim_invalid", res.Reason, res.Detail)
	}
	mu.Lock()
	override[original] = []string{"v=DKIM1; k=rsa; p="}
	mu.Unlock()
	if res := verifyBoth("key revoked"); res.Reason != verify.ReasonDKIMInvalid || !strings.Contains(res.Detail, "key revoked") {
		t.Errorf("key revoked: %s (%s), want dkim_invalid, key revoked", res.Reason, res.Detail)
	}
	mu.Lock()
	delete(override, original)
	mu.Unlock()
	if res := verifyBoth("the key back"); !res.Accepted() {
		t.Errorf("the key back: %s (%s)", res.Reason, res.Detail)
	}
}

// Many goroutines verifying the messages of a few known senders at once
// (go test -race) get the verdicts of a fresh pipeline.
func TestKnownSenderConcurrent(t *testing.T) {
	f := testFixture(t)
	var msgs [][]byte
	for i := range 4 {
		msgs = append(msgs, knownSender(t, f, fmt.Sprintf("concurrent%d@example.com", i), 2)...)
	}
	// One rejected message among them: a known sender's, tampered with.
	bad := bytes.Replace(msgs[0], []byte("message 0"), []byte("massage 0"), 1)
	msgs = append(msgs, bad)
	noStore := func(o *verify.Options) { o.Store = nil }
	want := make([]*verify.Result, len(msgs))
	for i, m := range msgs {
		fresh, _ := newPipeline(t, f, noStore)
		want[i] = fresh.Verify(context.Background(), &verify.Message{Raw: m})
	}
	if want[len(msgs)-1].Accepted() {
		t.Fatal("the tampered message was accepted")
	}
	p, _ := newPipeline(t, f, noStore)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 3 * len(msgs) {
				i := (g + k) % len(msgs)
				got := p.Verify(context.Background(), &verify.Message{Raw: msgs[i]})
				if diff := resultDiff(got, want[i]); diff != "" {
					t.Errorf("message %d: %s", i, diff)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// swappableChecker is a revocation checker that can be replaced by a fresh
// one (without the answers the last one kept) under a running pipeline.
type swappableChecker struct {
	mu    sync.Mutex
	inner verify.RevocationChecker
}

func (c *swappableChecker) renew(t *testing.T) {
	t.Helper()
	checker, err := revocation.NewChecker("", revocation.CheckerOptions{FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.inner = checker
	c.mu.Unlock()
}

func (c *swappableChecker) CheckChain(ctx context.Context, chain []*x509.Certificate, at time.Time) revocation.Result {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	return inner.CheckChain(ctx, chain, at)
}
