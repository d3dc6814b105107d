package testcorpus_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/smallstep/pkcs7"

	"github.com/certharvest/certharvest/internal/cputime"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

var fixture = sync.OnceValues(testcorpus.New)

func mustFixture(t testing.TB) *testcorpus.Fixture {
	t.Helper()
	f, err := fixture()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// verdict is what the reference checks below found for a message, layer by
// layer.
type verdict struct {
	reason   string
	detail   string
	dkimPass bool   // a DKIM signature passed with d = From domain
	cmsOK    bool   // the CMS signature verified over the content
	der      []byte // the CMS, when found
	content  []byte // the detached content, when multipart/signed
	signer   *x509.Certificate
	certAddr string            // the signer address that matched From
	enc      *x509.Certificate // the certificate to encrypt to, once chosen
	rest     string            // for From-layer failures: the verdict of the later layers
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// canonical converts bare LF to CRLF.
func canonical(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) || bytes.Count(b, []byte("\r\n")) == bytes.Count(b, []byte("\n")) {
		return b
	}
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// dotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range []byte(s) {
		if c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// rawParts splits a multipart body on its boundary delimiters (RFC 2046
// §5.1.1): the CRLF before "--boundary" belongs to the delimiter.
func rawParts(body []byte, boundary string) ([][]byte, error) {
	pieces := bytes.Split(append([]byte("\r\n"), body...), []byte("\r\n--"+boundary))
	var parts [][]byte
	for _, p := range pieces[1:] {
		if bytes.HasPrefix(p, []byte("--")) {
			return parts, nil
		}
		i := bytes.Index(p, []byte("\r\n"))
		if i < 0 || len(bytes.TrimRight(p[:i], " \t")) != 0 {
			return nil, errors.New("bad delimiter line")
		}
		parts = append(parts, p[i+2:])
	}
	return nil, errors.New("no close delimiter")
}

func splitEntity(e []byte) (textproto.Header, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(e))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return h, nil, err
	}
	body, err := io.ReadAll(br)
	return h, body, err
}

func decodeB64(b []byte) ([]byte, error) {
	s := strings.NewReplacer("\r", "", "\n", "").Replace(string(b))
	return base64.StdEncoding.DecodeString(s)
}

// findSMIME looks for an S/MIME signature in the top-level entity, or in the
// first part of a top-level multipart/mixed (mailing-list footers).
func findSMIME(h textproto.Header, body []byte, top bool) (der, content []byte, found bool, err error) {
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch mt {
	case "multipart/signed":
		proto := strings.ToLower(params["protocol"])
		if proto != "application/pkcs7-signature" && proto != "application/x-pkcs7-signature" {
			return nil, nil, false, nil
		}
		parts, err := rawParts(body, params["boundary"])
		if err != nil || len(parts) != 2 {
			return nil, nil, true, fmt.Errorf("multipart/signed structure: %v, %d parts", err, len(parts))
		}
		_, sigBody, err := splitEntity(parts[1])
		if err != nil {
			return nil, nil, true, err
		}
		der, err := decodeB64(sigBody)
		return der, parts[0], true, err
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		if !strings.EqualFold(params["smime-type"], "signed-data") {
			return nil, nil, false, nil
		}
		der, err := decodeB64(body)
		return der, nil, true, err
	case "multipart/mixed":
		if !top {
			return nil, nil, false, nil
		}
		parts, err := rawParts(body, params["boundary"])
		if err != nil || len(parts) == 0 {
			return nil, nil, false, nil
		}
		ph, pbody, err := splitEntity(parts[0])
		if err != nil {
			return nil, nil, false, nil
		}
		return findSMIME(ph, pbody, false)
	}
	return nil, nil, false, nil
}

