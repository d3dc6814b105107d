package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// profileCorpus is a message per S/MIME BR profile, one whose certificate
// breaks the BRs, and one without a policy, with their trust and keys.
type profileCorpus struct {
	flags    []string // --trust, --dkim-keys, --at
	messages string   // the folder of the messages
	files    map[string]string
}

// The addresses (and file names) of the profile corpus, and the profile
// each claims.
var profileAddrs = map[string]verify.Profile{
	"strict@example.com":        verify.ProfileStrict,
	"multipurpose@example.net":  verify.ProfileMultipurpose,
	"legacy@example.org":        verify.ProfileLegacy,
	"broken.strict@example.com": verify.ProfileStrict,
	"none@example.net":          verify.ProfileNone,
}

// sharedProfileCorpus is the profile corpus the tests share: made once per
// test binary (a fixture's keys take seconds under -race), beside the
// binary, which TestMain removes.
var sharedProfileCorpus struct {
	once   sync.Once
	corpus *profileCorpus
	err    error
}

func profileCorpusFor(t *testing.T) *profileCorpus {
	t.Helper()
	sharedProfileCorpus.once.Do(func() {
		sharedProfileCorpus.corpus, sharedProfileCorpus.err = writeProfileCorpus(filepath.Join(filepath.Dir(binary), "profile-corpus"))
	})
	if sharedProfileCorpus.err != nil {
		t.Fatal(sharedProfileCorpus.err)
	}
	return sharedProfileCorpus.corpus
}

func writeProfileCorpus(dir string) (*profileCorpus, error) {
	f, err := testcorpus.New()
	if err != nil {
		return nil, err
	}
	c := &profileCorpus{messages: filepath.Join(dir, "messages"), files: map[string]string{}}
	if err := os.MkdirAll(c.messages, 0o755); err != nil {
		return nil, err
	}
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keys, f.KeysFile(), 0o644); err != nil {
		return nil, err
	}
	c.flags = []string{"--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339)}
	for addr, p := range profileAddrs {
		spec := testcorpus.ProfileSpec{Broken: strings.HasPrefix(addr, "broken.")}
		if p != verify.ProfileNone {
			spec.Profile = string(p)
		}
		msg, err := f.SignedMessage(addr, testcorpus.WithProfile(spec))
		if err != nil {
			return nil, err
		}
		name := filepath.Join(c.messages, addr+".eml")
		if err := os.WriteFile(name, msg, 0o644); err != nil {
			return nil, err
		}
		c.files[addr] = name
	}
	return c, nil
}

// checkProfileReport checks a report of the profile corpus: each line's
// profile and zlint findings, and which were accepted.
func checkProfileReport(t *testing.T, recs []output.Record, accepted ...string) {
	t.Helper()
	if len(recs) != len(profileAddrs) {
		t.Fatalf("%d report lines, want %d", len(recs), len(profileAddrs))
	}
	for _, rec := range recs {
		want := verify.ReasonCertPolicy
		for _, a := range accepted {
			if a == rec.From {
				want = verify.ReasonOK
			}
		}
		if rec.Reason != want {
			t.Errorf("%s: %s (%s), want %s", rec.From, rec.Reason, rec.Detail, want)
		}
		if rec.Cert == nil || rec.Cert.Profile != profileAddrs[rec.From] {
			t.Errorf("%s: cert %+v, want profile %s", rec.From, rec.Cert, profileAddrs[rec.From])
			continue
		}
		broken := strings.HasPrefix(rec.From, "broken.")
		if got := rec.Cert.Lint["e_subscribers_shall_have_crl_distribution_points"].Status; broken != (got == verify.LintError) || !broken && len(rec.Cert.Lint) != 0 {
			t.Errorf("%s: zlint %v", rec.From, rec.Cert.Lint)
		}
	}
}

// scan reports every certificate's profile and zlint's findings, accepts
// them all without --require-profile, and with it refuses those below it
// (cert_policy), from the flag or the configuration file.
func TestScanRequireProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := profileCorpusFor(t)
	all := make([]string, 0, len(profileAddrs))
	for a := range profileAddrs {
		all = append(all, a)
	}
	cfg := filepath.Join(dir, "certharvest.toml")
	if err := os.WriteFile(cfg, []byte("[scan]\nrequire-profile = \"multipurpose\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		args     []string
		accepted []string
	}{
		{"none required", nil, all},
		{"legacy", []string{"--require-profile", "legacy"}, []string{"strict@example.com", "multipurpose@example.net", "legacy@example.org"}},
		{"multipurpose in the configuration file", []string{"--config", cfg}, []string{"strict@example.com", "multipurpose@example.net"}},
		{"strict", []string{"--require-profile", "strict"}, []string{"strict@example.com"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			report := filepath.Join(out, "report.jsonl")
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			args := append(append(append([]string{"scan", "--quiet"}, c.flags...), tt.args...),
				"--certs", filepath.Join(out, "certs"), "--report", report, "--log", filepath.Join(out, "log"), c.messages)
			if r := runBinary(t, args...); r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			checkProfileReport(t, readReport(t, report), tt.accepted...)
			stored, _ := filepath.Glob(filepath.Join(out, "certs", "*.crt"))
			if len(stored) != len(tt.accepted) {
				t.Errorf("%d certificates stored, want %d: %v", len(stored), len(tt.accepted), stored)
			}
		})
	}
}

// check tells the profile and refuses below --require-profile (exit 3);
// a profile that does not exist is a usage error for every command.
func TestCheckRequireProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := profileCorpusFor(t)
	r := runBinary(t, append(append([]string{"check"}, c.flags...), c.files["broken.strict@example.com"])...)
	if r.code != 0 || !strings.Contains(r.stdout, "profile: S/MIME BR strict, zlint error: ") ||
		!strings.Contains(r.stdout, "e_mailbox_validated_enforce_subject_field_restrictions, e_subscribers_shall_have_crl_distribution_points\n") {
		t.Errorf("check without a requirement: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, append(append([]string{"check", "--require-profile", "legacy"}, c.flags...), c.files["broken.strict@example.com"])...)
	if r.code != exitRejected || !strings.Contains(r.stdout, "reason:  cert_policy") || !strings.Contains(r.stdout, "conforms to no profile") {
		t.Errorf("check --require-profile legacy of a broken strict certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, append(append([]string{"check", "--require-profile", "strict"}, c.flags...), c.files["strict@example.com"])...)
	if r.code != 0 || !strings.Contains(r.stdout, "profile: S/MIME BR strict, zlint clean") {
		t.Errorf("check --require-profile strict of a strict certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, cmd := range [][]string{
		{"scan", "--require-profile", "lenient", c.messages},
		{"check", "--require-profile", "lenient", c.files["strict@example.com"]},
		{"serve", "--require-profile", "lenient", "--maildir", filepath.Join(dir, "Maildir")},
	} {
		if r := runBinary(t, cmd...); r.code != 2 || !strings.Contains(r.stderr, "want strict, multipurpose, legacy or none") {
			t.Errorf("%s: exit %d, want a usage error\n%s", cmd[0], r.code, r.stderr)
		}
	}
}

// serve refuses, as scan does, what falls below --require-profile.
func TestServeRequireProfile(t *testing.T) {
	dir := t.TempDir()
	c := profileCorpusFor(t)
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := startServe(t, dir, append(c.flags, "--require-profile", "multipurpose")...)
	for addr, path := range c.files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		deliver(t, maildir, addr, data)
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)
	checkProfileReport(t, readReport(t, s.report), "strict@example.com", "multipurpose@example.net")
}
