package verify

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
	// The CA/Browser Forum S/MIME Baseline Requirements lints, and no
	// other: importing package zlint would register every lint source
	// (TLS, code signing, EV, ETSI...), none of which S/MIME runs.
	_ "github.com/zmap/zlint/v3/lints/cabf_smime_br"
)

// Profile is the S/MIME Baseline Requirements profile a certificate claims
// by its certificate policy, the BRs' "generation" (§1.2, §7.1.6.1): from
// most to least restricted, strict, multipurpose and legacy; ProfileNone
// for a certificate that claims none of them (a private or enterprise CA,
// or one issued before the BRs).
type Profile string

// The profiles, and none.
const (
	ProfileNone         Profile = "none"
	ProfileLegacy       Profile = "legacy"
	ProfileMultipurpose Profile = "multipurpose"
	ProfileStrict       Profile = "strict"
)

// ParseProfile parses a profile name (--require-profile): strict,
// multipurpose, legacy, or none (or empty: no profile required).
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(strings.ToLower(s)); p {
	case ProfileStrict, ProfileMultipurpose, ProfileLegacy, ProfileNone:
		return p, nil
	case "":
		return ProfileNone, nil
	}
	return "", fmt.Errorf("unknown S/MIME BR profile %q: want strict, multipurpose, legacy or none", s)
}

// rank orders the profiles: none 0, legacy 1, multipurpose 2, strict 3,
// which is also the last arc of their policy identifiers.
func (p Profile) rank() int {
	switch p {
	case ProfileLegacy:
		return 1
	case ProfileMultipurpose:
		return 2
	case ProfileStrict:
		return 3
	}
	return 0
}

// profileByArc is the profile of the generation arc of an S/MIME BR
// policy identifier.
var profileByArc = [...]Profile{1: ProfileLegacy, 2: ProfileMultipurpose, 3: ProfileStrict}

// CertificateProfile returns the profile c claims: the S/MIME BR policy
// identifiers (S/MIME BRs §7.1.6.1) are
//
//	2.23.140.1.5.T.G   {joint-iso-itu-t(2) international-organizations(23)
//	                    ca-browser-forum(140) certificate-policies(1)
//	                    smime-baseline(5) T G}
//
// with T the certificate type (mailbox-validated 1, organization-validated
// 2, sponsor-validated 3, individual-validated 4) and G the generation
// (legacy 1, multipurpose 2, strict 3). A subscriber certificate holds
// exactly one (§7.1.2.3 a, zlint's e_exactly_one_smime_policy); one that
// holds several claims only the least restricted of them.
func CertificateProfile(c *x509.Certificate) Profile {
	best := ProfileNone
	for _, oid := range c.PolicyIdentifiers {
		if len(oid) != 7 || oid[0] != 2 || oid[1] != 23 || oid[2] != 140 || oid[3] != 1 || oid[4] != 5 ||
			oid[5] < 1 || oid[5] > 4 || oid[6] < 1 || oid[6] > 3 {
			continue
		}
		p := profileByArc[oid[6]]
		if best == ProfileNone || p.rank() < best.rank() {
			best = p
		}
	}
	return best
}

// LintFinding is what one zlint lint found in a certificate: Status is
// "error", "warning" or "fatal" (the lint could not run: zlint could not
// parse the certificate, or the lint failed), Details zlint's words, when
// it has any.
type LintFinding struct {
	Status  string `json:"status"`
	Details string `json:"details,omitempty"`
}

// Lint finding statuses.
const (
	LintError   = "error"
	LintWarning = "warning"
	LintFatal   = "fatal"
)

// lintParseFinding names the finding of a certificate that zlint's parser
// (github.com/zmap/zcrypto/x509) refuses, so that no lint could run.
const lintParseFinding = "zlint_parse"

// maxLintDetail bounds a finding's details: some lints quote the
// certificate.
const maxLintDetail = 200

// certProfile is what the profile stage learns of a certificate, the same
// for every message it signs: the profile it claims, zlint's findings, and
// whether it conforms (claims a profile and has no error or fatal
// finding). It is shared by every message's CertInfo and never modified.
type certProfile struct {
	profile  Profile
	lint     map[string]LintFinding
	conforms bool
}

// smimeLinter runs zlint's S/MIME BR lints (lint source CABF_SMIME_BR).
type smimeLinter struct {
	once  sync.Once
	lints []*lint.CertificateLint
	cfg   lint.Configuration
	err   error
}

func (l *smimeLinter) init() error {
	l.once.Do(func() {
		reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{
			IncludeSources: lint.SourceList{lint.CABFSMIMEBaselineRequirements},
		})
		if err != nil {
			l.err = fmt.Errorf("zlint registry: %w", err)
			return
		}
		l.lints, l.cfg = reg.CertificateLints().Lints(), reg.GetConfiguration()
		if len(l.lints) == 0 {
			l.err = fmt.Errorf("zlint registry: no S/MIME BR lints")
		}
	})
	return l.err
}

// lint runs the S/MIME BR lints on the certificate der: its errors,
// warnings and fatal findings by lint name (nil when there are none). The
// certificate is parsed once, by zlint's own parser.
func (l *smimeLinter) lint(der []byte) (map[string]LintFinding, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return map[string]LintFinding{lintParseFinding: {Status: LintFatal, Details: sanitize(err.Error(), maxLintDetail)}}, nil
	}
	var found map[string]LintFinding
	for _, lt := range l.lints {
		r := lt.Execute(zc, l.cfg)
		var status string
		switch r.Status {
		case lint.Warn:
			status = LintWarning
		case lint.Error:
			status = LintError
		case lint.Fatal:
			status = LintFatal
		default: // NA, NE, pass, notice
			continue
		}
		if found == nil {
			found = make(map[string]LintFinding)
		}
		found[lt.Name] = LintFinding{Status: status, Details: sanitize(r.Details, maxLintDetail)}
	}
	return found, nil
}

