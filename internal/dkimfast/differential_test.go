package dkimfast

// The differential tests: this package against go-msgauth itself, on the
// same messages and the same key records. Each message is given to both
// as it is and in canonical form (every LF after a CR, as the pipeline
// gives it), is optionally shifted by padding at the start of its body
// (go-msgauth reads the body in chunks: of 4,096 bytes less the header,
// then the rest, or 32 KiB for several signatures), and is optionally
// signed first by go-msgauth's own signer, once or twice, with each
// canonicalisation and an Ed25519 or RSA key: a signature that go-msgauth
// makes and verifies but this package does not (or the reverse) is a
// difference of canonical bytes. Compared: the error of the whole, and of
// each verification its domain, identifier, signed header keys, times, and
// its error's text and kind (temporary, permanent, or a failure), and the
// key records looked up. RSA signatures are verified here through an
// rsaverify.Verifier, as in the pipeline.
//
//	go test -run '^$' -fuzz FuzzDifferential -fuzztime 10m ./internal/dkimfast/

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/certharvest/certharvest/internal/rsaverify"
)

// testKeys are the signing keys and the key records of the differential
// tests.
type testKeys struct {
	ed      ed25519.PrivateKey
	rsa     *rsa.PrivateKey
	records map[string][]string // lower-case name → TXT records
	// verifier verifies the RSA signatures for Verify, as in the
	// pipeline: keeping the key's modulus from one message to the next.
	verifier *rsaverify.Verifier
}

var (
	keysOnce sync.Once
	keys     *testKeys
	keysErr  error
)

// maxVerifications is the cap the differential tests verify with: a
// message signed twice more than its own signatures can reach it.
const maxVerifications = 3

func loadKeys(tb testing.TB) *testKeys {
	tb.Helper()
	keysOnce.Do(func() {
		k := &testKeys{records: map[string][]string{}, verifier: rsaverify.New(rsaverify.Options{})}
		k.ed = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
		// The shortest RSA key go-msgauth accepts: the fastest to sign.
		if k.rsa, keysErr = rsa.GenerateKey(rand.Reader, 1024); keysErr != nil {
			return
		}
		pkix, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		if err != nil {
			keysErr = err
			return
		}
		rsaP := base64.StdEncoding.EncodeToString(pkix)
		edP := base64.StdEncoding.EncodeToString(k.ed.Public().(ed25519.PublicKey))
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			keysErr = err
			return
		}
		ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
		if err != nil {
			keysErr = err
			return
		}
		ecP := base64.StdEncoding.EncodeToString(ecDER)
		// A 512-bit modulus (crypto/rsa no longer makes such keys).
		short := &rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 511), big.NewInt(0x1d)), E: 65537}
		for sel, recs := range map[string][]string{
			"ed":      {"v=DKIM1; k=ed25519; p=" + edP},
			"rsa":     {"v=DKIM1; k=rsa; p=" + rsaP},
			"pkcs1":   {"v=DKIM1; p=" + base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey))},
			"spaced":  {"v = DKIM1 ; k=rsa; h=sha256:sha1; s=email:*; t=y:s; n=note; p=" + rsaP[:20] + " " + rsaP[20:]},
			"multi":   {"v=DKIM1; p=" + rsaP, "v=DKIM1; p=" + rsaP},
			"revoked": {"v=DKIM1; k=rsa; p="},
			"badb64":  {"v=DKIM1; p=!!!!"},
			"badkey":  {"v=DKIM1; p=AAAA"},
			"short":   {"v=DKIM1; p=" + base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(short))},
			"v2":      {"v=DKIM2; p=" + rsaP},
			"nop":     {"v=DKIM1; k=rsa"},
			"dup":     {"v=DKIM1; p=a; p=b"},
			"junk":    {"v=DKIM1; p"},
			"sha1":    {"v=DKIM1; h=sha1; p=" + rsaP},
			"svc":     {"v=DKIM1; s=other; p=" + rsaP},
			"edlen":   {"v=DKIM1; k=ed25519; p=AAAA"},
			"kx":      {"v=DKIM1; k=dsa; p=" + rsaP},
			"ec":      {"v=DKIM1; p=" + ecP},
			"empty":   {},
		} {
			k.records[sel] = recs
		}
		// The sample corpus's keys (name, tab, record).
		if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sample", "dkim-keys.txt")); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				name, rec, ok := strings.Cut(sc.Text(), "\t")
				if ok && !strings.HasPrefix(name, "#") {
					k.records[strings.ToLower(name)] = append(k.records[strings.ToLower(name)], rec)
				}
			}
		}
		keys = k
	})
	if keysErr != nil {
		tb.Fatal(keysErr)
	}
	return keys
}