// verifyCMS verifies p7's signature as pkcs7's Verify does, except that a
// signingTime outside the signer certificate's validity is no reason to
// refuse it: the signer chose it, and validity is the chain's, at At.
// pkcs7 checks the message digest before the signing time, so when the
// signing time is its objection, the signature over the signed attributes
// (their DER encoding, RFC 5652 §5.4) is what is left to check. The
// algorithms pkcs7 does not know (RSASSA-PSS, Ed25519) are checked by
// verifyOtherAlgorithm, and weak ones refused first (weakCMS).
func verifyCMS(p7 *pkcs7.PKCS7) error {
	if err := weakCMS(p7); err != nil {
		return err
	}
	if otherAlgorithm(p7) {
		return verifyOtherAlgorithm(p7)
	}
	err := p7.Verify()
	var late *pkcs7.SigningTimeNotValidError
	if !errors.As(err, &late) {
		return err
	}
	if len(p7.Signers) != 1 {
		return fmt.Errorf("%d signers: the reference checks know one", len(p7.Signers))
	}
	si := p7.Signers[0]
	attrs, err := signedAttributes(p7)
	if err != nil {
		return err
	}
	signer := p7.GetOnlySigner()
	alg := x509.SHA256WithRSA // the corpus signs with SHA-256
	if _, ok := signer.PublicKey.(*ecdsa.PublicKey); ok {
		alg = x509.ECDSAWithSHA256
	}
	return signer.CheckSignature(alg, attrs, si.EncryptedDigest)
}

// check runs the reference checks in the verifier's order and returns the
// first failing layer's reason.
func check(t *testing.T, f *testcorpus.Fixture, data []byte) (v verdict) {
	msg := canonical(data)
	h, body, err := splitEntity(msg)
	if len(bytes.TrimSpace(msg)) == 0 || err != nil || len(body) == 0 {
		return verdict{reason: testcorpus.ReasonMessageMalformed, detail: fmt.Sprint(err)}
	}
	// From layer: remember the failure, but go on so that the tests can
	// check that the later layers pass.
	var fromReason, fromDetail string
	froms := h.Values("From")
	if len(froms) == 0 {
		return verdict{reason: testcorpus.ReasonMessageMalformed, detail: "no From"}
	}
	if len(froms) > 1 {
		fromReason = testcorpus.ReasonMultipleFrom
	}
	address := froms[0]
	if a, err := mail.ParseAddress(froms[0]); err != nil {
		fromReason, fromDetail = cmpOr(fromReason, testcorpus.ReasonInvalidFromAddress), err.Error()
	} else {
		// The addr-spec as written (net/mail unquotes a quoted local part
		// in Address.Address; String re-quotes it).
		address = strings.Trim((&mail.Address{Address: a.Address}).String(), "<>")
	}
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return verdict{reason: testcorpus.ReasonInvalidFromAddress, detail: address}
	}
	local, domain := address[:at], address[at+1:]
	if !dotAtom(local) {
		fromReason, fromDetail = cmpOr(fromReason, testcorpus.ReasonInvalidFromAddress), "local part "+local
	}
	defer func() {
		if fromReason != "" {
			v.rest = v.reason
			v.reason, v.detail = fromReason, fromDetail
		}
	}()

	// DKIM is verified on the original bytes: the library must cope with
	// bare LF itself.
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{LookupTXT: f.LookupTXT})
	if err != nil {
		t.Fatalf("dkim: %v", err)
	}
	passOther := false
	for _, vr := range verifs {
		if vr.Err == nil {
			if strings.EqualFold(vr.Domain, domain) {
				v.dkimPass = true
			} else {
				passOther = true
			}
		}
	}

	der, content, found, ferr := findSMIME(h, body, true)
	v.der, v.content = der, content
	var p7 *pkcs7.PKCS7
	if found && ferr == nil {
		if p7, err = pkcs7.Parse(der); err == nil {
			if content != nil {
				p7.Content = content
			}
			v.cmsOK = verifyCMS(p7) == nil
		}
	}
	switch {
	case len(verifs) == 0:
		v.reason = testcorpus.ReasonDKIMMissing
	case !v.dkimPass && passOther:
		v.reason = testcorpus.ReasonDKIMDomainMismatch
	case !v.dkimPass:
		v.reason = testcorpus.ReasonDKIMInvalid
	case !found:
		v.reason = testcorpus.ReasonNoSignature
	case ferr != nil || p7 == nil:
		v.reason, v.detail = testcorpus.ReasonSignatureMalformed, fmt.Sprint(ferr, err)
	case !v.cmsOK:
		v.reason, v.detail = testcorpus.ReasonSignatureInvalid, fmt.Sprint(verifyCMS(p7))
	}
	if v.reason != "" {
		return v
	}

	v.signer = p7.GetOnlySigner()
	if v.signer == nil {
		v.reason = testcorpus.ReasonSignatureInvalid
		return v
	}
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	_, err = v.signer.Verify(x509.VerifyOptions{
		Roots: f.TrustPool(), Intermediates: inter, CurrentTime: testcorpus.At,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case err == nil:
	case errors.As(err, &unk):
		v.reason = testcorpus.ReasonCertUntrusted
	case errors.As(err, &inv) && inv.Reason == x509.Expired && testcorpus.At.Before(inv.Cert.NotBefore):
		v.reason = testcorpus.ReasonCertNotYetValid
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		v.reason = testcorpus.ReasonCertExpired
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		v.reason = testcorpus.ReasonCertWrongEKU
	default:
		v.reason = "cert_other"
	}
	if err != nil {
		v.detail = err.Error()
		return v
	}

	emails := v.signer.EmailAddresses
	if len(emails) == 0 {
		for _, n := range v.signer.Subject.Names {
			if n.Type.Equal(testcorpus.OIDEmailAddress) {
				if s, ok := n.Value.(string); ok {
					emails = append(emails, s)
				}
			}
		}
	}
	for _, e := range emails {
		// ASCII case folding only: between ASCII strings EqualFold folds
		// nothing else; a non-ASCII address must be identical.
		isASCII := strings.IndexFunc(e, func(r rune) bool { return r >= 0x80 }) < 0
		if isASCII && strings.EqualFold(e, address) || e == address {
			v.reason, v.certAddr = testcorpus.ReasonOK, strings.ToLower(e)
			var why string
			if v.enc, why = encryptionChoice(f, p7, v.signer, v.certAddr, inter); why != "" {
				v.reason, v.detail = why, "the certificate to encrypt to"
			}
			return v
		}
	}
	v.reason, v.detail = testcorpus.ReasonFromCertMismatch, fmt.Sprint(emails)
	return v
}

