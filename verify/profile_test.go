package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

var (
	profileFixOnce sync.Once
	profileFix     *testcorpus.Fixture
	profileFixErr  error
)

func profileFixture(t testing.TB) *testcorpus.Fixture {
	t.Helper()
	profileFixOnce.Do(func() { profileFix, profileFixErr = testcorpus.New() })
	if profileFixErr != nil {
		t.Fatal(profileFixErr)
	}
	return profileFix
}

func issueProfileLeaf(t testing.TB, f *testcorpus.Fixture, spec testcorpus.ProfileSpec) *x509.Certificate {
	t.Helper()
	if spec.Address == "" {
		spec.Address = "profile@example.com"
	}
	c, err := f.IssueProfileLeaf(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The profile is read from the S/MIME BR policy identifiers, whatever the
// certificate type (mailbox, organization, sponsor, individual-validated);
// other policies are no profile; of several, the least restricted counts.
func TestCertificateProfile(t *testing.T) {
	oid := func(arcs ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(arcs) }
	for _, tt := range []struct {
		policies []asn1.ObjectIdentifier
		want     Profile
	}{
		{nil, ProfileNone},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 1, 3)}, ProfileStrict},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 2, 2)}, ProfileMultipurpose},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 3, 1)}, ProfileLegacy},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 4, 3)}, ProfileStrict},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 5, 3)}, ProfileNone},    // no such type
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 1, 4)}, ProfileNone},    // no such generation
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 1, 3, 1)}, ProfileNone}, // longer
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 2, 1)}, ProfileNone},       // TLS domain-validated
		{[]asn1.ObjectIdentifier{oid(1, 3, 6, 1, 4, 1, 99999, 1), oid(2, 23, 140, 1, 5, 1, 2)}, ProfileMultipurpose},
		{[]asn1.ObjectIdentifier{oid(2, 23, 140, 1, 5, 1, 3), oid(2, 23, 140, 1, 5, 1, 1)}, ProfileLegacy},
	} {
		c := &x509.Certificate{PolicyIdentifiers: tt.policies}
		if got := CertificateProfile(c); got != tt.want {
			t.Errorf("%v: %s, want %s", tt.policies, got, tt.want)
		}
	}
}

// The certificates IssueProfileLeaf makes, as Go parses them: their
// policies give their profile.
func TestCertificateProfileParsed(t *testing.T) {
	f := profileFixture(t)
	for _, p := range []string{"", testcorpus.ProfileLegacy, testcorpus.ProfileMultipurpose, testcorpus.ProfileStrict} {
		want := Profile(p)
		if p == "" {
			want = ProfileNone
		}
		if got := CertificateProfile(issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: p})); got != want {
			t.Errorf("profile %q: %s", p, got)
		}
	}
}

func TestParseProfile(t *testing.T) {
	for in, want := range map[string]Profile{"": ProfileNone, "none": ProfileNone, "strict": ProfileStrict,
		"Multipurpose": ProfileMultipurpose, "legacy": ProfileLegacy} {
		if got, err := ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseProfile("lenient"); err == nil {
		t.Error("ParseProfile(lenient): no error")
	}
}

// zlint finds nothing in a certificate made as each profile requires, RSA
// or ECDSA, and names the rules a broken one breaks; a certificate that
// claims no profile is not linted.
func TestLintProfiles(t *testing.T) {
	f := profileFixture(t)
	var l smimeLinter
	for _, p := range []string{testcorpus.ProfileLegacy, testcorpus.ProfileMultipurpose, testcorpus.ProfileStrict} {
		for _, key := range []struct {
			name string
			spec testcorpus.ProfileSpec
		}{{"RSA", testcorpus.ProfileSpec{Profile: p}}, {"ECDSA", testcorpus.ProfileSpec{Profile: p, Key: f.ECKey}}} {
			cp, err := l.describe(issueProfileLeaf(t, f, key.spec))
			if err != nil {
				t.Fatal(err)
			}
			if cp.profile != Profile(p) || !cp.conforms || len(cp.lint) != 0 {
				t.Errorf("%s %s: profile %s, conforms %v, zlint %s", p, key.name, cp.profile, cp.conforms, DescribeFindings(cp.lint))
			}
		}
		cp, err := l.describe(issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: p, Broken: true}))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"e_mailbox_validated_enforce_subject_field_restrictions", "e_subscribers_shall_have_crl_distribution_points"} {
			if cp.lint[name].Status != LintError {
				t.Errorf("broken %s: %s is %q; zlint %s", p, name, cp.lint[name].Status, DescribeFindings(cp.lint))
			}
		}
		if cp.conforms || cp.profile != Profile(p) {
			t.Errorf("broken %s: profile %s, conforms %v", p, cp.profile, cp.conforms)
		}
	}
	cp, err := l.describe(issueProfileLeaf(t, f, testcorpus.ProfileSpec{Broken: true}))
	if err != nil {
		t.Fatal(err)
	}
	if cp.profile != ProfileNone || cp.lint != nil || cp.conforms {
		t.Errorf("no policy: profile %s, zlint %v, conforms %v", cp.profile, cp.lint, cp.conforms)
	}
}