// lookup answers the key lookups: a name of the sample's keys; any other
// by its selector alone (the label before "._domainkey."), so that a
// signature of any domain finds the test keys; the selector "temp" fails
// temporarily, and a selector without records does not exist. It records
// the names looked up.
func (k *testKeys) lookup(log *[]string, mu *sync.Mutex) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		mu.Lock()
		*log = append(*log, name)
		mu.Unlock()
		if recs, ok := k.records[strings.ToLower(name)]; ok {
			return recs, nil
		}
		sel, _, _ := strings.Cut(name, "._domainkey.")
		if sel == "temp" {
			return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		if recs, ok := k.records[sel]; ok {
			return recs, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
}

// outcome is what a verifier said about a message, in comparable form.
type outcome struct {
	err     string
	verifs  []string
	lookups []string
}

func describe(vs []*dkim.Verification, err error, isTemp, isPerm func(error) bool, lookups []string) outcome {
	o := outcome{lookups: slices.Sorted(slices.Values(lookups))}
	if err != nil {
		o.err = err.Error()
		if errors.Is(err, dkim.ErrTooManySignatures) {
			o.err += " (ErrTooManySignatures)"
		}
	}
	if vs == nil {
		o.verifs = []string{"nil"}
	}
	for _, v := range vs {
		kind, msg := "pass", ""
		if v.Err != nil {
			msg = v.Err.Error()
			switch {
			case isTemp(v.Err):
				kind = "temperror"
			case isPerm(v.Err):
				kind = "permerror"
			default:
				kind = "fail"
			}
		}
		o.verifs = append(o.verifs, fmt.Sprintf("%s %q d=%q i=%q h=%q t=%d x=%d",
			kind, msg, v.Domain, v.Identifier, v.HeaderKeys, v.Time.UnixNano(), v.Expiration.UnixNano()))
	}
	return o
}

// compare verifies msg with go-msgauth and with Verify and fails the test
// if they differ. It returns go-msgauth's verifications.
func compare(t *testing.T, k *testKeys, msg []byte) []*dkim.Verification {
	t.Helper()
	if nearNowExpiry(msg) {
		t.Skip("an x= tag within a minute of now: the two verifiers' clocks could straddle it")
	}
	var upLog, fastLog []string
	var mu sync.Mutex
	upVs, upErr := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: k.lookup(&upLog, &mu), MaxVerifications: maxVerifications})
	fastVs, fastErr := VerifyWith(msg, &dkim.VerifyOptions{
		LookupTXT: k.lookup(&fastLog, &mu), MaxVerifications: maxVerifications}, Options{RSA: k.verifier})
	up := describe(upVs, upErr, dkim.IsTempFail, dkim.IsPermFail, upLog)
	fast := describe(fastVs, fastErr, IsTempFail, IsPermFail, fastLog)
	if up.err != fast.err || !slices.Equal(up.verifs, fast.verifs) || !slices.Equal(up.lookups, fast.lookups) {
		t.Fatalf("verdicts differ on %q\ngo-msgauth: %q %q lookups %q\ndkimfast:   %q %q lookups %q",
			msg, up.err, up.verifs, up.lookups, fast.err, fast.verifs, fast.lookups)
	}
	return upVs
}

