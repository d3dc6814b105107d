package verify_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// profileVector is a message signed with a certificate of one profile.
type profileVector struct {
	name     string
	spec     testcorpus.ProfileSpec
	profile  verify.Profile
	conforms bool
}

func profileVectors(f *testcorpus.Fixture) []profileVector {
	return []profileVector{
		{"strict", testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict}, verify.ProfileStrict, true},
		{"strict-ecdsa", testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict, Key: f.ECKey}, verify.ProfileStrict, true},
		{"multipurpose", testcorpus.ProfileSpec{Profile: testcorpus.ProfileMultipurpose}, verify.ProfileMultipurpose, true},
		{"legacy", testcorpus.ProfileSpec{Profile: testcorpus.ProfileLegacy}, verify.ProfileLegacy, true},
		{"strict-broken", testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict, Broken: true}, verify.ProfileStrict, false},
		{"none", testcorpus.ProfileSpec{}, verify.ProfileNone, false},
	}
}

// Each profile's certificate through the whole pipeline, under each
// --require-profile: accepted when it claims the profile required or a
// higher one and zlint finds no error in it, else cert_policy, with
// nothing stored; the result carries the profile and zlint's findings
// either way.
func TestPipelineRequireProfile(t *testing.T) {
	f := testFixture(t)
	vectors := profileVectors(f)
	msgs := make([][]byte, len(vectors))
	for i, v := range vectors {
		var err error
		if msgs[i], err = f.SignedMessage(v.name+"@example.com", testcorpus.WithProfile(v.spec)); err != nil {
			t.Fatal(err)
		}
	}
	rank := map[verify.Profile]int{verify.ProfileNone: 0, verify.ProfileLegacy: 1, verify.ProfileMultipurpose: 2, verify.ProfileStrict: 3}
	for _, require := range []verify.Profile{"", verify.ProfileLegacy, verify.ProfileMultipurpose, verify.ProfileStrict} {
		var log bytes.Buffer
		p, store := newPipeline(t, f, func(o *verify.Options) {
			o.RequireProfile = require
			o.Logger = slogText(&log)
		})
		for i, v := range vectors {
			res := p.Verify(context.Background(), &verify.Message{Raw: msgs[i]})
			want := verify.ReasonOK
			if require != "" && (rank[v.profile] < rank[require] || !v.conforms) {
				want = verify.ReasonCertPolicy
			}
			if res.Reason != want {
				t.Errorf("require %q, %s: %s (%s), want %s", require, v.name, res.Reason, res.Detail, want)
				continue
			}
			if res.CertInfo == nil || res.CertInfo.Profile != v.profile {
				t.Errorf("require %q, %s: cert info %+v", require, v.name, res.CertInfo)
				continue
			}
			lint := res.CertInfo.Lint
			if v.conforms != (len(lint) == 0 && v.profile != verify.ProfileNone) {
				t.Errorf("require %q, %s: zlint %s", require, v.name, verify.DescribeFindings(lint))
			}
			_, stored := store.certs[v.name+"@example.com"]
			if stored != (want == verify.ReasonOK) {
				t.Errorf("require %q, %s: stored %v", require, v.name, stored)
			}
			if want != verify.ReasonCertPolicy {
				continue
			}
			switch {
			case v.profile == verify.ProfileNone:
				if !strings.Contains(res.Detail, "claims no S/MIME BR profile") {
					t.Errorf("detail %q", res.Detail)
				}
			case !v.conforms:
				if !strings.Contains(res.Detail, "e_subscribers_shall_have_crl_distribution_points") ||
					!strings.Contains(res.Detail, "conforms to no profile") {
					t.Errorf("detail %q", res.Detail)
				}
			default:
				if !strings.Contains(res.Detail, "is "+string(v.profile)+"; "+string(require)+" is required") {
					t.Errorf("detail %q", res.Detail)
				}
			}
		}
		if !strings.Contains(log.String(), "S/MIME BR profile strict: zlint clean") {
			t.Errorf("require %q: the log does not tell the profile:\n%s", require, log.String())
		}
	}
}

// A message rejected before its chain is verified carries no profile:
// zlint's parser only ever sees certificates a trusted CA issued.
func TestPipelineProfileAfterChain(t *testing.T) {
	f := testFixture(t)
	msg, err := f.SignedMessage("late@example.com", testcorpus.WithProfile(testcorpus.ProfileSpec{Profile: testcorpus.ProfileStrict}))
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := newPipeline(t, f, func(o *verify.Options) {
		o.Now = func() time.Time { return testcorpus.NotAfter.AddDate(1, 0, 0) }
		o.RequireProfile = verify.ProfileStrict
	})
	res := expired.Verify(context.Background(), &verify.Message{Raw: msg})
	if res.Reason != verify.ReasonCertExpired || res.CertInfo == nil || res.CertInfo.Profile != "" || res.CertInfo.Lint != nil {
		t.Errorf("%s (%s): cert info %+v", res.Reason, res.Detail, res.CertInfo)
	}
}