func TestCases(t *testing.T) {
	f := mustFixture(t)
	cases := f.Cases()
	reasons := map[string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if names[c.Name] {
				t.Fatalf("duplicate name")
			}
			names[c.Name] = true
			reasons[c.Reason] = true
			v := check(t, f, c.Data)
			if v.reason != c.Reason {
				t.Fatalf("reference checks say %s (%s), case expects %s", v.reason, v.detail, c.Reason)
			}
			if c.Reason == testcorpus.ReasonOK {
				if c.Action != testcorpus.ActionStored || v.certAddr != c.Address {
					t.Errorf("action %q address %q, signer address %q", c.Action, c.Address, v.certAddr)
				}
				want := c.EncryptionCert
				if want == nil {
					want = v.signer.Raw
				}
				if v.enc == nil || !bytes.Equal(v.enc.Raw, want) {
					t.Errorf("the certificate to encrypt to is not the one the case names (EncryptionCert %v)", c.EncryptionCert != nil)
				}
			} else if c.Action != "" || c.Address != "" {
				t.Errorf("rejected case with action %q address %q", c.Action, c.Address)
			}
			// Layer-specific expectations beyond the first failure.
			switch c.Reason {
			case testcorpus.ReasonDKIMInvalid, testcorpus.ReasonDKIMMissing, testcorpus.ReasonDKIMDomainMismatch,
				testcorpus.ReasonMultipleFrom, testcorpus.ReasonInvalidFromAddress:
				if !v.cmsOK {
					t.Errorf("%s case: the S/MIME signature should still verify", c.Reason)
				}
				if (c.Reason == testcorpus.ReasonMultipleFrom || c.Reason == testcorpus.ReasonInvalidFromAddress) &&
					v.rest != testcorpus.ReasonOK {
					t.Errorf("%s case: the later layers say %s, want ok", c.Reason, v.rest)
				}
			case testcorpus.ReasonSignatureInvalid:
				if v.der == nil {
					t.Errorf("no CMS found")
				} else if _, err := pkcs7.Parse(v.der); err != nil {
					t.Errorf("CMS should parse: %v", err)
				}
			}
			if strings.HasSuffix(c.Name, "bare-lf") {
				if bytes.Contains(c.Data, []byte("\r")) {
					t.Errorf("bare LF case contains CR")
				}
			} else if len(c.Data) > 0 && c.Reason != testcorpus.ReasonMessageMalformed &&
				bytes.Count(c.Data, []byte("\n")) != bytes.Count(c.Data, []byte("\r\n")) {
				t.Errorf("message is not CRLF throughout")
			}
			if v.content != nil {
				checkGoMessageReproducesPart(t, canonical(c.Data), v.content)
			}
		})
	}
	for _, r := range []string{
		testcorpus.ReasonOK, testcorpus.ReasonMessageMalformed, testcorpus.ReasonMultipleFrom,
		testcorpus.ReasonInvalidFromAddress, testcorpus.ReasonDKIMMissing, testcorpus.ReasonDKIMInvalid,
		testcorpus.ReasonDKIMDomainMismatch, testcorpus.ReasonNoSignature, testcorpus.ReasonSignatureMalformed,
		testcorpus.ReasonSignatureInvalid, testcorpus.ReasonCertUntrusted, testcorpus.ReasonCertExpired,
		testcorpus.ReasonCertNotYetValid, testcorpus.ReasonCertWrongEKU, testcorpus.ReasonFromCertMismatch,
	} {
		if !reasons[r] {
			t.Errorf("no case for reason %s", r)
		}
	}
}