// nearNowExpiry reports whether a DKIM-Signature of msg has an x= tag
// within a minute of the time now.
func nearNowExpiry(msg []byte) bool {
	for _, line := range bytes.Split(msg, []byte("\n")) {
		_, v, ok := bytes.Cut(line, []byte("x="))
		if !ok {
			continue
		}
		v, _, _ = bytes.Cut(v, []byte(";"))
		if ts, err := parseTime(string(v)); err == nil && time.Until(ts).Abs() < time.Minute {
			return true
		}
	}
	// A tag folded over lines, or split by a bare CR: look at the
	// signatures as go-msgauth reads them too.
	h, _, err := splitHeader(msg)
	if err != nil {
		return false
	}
	for _, kv := range h {
		_, v, _ := strings.Cut(kv, ":")
		params, _ := parseHeaderParams(strings.TrimSpace(v))
		if x, ok := params["x"]; ok {
			if ts, err := parseTime(x); err == nil && time.Until(ts).Abs() < time.Minute {
				return true
			}
		}
	}
	return false
}

// toCRLF is the message in canonical form: a CR before every bare LF.
func toCRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// padBody puts n bytes of text lines (with white space of every kind
// relaxed canonicalisation changes) at the start of the body of msg.
func padBody(msg []byte, n int) []byte {
	i := bytes.Index(msg, []byte("\n\r\n"))
	j := bytes.Index(msg, []byte("\n\n"))
	switch {
	case i >= 0 && (j < 0 || i < j):
		i += 3
	case j >= 0:
		i = j + 2
	default:
		return msg
	}
	const line = "pad \t line  with\tspace \r\n\r\n"
	pad := bytes.Repeat([]byte(line), n/len(line)+1)[:n]
	return slices.Concat(msg[:i], pad, msg[i:])
}

// signOptions are the go-msgauth signatures the fuzz test can add to msg,
// by mode bits: canonicalisations, key, and which header fields: every
// field (h= absent from the options), a few names (present, repeated, in
// other cases, absent), or enough names, variants of msg's own, that the
// picker indexes the fields (maxScan).
func (k *testKeys) signOptions(msg []byte, mode uint8) *dkim.SignOptions {
	cans := []dkim.Canonicalization{dkim.CanonicalizationSimple, dkim.CanonicalizationRelaxed}
	o := &dkim.SignOptions{
		Domain:                 "example.com",
		Selector:               "ed",
		Signer:                 k.ed,
		HeaderCanonicalization: cans[mode&1],
		BodyCanonicalization:   cans[mode>>1&1],
	}
	if mode&4 != 0 {
		o.Selector, o.Signer = "rsa", k.rsa
	}
	switch mode >> 3 & 3 {
	case 1:
		o.HeaderKeys = []string{"From", "subject", "To", "from", "X-Absent", "Date", "date", "MESSAGE-ID"}
	case 2:
		h, _, err := splitHeader(msg)
		if err != nil || len(h) == 0 {
			break
		}
		var names []string
		for _, kv := range h {
			name, _, _ := strings.Cut(kv, ":")
			name = strings.TrimSpace(name)
			if !strings.ContainsAny(name, ":;") { // which would break the h= tag
				names = append(names, name, strings.ToUpper(name), strings.ToLower(name))
			}
		}
		o.HeaderKeys = []string{"From"}
		for len(o.HeaderKeys)*len(h) <= 2*maxScan {
			o.HeaderKeys = append(o.HeaderKeys, names...)
			o.HeaderKeys = append(o.HeaderKeys, "X-Absent")
		}
	}
	return o
}