// describe returns the profile of c and, when it claims one, zlint's
// findings.
func (l *smimeLinter) describe(c *x509.Certificate) (*certProfile, error) {
	cp := &certProfile{profile: CertificateProfile(c)}
	if cp.profile == ProfileNone {
		// The BRs' lints judge certificates issued under the BRs; a
		// certificate that does not claim them would fail lints that
		// are not its rules (no CRL distribution point...).
		return cp, nil
	}
	found, err := l.lint(c.Raw)
	if err != nil {
		return nil, err
	}
	cp.lint, cp.conforms = found, true
	for _, f := range found {
		if f.Status != LintWarning {
			cp.conforms = false
		}
	}
	return cp, nil
}

// maxProfiledCertificates bounds a profileCache: twice this many
// certificates at most are remembered, the most recently seen.
const maxProfiledCertificates = 4096

// noProfile is the certProfile of every certificate that claims no
// profile.
var noProfile = &certProfile{profile: ProfileNone}

// profileCache remembers certProfiles by the SHA-256 of the certificate
// (CertInfo.SHA256, computed once per message already), so that zlint runs
// once per certificate, not once per message. It keeps two generations:
// when the current one holds maxProfiledCertificates, it becomes the
// previous one, and the previous one is dropped; a certificate found in the
// previous generation moves to the current one. So memory is bounded and
// the certificates of senders who keep writing stay. A certificate that
// claims no profile costs a look at its policies and is not kept. Safe for
// concurrent use; the zero value is ready. Two messages of one new
// certificate at once may both lint it, with the same result.
type profileCache struct {
	mu       sync.Mutex
	cur, old map[string]*certProfile
	linter   smimeLinter
}

// get returns the profile of c, whose SHA-256 in hexadecimal is sum, from
// the cache or by linting it.
func (pc *profileCache) get(c *x509.Certificate, sum string) (*certProfile, error) {
	if CertificateProfile(c) == ProfileNone {
		return noProfile, nil
	}
	pc.mu.Lock()
	cp := pc.cur[sum]
	if cp == nil {
		if cp = pc.old[sum]; cp != nil {
			pc.putLocked(sum, cp)
		}
	}
	pc.mu.Unlock()
	if cp != nil {
		return cp, nil
	}
	cp, err := pc.linter.describe(c)
	if err != nil {
		return nil, err
	}
	pc.mu.Lock()
	pc.putLocked(sum, cp)
	pc.mu.Unlock()
	return cp, nil
}

func (pc *profileCache) putLocked(sum string, cp *certProfile) {
	if len(pc.cur) >= maxProfiledCertificates {
		pc.old, pc.cur = pc.cur, nil
	}
	if pc.cur == nil {
		pc.cur = make(map[string]*certProfile)
	}
	pc.cur[sum] = cp
}

// checkProfile records the signer certificate's profile and zlint's
// findings in res.CertInfo, and refuses it (cert_policy) when it falls
// short of Options.RequireProfile: it claims a lower profile, or none, or
// zlint finds an error in it. A certificate that claims strict but breaks
// a rule of the BRs is not strict, nor anything less: it conforms to no
// profile. Warnings do not count. It runs once the chain and the address
// are verified, so that only certificates a trusted CA issued reach zlint's
// parser.
func (p *Pipeline) checkProfile(res *Result, log *story) error {
	cp, err := p.profiles.get(res.Cert, res.CertInfo.SHA256)
	if err != nil {
		return err
	}
	res.CertInfo.Profile, res.CertInfo.Lint = cp.profile, cp.lint
	if cp.profile != ProfileNone && log.enabled() {
		log.Info("S/MIME BR profile " + string(cp.profile) + ": zlint " + DescribeFindings(cp.lint))
	}
	want := p.opts.RequireProfile
	if want.rank() == 0 {
		return nil
	}
	switch {
	case cp.profile == ProfileNone:
		return fail(ReasonCertPolicy, "%q claims no S/MIME BR profile (certificate policy 2.23.140.1.5.*); %s is required", certName(res.Cert), want)
	case cp.profile.rank() < want.rank():
		return fail(ReasonCertPolicy, "%q is %s; %s is required", certName(res.Cert), cp.profile, want)
	case !cp.conforms:
		return fail(ReasonCertPolicy, "%q claims %s but breaks the S/MIME BRs (zlint %s): it conforms to no profile; %s is required",
			certName(res.Cert), cp.profile, DescribeFindings(cp.lint), want)
	}
	return nil
}

// DescribeFindings summarises zlint's findings (CertInfo.Lint) for a
// story line or a detail: "clean", or the lint names by status.
func DescribeFindings(found map[string]LintFinding) string {
	if len(found) == 0 {
		return "clean"
	}
	var parts []string
	for _, status := range []string{LintFatal, LintError, LintWarning} {
		var names []string
		for name, f := range found {
			if f.Status == status {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			parts = append(parts, status+": "+strings.Join(names, ", "))
		}
	}
	return strings.Join(parts, "; ")
}