// checkGoMessageReproducesPart checks that the approach in
// shared/libraries.md (textproto.ReadHeader + NewMultipartReader +
// WriteHeader + body) yields the same signed bytes as the raw split.
func checkGoMessageReproducesPart(t *testing.T, msg, want []byte) {
	t.Helper()
	h, body, err := splitEntity(msg)
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == "multipart/mixed" { // list footer: descend into the first part
		mr := textproto.NewMultipartReader(bytes.NewReader(body), params["boundary"])
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		h = p.Header
		if body, err = io.ReadAll(p); err != nil {
			t.Fatal(err)
		}
		_, params, _ = mime.ParseMediaType(h.Get("Content-Type"))
	}
	mr := textproto.NewMultipartReader(bytes.NewReader(body), params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := textproto.WriteHeader(&got, p.Header); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(&got, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("go-message part differs from the signed bytes:\n%q\n%q", got.Bytes(), want)
	}
}

func TestDecoyCertificateFirstInBag(t *testing.T) {
	f := mustFixture(t)
	for _, c := range f.Cases() {
		if c.Name != "from-cert-mismatch-decoy" {
			continue
		}
		v := check(t, f, c.Data)
		p7, err := pkcs7.Parse(v.der)
		if err != nil {
			t.Fatal(err)
		}
		if got := p7.Certificates[0].EmailAddresses; len(got) != 1 || got[0] != "bob@example.com" {
			t.Errorf("first certificate in the bag is for %v, want the decoy", got)
		}
		if s := p7.GetOnlySigner(); s.EmailAddresses[0] != "mallory@example.com" {
			t.Errorf("signer %v", s.EmailAddresses)
		}
		return
	}
	t.Fatal("no decoy case")
}

func TestSigningTimes(t *testing.T) {
	f := mustFixture(t)
	want := map[string]time.Time{
		"ok-rsa-detached":    testcorpus.SigningTime,
		"cert-expired":       testcorpus.ExpiredSigningTime,
		"cert-not-yet-valid": testcorpus.FutureSigningTime,
	}
	// The *-signingtime-* cases: a signingTime outside the signer
	// certificate's validity, each reason in each of the six S/MIME forms.
	outside := map[string]int{}
	for _, c := range f.Cases() {
		w, ok := want[c.Name]
		if strings.Contains(c.Name, "-signingtime-") {
			w, ok = testcorpus.SigningTime, true
			if c.Reason == testcorpus.ReasonOK {
				w = testcorpus.SkewedSigningTime
			}
		}
		if !ok {
			continue
		}
		v := check(t, f, c.Data)
		p7, err := pkcs7.Parse(v.der)
		if err != nil {
			t.Fatal(err)
		}
		if v.content != nil {
			p7.Content = v.content
		}
		var st time.Time
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err != nil {
			t.Fatal(err)
		}
		if !st.Equal(w) {
			t.Errorf("%s: signingTime %v, want %v", c.Name, st, w)
		}
		if !strings.Contains(c.Name, "-signingtime-") {
			continue
		}
		if s := p7.GetOnlySigner(); !st.Before(s.NotBefore) && !st.After(s.NotAfter) {
			t.Errorf("%s: signingTime %v inside the signer's validity %v..%v", c.Name, st, s.NotBefore, s.NotAfter)
		}
		if _, ok := errors.AsType[*pkcs7.SigningTimeNotValidError](p7.Verify()); !ok {
			t.Errorf("%s: pkcs7's Verify does not refuse the signing time: the case tests nothing", c.Name)
		}
		outside[c.Reason]++
	}
	for _, r := range []string{testcorpus.ReasonOK, testcorpus.ReasonCertExpired, testcorpus.ReasonCertNotYetValid} {
		if outside[r] != 6 {
			t.Errorf("%d *-signingtime-* cases for %s, want one per S/MIME form (6)", outside[r], r)
		}
	}
}

func TestKeysFileAndLookup(t *testing.T) {
	f := mustFixture(t)
	n := 0
	for _, line := range strings.Split(string(f.KeysFile()), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rec, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("line without tab: %q", line)
		}
		got, err := f.LookupTXT(name)
		if err != nil || len(got) != 1 || got[0] != rec || !strings.HasPrefix(rec, "v=DKIM1; k=rsa; p=") {
			t.Errorf("%s: LookupTXT %v %v, file %q", name, got, err, rec)
		}
		n++
	}
	if n != len(testcorpus.DKIMDomains) {
		t.Errorf("%d keys", n)
	}
	if _, err := f.LookupTXT("s2._domainkey.example.com"); err == nil {
		t.Error("unknown selector resolved")
	}
	if _, err := f.LookupTXT("s1._domainkey.example.invalid"); err == nil {
		t.Error("unknown domain resolved")
	}
	if testcorpus.At.Unix() != testcorpus.AtUnix {
		t.Error("AtUnix")
	}
	if !bytes.Contains(f.TrustPEM(), []byte("BEGIN CERTIFICATE")) || bytes.Count(f.TrustPEM(), []byte("BEGIN")) != 1 {
		t.Error("TrustPEM should hold exactly the root")
	}
}

