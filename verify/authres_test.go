package verify_test

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// goneMessage is the message the tests below wrap in header fields: from
// gone@example.com, signed with example.com's fixture key; minted once.
var (
	goneOnce sync.Once
	goneData []byte
	goneErr  error
)

func goneMsg(t *testing.T) []byte {
	t.Helper()
	f := testFixture(t)
	goneOnce.Do(func() { goneData, goneErr = f.SignedMessage("gone@example.com") })
	if goneErr != nil {
		t.Fatal(goneErr)
	}
	return goneData
}

// noKeys is a keys file without any key: every key is gone.
func noKeys(t *testing.T) verify.LookupTXTFunc {
	t.Helper()
	keys, err := verify.ParseDKIMKeys(strings.NewReader("# every key rotated away\n"))
	if err != nil {
		t.Fatal(err)
	}
	return keys.LookupTXT
}

// signatureB returns the b= of the message's first DKIM-Signature.
func signatureB(t *testing.T, msg []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)DKIM-Signature:.*?\bb=([^;]+)`).FindSubmatch(msg)
	if m == nil {
		t.Fatal("no b= tag")
	}
	return strings.Join(strings.Fields(string(m[1])), "")
}

// verifyGone verifies head + msg with lookup and the authserv-ids trusted.
func verifyGone(t *testing.T, head string, msg []byte, lookup verify.LookupTXTFunc, trusted ...string) *verify.Result {
	t.Helper()
	p, _ := newPipeline(t, testFixture(t), func(o *verify.Options) {
		o.LookupTXT = lookup
		o.TrustAuthservIDs = trusted
	})
	head = strings.ReplaceAll(head, "\n", "\r\n")
	return p.Verify(context.Background(), &verify.Message{Raw: append([]byte(head), msg...)})
}

// dkimEstablished reports whether DKIM passed, and so the message.
func dkimEstablished(res *verify.Result) bool {
	return res.DKIM != nil && res.Accepted()
}

const mx = "mx.example.org"

// An archive whose keys file lacks the key: without a trusted field, and
// with fields that must not count, DKIM fails (dkim_invalid); with a trusted
// field that the MTA added reporting a pass for the signature, it is
// established, and says how.
func TestAuthResultsKeyGone(t *testing.T) {
	msg := goneMsg(t)
	b := signatureB(t, msg)
	received := "Received: from mail.example.com (mail.example.com [192.0.2.1])\n\tby mx.example.org (Postfix) with ESMTPS id 4ABC;\n\tMon, 1 Jun 2026 10:00:00 +0000\n"
	opendkim := "Authentication-Results: mx.example.org;\n\tdkim=pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.b=\"" + b[:8] + "\";\n\tdkim-atps=neutral\n"
	tests := []struct {
		name, head string
		trusted    []string
		want       bool
	}{
		{"no trust, a field", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com\n", nil, false},
		{"trust, no field", received, []string{mx}, false},
		{"trusted field on top", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com header.s=s1\n", []string{mx}, true},
		{"id compared without case", "Authentication-Results: MX.Example.ORG; dkim=pass header.d=EXAMPLE.com\n", []string{mx}, true},
		{"second of the trusted ids", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{"other.example.org", mx}, true},
		{"OpenDKIM below the MTA's Received, comments and quotes", "Return-Path: <gone@example.com>\nDelivered-To: certs@example.org\n" + received + opendkim, []string{mx}, true},
		{"Gmail: header.i and header.s, no header.d", "Authentication-Results: mx.example.org;\n       dkim=pass header.i=@example.com header.s=s1 header.b=" + b[:8] + ";\n       spf=pass (example.org: domain of gone@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=gone@example.com\n", []string{mx}, true},
		{"OpenDMARC's field above OpenDKIM's", "Authentication-Results: mx.example.org; dmarc=pass (p=none dis=none) header.from=example.com\n" + opendkim, []string{mx}, true},
		{"untrusted authserv-id", "Authentication-Results: mx.example.net; dkim=pass header.d=example.com\n", []string{mx}, false},
		{"trusted field for another domain", "Authentication-Results: mx.example.org; dkim=pass header.d=example.net\n", []string{mx}, false},
		{"trusted field for another selector", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com header.s=s2\n", []string{mx}, false},
		{"trusted field for another signature (header.b)", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com header.b=AAAAAAAA\n", []string{mx}, false},
		{"trusted field naming no signature", "Authentication-Results: mx.example.org; dkim=pass\n", []string{mx}, false},
		{"trusted fail", "Authentication-Results: mx.example.org; dkim=fail (key not found) header.d=example.com\n", []string{mx}, false},
		// Forged fields below the trusted block.
		{"forged pass below the MTA's fail, after a Received", received + "Authentication-Results: mx.example.org; dkim=fail header.d=example.com\nReceived: from attacker.example by relay.example.net; Mon, 1 Jun 2026 09:59:00 +0000\nAuthentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{mx}, false},
		{"forged pass right below the MTA's DKIM field", "Authentication-Results: mx.example.org; dkim=permerror (no key for signature) header.d=example.com\nAuthentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{mx}, false},
		{"forged pass below the MTA's run", "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.com\n" + received + "Authentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{mx}, false},
		{"trusted results disagree", "Authentication-Results: mx.example.org; dkim=pass header.d=example.com; dkim=fail header.d=example.com header.s=s1\n", []string{mx}, false},
		{"another MTA's pass, the trusted one's none", "Authentication-Results: mx.example.org; dkim=none\nAuthentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{mx}, false},
		{"unreadable trusted field stops the search", "Authentication-Results: mx.example.org; dkim pass\nAuthentication-Results: mx.example.org; dkim=pass header.d=example.com\n", []string{mx}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := verifyGone(t, tt.head, msg, noKeys(t), tt.trusted...)
			if got := dkimEstablished(res); got != tt.want {
				t.Fatalf("DKIM established: %v (%s: %s), want %v", got, res.Reason, res.Detail, tt.want)
			}
			if !tt.want {
				if res.Reason != verify.ReasonDKIMInvalid {
					t.Errorf("reason %s (%s), want dkim_invalid", res.Reason, res.Detail)
				}
				return
			}
			want := verify.DKIMResult{Domain: "example.com", Selector: "s1", Via: verify.DKIMViaAuthResults, AuthservID: mx}
			if got := *res.DKIM; got.Domain != want.Domain || got.Selector != want.Selector || got.Via != want.Via || got.AuthservID != want.AuthservID {
				t.Errorf("DKIM %+v, want %+v", got, want)
			}
		})
	}
}

// A trusted pass never stands in for a signature that verification
// refutes: a body changed since it was signed, a key that exists but does
// not verify it, a revoked key, a temporary DNS failure (dkim_temperror:
// the key may be there next time), a signature not aligned with From.
func TestAuthResultsNeverOverrides(t *testing.T) {
	f := testFixture(t)
	msg := goneMsg(t)
	trustedPass := "Authentication-Results: mx.example.org; dkim=pass header.d=example.com header.s=s1\n"
	t.Run("body hash differs, key gone", func(t *testing.T) {
		changed := bytes.Replace(msg, []byte("This message is signed."), []byte("This message is signed!"), 1)
		if bytes.Equal(changed, msg) {
			t.Fatal("body not changed")
		}
		res := verifyGone(t, trustedPass, changed, noKeys(t), mx)
		if res.Reason != verify.ReasonDKIMInvalid || res.DKIM != nil {
			t.Errorf("reason %s (%s), DKIM %+v; want dkim_invalid", res.Reason, res.Detail, res.DKIM)
		}
	})
	t.Run("body hash differs, key there", func(t *testing.T) {
		changed := bytes.Replace(msg, []byte("This message is signed."), []byte("This message is signed!"), 1)
		keys := func(_ context.Context, name string) ([]string, error) {
			if rec, ok := goneRecord(t, name); ok {
				return []string{rec}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		res := verifyGone(t, trustedPass, changed, keys, mx)
		if res.Reason != verify.ReasonDKIMInvalid || !strings.Contains(res.Detail, "body hash") {
			t.Errorf("reason %s (%s); want dkim_invalid, body hash", res.Reason, res.Detail)
		}
	})
	t.Run("another key there", func(t *testing.T) {
		rec, _ := f.DKIMRecord("example.net") // not the key that signed
		keys := func(context.Context, string) ([]string, error) { return []string{rec}, nil }
		res := verifyGone(t, trustedPass, msg, keys, mx)
		if res.Reason != verify.ReasonDKIMInvalid {
			t.Errorf("reason %s (%s); want dkim_invalid", res.Reason, res.Detail)
		}
	})
	t.Run("revoked key", func(t *testing.T) {
		keys := func(context.Context, string) ([]string, error) { return []string{"v=DKIM1; k=rsa; p="}, nil }
		res := verifyGone(t, trustedPass, msg, keys, mx)
		if res.Reason != verify.ReasonDKIMInvalid || !strings.Contains(res.Detail, "revoked") {
			t.Errorf("reason %s (%s); want dkim_invalid, revoked", res.Reason, res.Detail)
		}
	})
	t.Run("temporary DNS failure", func(t *testing.T) {
		keys := func(_ context.Context, name string) ([]string, error) {
			return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		res := verifyGone(t, trustedPass, msg, keys, mx)
		if res.Reason != verify.ReasonDKIMTempError {
			t.Errorf("reason %s (%s); want dkim_temperror", res.Reason, res.Detail)
		}
	})
	t.Run("not aligned with From", func(t *testing.T) {
		// A second signature, by example.net, whose key is gone too; the
		// trusted pass is for it.
		both, err := f.DKIMSign(msg, "example.net")
		if err != nil {
			t.Fatal(err)
		}
		res := verifyGone(t, "Authentication-Results: mx.example.org; dkim=pass header.d=example.net\n", both, noKeys(t), mx)
		if res.Reason != verify.ReasonDKIMInvalid {
			t.Errorf("reason %s (%s); want dkim_invalid", res.Reason, res.Detail)
		}
		// The same with the pass for example.com: established by the
		// aligned signature, whichever order.
		res = verifyGone(t, trustedPass, both, noKeys(t), mx)
		if !dkimEstablished(res) || res.DKIM.Domain != "example.com" {
			t.Errorf("reason %s (%s), DKIM %+v; want established for example.com", res.Reason, res.Detail, res.DKIM)
		}
	})
}

// goneRecord returns the fixture's key record for name.
func goneRecord(t *testing.T, name string) (string, bool) {
	t.Helper()
	txts, err := testFixture(t).LookupTXT(name)
	if err != nil {
		return "", false
	}
	return txts[0], true
}

// A key that is there still decides alone: a trusted field changes nothing
// for a message whose signature verifies (Via stays empty: the report line
// is as before).
func TestAuthResultsKeyThere(t *testing.T) {
	msg := goneMsg(t)
	keys := func(_ context.Context, name string) ([]string, error) {
		if rec, ok := goneRecord(t, name); ok {
			return []string{rec}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	res := verifyGone(t, "Authentication-Results: mx.example.org; dkim=fail header.d=example.com\n", msg, keys, mx)
	if !dkimEstablished(res) || res.DKIM.Via != verify.DKIMViaSignature || res.DKIM.AuthservID != "" {
		t.Errorf("reason %s (%s), DKIM %+v; want established by the signature", res.Reason, res.Detail, res.DKIM)
	}
}

// certharvest's own field, as serve prepends it to an archived message,
// stands for the signature once its key is gone, in a run trusting
// certharvest's authserv-id; a field of certharvest's id that came with the
// message, below it, is never the one read.
func TestAuthenticationResultsRoundTrip(t *testing.T) {
	f := testFixture(t)
	msg := goneMsg(t)
	const self = "certharvest.example.org"
	p, _ := newPipeline(t, f, nil)
	res := p.Verify(context.Background(), &verify.Message{Raw: msg})
	if !res.Accepted() {
		t.Fatalf("%s: %s", res.Reason, res.Detail)
	}
	field := verify.AuthenticationResults(self, res)
	want := "Authentication-Results: " + self + ";\r\n\tdkim=pass header.d=example.com header.s=s1 header.b=\"" + signatureB(t, msg)[:8] + "\"\r\n"
	if string(field) != want {
		t.Fatalf("field\n%q, want\n%q", field, want)
	}
	archived := append(field, msg...)
	again := verifyGone(t, "", archived, noKeys(t), self)
	if !dkimEstablished(again) || again.DKIM.Via != verify.DKIMViaAuthResults || again.DKIM.AuthservID != self {
		t.Fatalf("re-scan: %s (%s), DKIM %+v", again.Reason, again.Detail, again.DKIM)
	}
	// Established so, it is written with the reason.
	if got := string(verify.AuthenticationResults("next.example.org", again)); !strings.Contains(got, `dkim=pass header.d=example.com header.s=s1 header.b="`) ||
		!strings.Contains(got, `reason="by the Authentication-Results of `+self+`"`) {
		t.Errorf("field of a DKIM established by a field: %q", got)
	}

	// A message rejected before or at DKIM gets a DKIM result naming no
	// signature, which hides a forged field of the same id below it.
	forged := "Authentication-Results: " + self + "; dkim=pass header.d=example.com\n"
	for reason, value := range map[verify.Reason]string{
		verify.ReasonDKIMMissing:        "none",
		verify.ReasonDKIMInvalid:        "fail",
		verify.ReasonDKIMDomainMismatch: "fail",
		verify.ReasonDKIMTempError:      "temperror",
		verify.ReasonMalformed:          "permerror",
		verify.ReasonTooLarge:           "permerror",
	} {
		field := verify.AuthenticationResults(self, &verify.Result{Reason: reason})
		if want := "Authentication-Results: " + self + ";\r\n\tdkim=" + value + ` reason="` + string(reason) + "\"\r\n"; string(field) != want {
			t.Errorf("%s: %q, want %q", reason, field, want)
		}
		res := verifyGone(t, string(bytes.ReplaceAll(field, []byte("\r\n"), []byte("\n")))+forged, msg, noKeys(t), self)
		if res.Reason != verify.ReasonDKIMInvalid {
			t.Errorf("%s, then a forged pass: %s (%s), want dkim_invalid", reason, res.Reason, res.Detail)
		}
	}
}

func TestCheckAuthservID(t *testing.T) {
	for _, ok := range []string{"mx.example.org", "localhost", "MX-1.Example.ORG", "certharvest_1"} {
		if err := verify.CheckAuthservID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "mx example", "mx;x", "a\r\nb", "(x)", `"q"`, "a=b", strings.Repeat("a", 256), "é.example"} {
		if err := verify.CheckAuthservID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