// A legacy certificate issued once the BRs ended the legacy generation
// (2025-07-15) breaks them.
func TestLintLegacyAfterSunset(t *testing.T) {
	f := profileFixture(t)
	c := issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileLegacy})
	tmpl := *c
	tmpl.NotBefore = testcorpus.NotBefore
	late, err := testcorpus.Issue(&tmpl, f.Intermediate, c.PublicKey, f.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	var l smimeLinter
	cp, err := l.describe(late)
	if err != nil {
		t.Fatal(err)
	}
	if cp.lint["e_legacy_generation_deprecated"].Status != LintError || cp.conforms {
		t.Errorf("legacy issued %s: zlint %s", late.NotBefore, DescribeFindings(cp.lint))
	}
}

// Bytes zlint's parser refuses are a fatal finding, not an error of the
// pipeline.
func TestLintUnparseable(t *testing.T) {
	var l smimeLinter
	found, err := l.lint([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	if err != nil {
		t.Fatal(err)
	}
	if found[lintParseFinding].Status != LintFatal {
		t.Errorf("zlint %v", found)
	}
}

// The cache lints a certificate once and then answers with the same
// profile; it keeps at most two generations of maxProfiledCertificates,
// the newest.
func TestProfileCache(t *testing.T) {
	f := profileFixture(t)
	c := issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict})
	var pc profileCache
	key := certSum(c)
	first, err := pc.get(c, key)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pc.get(c, key)
	if err != nil || again != first {
		t.Fatalf("second get: %p, %v; want the cached %p", again, err, first)
	}

	pc.mu.Lock()
	for i := range 2 * maxProfiledCertificates {
		pc.putLocked(fmt.Sprintf("filler %d", i), &certProfile{profile: ProfileNone})
	}
	_, cached := pc.cur[key]
	_, old := pc.old[key]
	n := len(pc.cur) + len(pc.old)
	pc.mu.Unlock()
	if cached || old || n > 2*maxProfiledCertificates {
		t.Errorf("after %d others: cached %v, in the old generation %v, %d entries", 2*maxProfiledCertificates, cached, old, n)
	}
	if third, err := pc.get(c, key); err != nil || third == first || third.profile != ProfileStrict {
		t.Errorf("after eviction: %p (was %p), %v", third, first, err)
	}

	// A certificate of the previous generation moves back to the current.
	pc.mu.Lock()
	for i := range maxProfiledCertificates {
		pc.putLocked(fmt.Sprintf("more %d", i), &certProfile{profile: ProfileNone})
	}
	_, old = pc.old[key]
	pc.mu.Unlock()
	if !old {
		t.Fatal("the certificate is not in the previous generation")
	}
	kept, _ := pc.get(c, key)
	pc.mu.Lock()
	_, cached = pc.cur[key]
	pc.mu.Unlock()
	if !cached || kept.profile != ProfileStrict {
		t.Error("a certificate found in the previous generation is not current again")
	}
}

// Many messages of a few certificates at once (go test -race).
func TestProfileCacheConcurrent(t *testing.T) {
	f := profileFixture(t)
	certs := []*x509.Certificate{
		issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict}),
		issueProfileLeaf(t, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileMultipurpose, Broken: true}),
	}
	var pc profileCache
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				c := certs[(i+j)%2]
				cp, err := pc.get(c, certSum(c))
				if err != nil || cp.profile == ProfileNone {
					t.Errorf("get: %v, %v", cp, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkProfileKnownCertificate is the profile stage's cost per message
// of a certificate seen before: a SHA-256 of the certificate and a map
// look-up.
func BenchmarkProfileKnownCertificate(b *testing.B) {
	f := profileFixture(b)
	c := issueProfileLeaf(b, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict})
	var pc profileCache
	key := certSum(c)
	if _, err := pc.get(c, key); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer MeasureCPU(b)()
	for b.Loop() {
		if _, err := pc.get(c, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProfileNewCertificate is its cost for a certificate never seen:
// zcrypto's parse and every S/MIME BR lint (strict, RSA-2048).
func BenchmarkProfileNewCertificate(b *testing.B) {
	f := profileFixture(b)
	c := issueProfileLeaf(b, f, testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict})
	var l smimeLinter
	if err := l.init(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer MeasureCPU(b)()
	for b.Loop() {
		if _, err := l.describe(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProfileNone is its cost for a certificate that claims no
// profile: reading its policies (nothing is linted, nor cached).
func BenchmarkProfileNone(b *testing.B) {
	f := profileFixture(b)
	c := issueProfileLeaf(b, f, testcorpus.ProfileSpec{})
	var pc profileCache
	key := certSum(c)
	b.ReportAllocs()
	defer MeasureCPU(b)()
	for b.Loop() {
		if _, err := pc.get(c, key); err != nil {
			b.Fatal(err)
		}
	}
}

// certSum is the certificate's SHA-256 in hexadecimal (CertInfo.SHA256).
func certSum(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
