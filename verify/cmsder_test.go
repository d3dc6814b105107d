package verify

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The CMS fast path must agree with the pkcs7 path whenever it decides, and
// must decide for the DER signatures mail clients send.

func TestCMSFastPathTakesDER(t *testing.T) {
	sample := loadFuzzSample(t)
	names, err := filepath.Glob(filepath.Join("..", "testdata", "sample", "messages", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	fast := 0
	for i, raw := range sample.messages {
		name := filepath.Base(names[i])
		m, err := parseMessage(raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			continue
		}
		e, err := locateSignature(m, &story{mu: &sync.Mutex{}})
		if err != nil {
			continue
		}
		cms, ok := fastVerifyCMS(e, nil)
		slow, slowErr := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
		switch {
		case strings.Contains(name, "-ok-") && strings.Contains(name, "-ber-"):
			if ok {
				t.Errorf("%s: BER with indefinite lengths taken by the DER fast path", name)
			}
		case strings.Contains(name, "-ok-"), strings.Contains(name, "cert-"), strings.Contains(name, "from-cert-"):
			// A valid CMS signature, DER: the fast path decides.
			if !ok {
				t.Errorf("%s: DER signature not taken by the fast path", name)
			}
		case strings.Contains(name, "signature-malformed"), strings.Contains(name, "signature-invalid"):
			if ok {
				t.Errorf("%s: a bad signature accepted by the fast path", name)
			}
		}
		if !ok {
			continue
		}
		fast++
		if slowErr != nil {
			t.Fatalf("%s: fast path accepted what pkcs7 rejects: %v", name, slowErr)
		}
		if !sameCerts(cms.signers, slow.signers) || !sameCerts(cms.bag, slow.bag) {
			t.Errorf("%s: fast path and pkcs7 disagree on the signers or certificates", name)
		}
	}
	if fast < 10 {
		t.Errorf("fast path decided %d sample signatures, want at least 10", fast)
	}
}

// sameCerts reports whether a and b are the same certificates: the same
// serial numbers and public keys, in the same order. Not byte for byte:
// pkcs7's BER-to-DER conversion also re-encodes what it finds inside a
// certificate, so a certificate with a non-DER part (which crypto/x509
// parses, and whose own signature the chain check then refuses) comes out
// of the pkcs7 path with other bytes than were sent.
func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		key, ok := a[i].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !key.Equal(b[i].PublicKey) || a[i].SerialNumber.Cmp(b[i].SerialNumber) != 0 {
			return false
		}
	}
	return true
}

// TestCMSFastPathRefusesAlterations flips each byte of a good signature and
// of its content: the fast path never accepts what pkcs7 rejects.
func TestCMSFastPathRefusesAlterations(t *testing.T) {
	var e *signedEntity
	for _, s := range loadFuzzSample(t).signatures() {
		if _, ok := fastVerifyCMS(s, nil); ok && !s.opaque {
			e = s
			break
		}
	}
	if e == nil {
		t.Fatal("no detached DER signature in the sample")
	}
	// The SignerInfo, from its signed attributes to the end, is covered
	// by the signature or is the signature: no alteration there passes.
	sd, ok := parseSignedDataDER(e.cms, nil)
	if !ok || sd.signers[0].signedAttrs == nil {
		t.Fatal("sample signature without signed attributes")
	}
	signerInfo := bytes.Index(e.cms, sd.signers[0].signedAttrs)
	for i := range e.cms {
		cms := bytes.Clone(e.cms)
		cms[i] ^= 0x01
		alt := &signedEntity{cms: cms, content: e.content}
		if _, ok := fastVerifyCMS(alt, nil); !ok {
			continue
		}
		if i >= signerInfo {
			t.Fatalf("byte %d of the SignerInfo flipped: fast path accepts", i)
		}
		// Elsewhere (inside a certificate, whose own signature the chain
		// check verifies), pkcs7 must agree.
		if _, err := verifyCMSWithPKCS7(alt, &story{mu: &sync.Mutex{}}); err != nil && !ber2derRefused(err) {
			t.Fatalf("byte %d flipped: fast path accepts, pkcs7 rejects: %v", i, err)
		}
	}
	for i := 0; i < len(e.content); i += 7 {
		content := bytes.Clone(e.content)
		content[i] ^= 0x20
		if _, ok := fastVerifyCMS(&signedEntity{cms: e.cms, content: content}, nil); ok {
			t.Fatalf("content byte %d altered: fast path accepts", i)
		}
	}
}

// ber2derRefused reports whether pkcs7 refused a CMS in its BER-to-DER
// converter. It walks inside certificates with tag rules of its own, and
// can refuse a certificate that crypto/x509 parses (a flipped bit in a
// string's tag, say). The fast path never looks inside certificates, so it
// may accept such a CMS: its signature verified, and the certificates are
// then judged by the chain check, as any other. checkBER, which guards
// the converter, refuses the same kind of CMS ("not well-formed BER").
func ber2derRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "ber2der:") || strings.Contains(err.Error(), "not well-formed BER"))
}

// FuzzCMSFastPath: whatever the bytes, when the fast path accepts, the
// pkcs7 path accepts too, with the same signers (unless its BER converter
// refuses the bytes: see ber2derRefused).
func FuzzCMSFastPath(f *testing.F) {
	for _, e := range loadFuzzSample(f).signatures() {
		f.Add(e.cms, e.content, e.opaque)
	}
	f.Fuzz(func(t *testing.T, der, content []byte, opaque bool) {
		e := &signedEntity{cms: der, content: content, opaque: opaque}
		cms, ok := fastVerifyCMS(e, nil)
		if !ok {
			return
		}
		slow, err := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
		if ber2derRefused(err) {
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted what pkcs7 rejects: %v", err)
		}
		if !sameCerts(cms.signers, slow.signers) {
			t.Fatal("fast path and pkcs7 disagree on the signers")
		}
	})
}