// run is one differential case: msg as it is and in canonical form, padded
// or not, signed or not.
func run(t *testing.T, k *testKeys, msg []byte, mode uint8, pad uint16) {
	if mode&1 != 0 {
		msg = toCRLF(msg)
	}
	if mode&2 != 0 {
		msg = padBody(msg, int(pad)%40000)
	}
	signs := 0
	switch mode >> 2 & 3 {
	case 1:
		signs = 1
	case 2:
		signs = 2
	}
	signMode := uint8(pad >> 8)
	for range signs {
		var out bytes.Buffer
		if err := dkim.Sign(&out, bytes.NewReader(msg), k.signOptions(msg, signMode)); err != nil {
			break
		}
		msg = out.Bytes()
		signMode = ^signMode
	}
	vs := compare(t, k, msg)
	if signs > 0 && len(vs) > 0 && vs[0].Err != nil && vs[0].Domain == "example.com" && strings.Contains(vs[0].Err.Error(), "body hash") {
		// Not a difference (both said so), but worth knowing: go-msgauth
		// failed its own signature.
		t.Logf("go-msgauth fails its own signature: %v", vs[0].Err)
	}
}

// seedMessages are the seed corpus: the sample's messages and a few
// written for the corner cases of the canonicalisations and the tags.
func seedMessages(tb testing.TB) [][]byte {
	tb.Helper()
	var msgs [][]byte
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "sample", "messages", "*.eml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	const hdr = "From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n"
	for _, s := range []string{
		hdr + "\r\nbody\r\n",
		hdr + "\r\n",
		hdr,
		"From: a@example.com",
		hdr + "\r\n  lead and trail  \t\r\n\t\r\n \r\n\r\n",
		hdr + "\r\nx\r\r\ny\r \r\nz \r\n\r\r",
		"From: a@example.com\nSubject: bare\n\nline\n\n\n",
		"From: a@example.com\r\nSubject: mixed\n\r\nline\r\nbare\n \n",
		"From: a@example.com\r\nSubject:\r\n folded\r\n\tagain\r\n\r\nbody",
		" leading: continuation\r\nFrom: a@example.com\r\n\r\nb",
		"FROM : a@example.com\r\nfrom: second@example.com\r\nK\u212Aelvin: x\r\n\u017Fubject: long s\r\nno colon here\r\n\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA; l=10\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=temp; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=ed; h=from; bh=AAAA; b=AAAA; x=1000\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; i=@other.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=subject; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/bogus; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA; q=dns/txt:other\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=multi; h=from; bh=AAAA; b=AAAA\r\ndkim-signature: v=1; s=svc; d=x; a=rsa-sha256; h=From; bh=; b=\r\n" +
			"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=revoked; h=from; bh=AAAA; b=AAAA; b=dup\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=short; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from:from:subject:to:x; xb = keep; b \t=\r\n AAAA; bh=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=2; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA; t=soon\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA; x=later\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA; q=http\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-md5; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; c=bogus/relaxed; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=!!!; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=AAAA; b=!!!\r\n" + hdr + "\r\nbody\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=kx; h=from; bh=AAAA; b=AAAA\r\n" + hdr + "\r\nbody\r\n",
		"From: a@example.com\r\nnocolon\r\n\vX-Weird\f : y\r\nX-\u00c9t\u00c9: z\r\n\r\nbody\r\n",
	} {
		msgs = append(msgs, []byte(s))
	}
	// Signed by go-msgauth with a selector of each kind of key record.
	k := loadKeys(tb)
	for _, sel := range []string{"rsa", "ed", "pkcs1", "spaced", "multi", "revoked", "badb64", "badkey", "short", "v2",
		"nop", "dup", "junk", "sha1", "svc", "edlen", "kx", "ec", "empty", "temp", "nosuch"} {
		var signer crypto.Signer = k.rsa
		if strings.HasPrefix(sel, "ed") {
			signer = k.ed
		}
		var out bytes.Buffer
		err := dkim.Sign(&out, strings.NewReader(hdr+"\r\nsigned with "+sel+"\r\n"), &dkim.SignOptions{
			Domain: "example.com", Selector: sel, Signer: signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed})
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, out.Bytes())
	}
	return msgs
}

func FuzzDifferential(f *testing.F) {
	for i, msg := range seedMessages(f) {
		f.Add(msg, uint8(i), uint16(i*997))
		f.Add(msg, uint8(1|4|i&2), uint16(i*4099))
		f.Add(msg, uint8(1|8), uint16(i*65))
	}
	f.Fuzz(func(t *testing.T, msg []byte, mode uint8, pad uint16) {
		run(t, loadKeys(t), msg, mode, pad)
	})
}