func TestSignedMessage(t *testing.T) {
	f := mustFixture(t)
	for i, opts := range [][]testcorpus.MessageOption{
		nil,
		{testcorpus.Opaque()},
		{testcorpus.BareLF(), testcorpus.WithBody("custom\nbody"), testcorpus.WithSubject("s")},
		{testcorpus.ECIssuer()},
	} {
		addr := testcorpus.BenchAddress(i)
		m, err := f.SignedMessage(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if v := check(t, f, m); v.reason != testcorpus.ReasonOK || v.certAddr != addr {
			t.Errorf("%s: %s %s", addr, v.reason, v.detail)
		}
	}
	msgs, err := f.SignedMessages([]string{"a@example.com", "b@example.net", "c@example.org"})
	if err != nil || len(msgs) != 3 {
		t.Fatal(err)
	}
	if _, err := f.SignedMessage("x@example.invalid"); err == nil {
		t.Error("address without DKIM key accepted")
	}
}

func TestBERIndefinite(t *testing.T) {
	f := mustFixture(t)
	for _, c := range f.Cases() {
		if !strings.Contains(c.Name, "ber") {
			continue
		}
		v := check(t, f, c.Data)
		if v.der[1] != 0x80 {
			t.Errorf("%s: outer ContentInfo is not indefinite-length", c.Name)
		}
		if strings.Contains(c.Name, "chunked") && !bytes.Contains(v.der, []byte{0x24, 0x80, 0x04, 0x82, 0x03, 0xe8}) {
			t.Errorf("%s: no constructed OCTET STRING of 1000-byte chunks", c.Name)
		}
	}
}

// TestOpenSSL cross-checks the CMS signatures with openssl, when available.
func TestOpenSSL(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := mustFixture(t)
	dir := t.TempDir()
	trust := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Cases() {
		wantOK := c.Reason == testcorpus.ReasonOK
		switch c.Reason {
		case testcorpus.ReasonOK, testcorpus.ReasonCertUntrusted, testcorpus.ReasonCertExpired,
			testcorpus.ReasonCertNotYetValid, testcorpus.ReasonCertWrongEKU, testcorpus.ReasonSignatureInvalid,
			testcorpus.ReasonFromCertMismatch:
		default:
			continue
		}
		v := check(t, f, c.Data)
		sig := filepath.Join(dir, c.Name+".p7")
		if err := os.WriteFile(sig, v.der, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"cms", "-verify", "-inform", "DER", "-in", sig, "-binary", "-CAfile", trust,
			"-purpose", "smimesign", "-attime", fmt.Sprint(testcorpus.AtUnix), "-out", os.DevNull}
		if v.content != nil {
			content := filepath.Join(dir, c.Name+".content")
			if err := os.WriteFile(content, v.content, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-content", content)
		}
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if c.Reason == testcorpus.ReasonFromCertMismatch || strings.Contains(c.Name, "-weak-") || strings.Contains(c.Name, "encryption-cert") {
			// The signature and chain are fine; the *-weak-* ones are
			// refused by certharvest's policy (SHA-1, short PSS salt,
			// RSA-1024), which openssl's defaults accept; in
			// *encryption-cert* only the encryption certificate fails.
			wantOK = true
		}
		if err != nil && bytes.Contains(out, []byte("eddsa_digest_signverify_init")) {
			// OpenSSL before 3.2 cannot verify Ed25519 in CMS (RFC
			// 8419): check the chain with openssl at least.
			t.Logf("%s: this openssl has no Ed25519 in CMS; its chain is checked instead", c.Name)
			out, err = opensslChain(t, openssl, dir, trust, c.Name, v.der)
			wantOK = wantOK || c.Reason == testcorpus.ReasonSignatureInvalid
		}
		if (err == nil) != wantOK {
			t.Errorf("%s: openssl ok=%v, want %v: %s", c.Name, err == nil, wantOK, out)
		}
		if c.Reason == testcorpus.ReasonCertExpired || c.Reason == testcorpus.ReasonCertNotYetValid {
			// Only the dates fail: the signature verifies (whatever its
			// signingTime) and the chain holds at any time.
			i := slices.Index(args, "-attime")
			noTime := slices.Concat(args[:i], args[i+2:], []string{"-no_check_time"})
			out, err := exec.Command(openssl, noTime...).CombinedOutput()
			if err != nil {
				t.Errorf("%s: openssl -no_check_time: %v: %s", c.Name, err, out)
			}
		}
	}
}

func BenchmarkSignedMessage(b *testing.B) {
	f := mustFixture(b)
	for i := 0; b.Loop(); i++ {
		if _, err := f.SignedMessage(testcorpus.BenchAddress(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime() time.Duration { return time.Duration(cputime.Process()) }

func TestMint2000Timing(t *testing.T) {
	if os.Getenv("TESTCORPUS_TIMING") == "" {
		t.Skip("set TESTCORPUS_TIMING=1 to time minting 2,000 messages")
	}
	timed := func(what string, fn func() error) {
		start, cpu := time.Now(), cpuTime()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v wall, %v CPU", what, time.Since(start).Round(time.Millisecond), (cpuTime() - cpu).Round(time.Millisecond))
	}
	var f *testcorpus.Fixture
	timed("New", func() (err error) { f, err = testcorpus.New(); return err })
	addrs := make([]string, 2000)
	for i := range addrs {
		addrs[i] = testcorpus.BenchAddress(i)
	}
	timed("SignedMessages(2000)", func() error { _, err := f.SignedMessages(addrs); return err })
	timed("SignedMessages(2000, ECIssuer())", func() error { _, err := f.SignedMessages(addrs, testcorpus.ECIssuer()); return err })
}