// TestDifferentialSeeds runs every seed in every mode that signs, with
// pads around the chunk sizes of go-msgauth's readers, so that a plain
// `go test` covers what the fuzz test starts from.
func TestDifferentialSeeds(t *testing.T) {
	k := loadKeys(t)
	pads := []uint16{0, 1, 2, 4095, 4097, 32767, 32769}
	for i, msg := range seedMessages(t) {
		for mode := range uint8(16) {
			pad := pads[(i+int(mode))%len(pads)] | uint16(mode)<<8
			t.Run(fmt.Sprintf("%d/mode%d", i, mode), func(t *testing.T) {
				run(t, k, msg, mode, pad)
			})
		}
	}
	// The RSA signatures went through the Verifier, which kept the keys.
	if k.verifier.Len() == 0 {
		t.Error("the rsaverify.Verifier keeps no key: RSA signatures did not go through it")
	}
}

// sigRegex is go-msgauth's (dkim/verify.go), the reference for
// removeSignature.
var sigRegex = regexp.MustCompile(`(b\s*=)[^;]+`)

func FuzzRemoveSignature(f *testing.F) {
	for _, s := range []string{
		"v=1; b=abc; bh=def",
		"b=",
		"b=;b=x",
		"bb=x;b =y; b\t\r\n =z",
		"xb=1;b\f=2;b\v=3",
		"b=\xff\xfe;b=é",
		"DKIM-Signature: a=rsa-sha256; b=AAA\r\n BBB;\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := removeSignature(s), sigRegex.ReplaceAllString(s, "$1"); got != want {
			t.Fatalf("removeSignature(%q) = %q, want %q", s, got, want)
		}
	})
}

func FuzzFoldKey(f *testing.F) {
	for _, s := range [][2]string{{"From", "from"}, {"K", "\u212A"}, {"s", "\u017F"}, {"\xff", "\uFFFD"}, {"ß", "ss"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, c := range []string{b, strings.ToUpper(a), strings.ToLower(a), strings.ToTitle(a), strings.ToValidUTF8(a, "\uFFFD")} {
			if got, want := foldKey(a) == foldKey(c), strings.EqualFold(a, c); got != want {
				t.Fatalf("foldKey(%q) == foldKey(%q) is %v, strings.EqualFold %v", a, c, got, want)
			}
		}
	})
}

// A signature naming thousands of fields of a header of thousands: the
// picker indexes the fields (go-msgauth compares every name with every
// field), and picks what go-msgauth picks. The body hash matches, so the
// header is hashed; the signature, made up, then fails.
func TestManyNamesManyFields(t *testing.T) {
	k := loadKeys(t)
	var hdr strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&hdr, "X-F%d: %d\r\n", i%300, i)
	}
	hdr.WriteString("From: a@example.com\r\n")
	body := "many names\r\n"
	w := &spanWriter{h: sha256.New()}
	relaxedBody(w, []byte(body))
	names := []string{"from"}
	for i := range 3000 {
		names = append(names, fmt.Sprintf("x-f%d", i%400))
	}
	sig := "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=rsa; h=" + strings.Join(names, ":") +
		"; bh=" + base64.StdEncoding.EncodeToString(w.h.Sum(nil)) + "; b=" + base64.StdEncoding.EncodeToString(make([]byte, 128)) + "\r\n"
	msg := []byte(sig + hdr.String() + "\r\n" + body)
	vs := compare(t, k, msg)
	if len(vs) != 1 || vs[0].Err == nil || !strings.HasPrefix(vs[0].Err.Error(), "dkim: signature did not verify") {
		t.Fatalf("verifications %v, want one whose signature did not verify", vs)
	}
	h, body2, err := splitHeader(msg)
	if err != nil {
		t.Fatal(err)
	}
	m := &message{h: h, body: body2}
	m.picker(len(names))
	if m.index == nil {
		t.Error("the fields were not indexed")
	}
}
