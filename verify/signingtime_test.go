package verify

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The CMS signingTime attribute is the signer's claim: it must be
// well-formed, but a verdict never depends on its value. Mail clients stamp
// the time of sending, so with a certificate that has expired it lies
// after the certificate's validity; that is cert_expired (the chain, at the
// verification time), not a broken signature.

var internalFixture = sync.OnceValues(testcorpus.New)

func signingTimeFixture(t *testing.T) *testcorpus.Fixture {
	t.Helper()
	f, err := internalFixture()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The *-signingtime-* cases of the corpus carry a signingTime outside the
// signer certificate's validity: the signature verifies on both CMS paths,
// the fast path decides the DER ones, and both find the same signer. Over
// the whole corpus, the fast path never accepts what the pkcs7 path
// rejects.
func TestCMSSigningTimeBothPaths(t *testing.T) {
	f := signingTimeFixture(t)
	n := 0
	for _, c := range f.Cases() {
		m, err := parseMessage(c.Data, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			continue
		}
		e, err := locateSignature(m, &story{mu: &sync.Mutex{}})
		if err != nil {
			continue
		}
		fast, ok := fastVerifyCMS(e, nil)
		slow, slowErr := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
		if ok && (slowErr != nil || !sameCerts(fast.signers, slow.signers)) {
			t.Errorf("%s: the fast path accepts, the pkcs7 path says %v", c.Name, slowErr)
		}
		if !strings.Contains(c.Name, "-signingtime-") {
			continue
		}
		n++
		if slowErr != nil {
			t.Errorf("%s: pkcs7 path: %v", c.Name, slowErr)
		}
		if ber := strings.Contains(c.Name, "-ber-"); ok == ber {
			t.Errorf("%s: fast path decided %v, want %v (DER: %v)", c.Name, ok, !ber, !ber)
		}
	}
	if n != 18 {
		t.Errorf("%d *-signingtime-* cases with a signature, want 18", n)
	}
}

// A signingTime that is not well-formed (RFC 5652 §11.3: exactly one
// attribute, with exactly one value, a UTCTime or GeneralizedTime) is
// signature_malformed on both paths, though the signature over it is
// valid; a well-formed one, or none, is accepted whatever its value.
func TestCMSMalformedSigningTime(t *testing.T) {
	f := signingTimeFixture(t)
	cert, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "signing.time@example.com", SubjectEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	utc := tlv(cbasn1.UTCTime, []byte("260531120000Z"))
	for _, tt := range []struct {
		name  string
		attrs [][]byte // signed attributes beside contentType and messageDigest
		want  Reason   // ReasonOK: accepted
	}{
		{"none", nil, ReasonOK},
		{"UTCTime", [][]byte{signingTimeAttr(utc)}, ReasonOK},
		{"GeneralizedTime", [][]byte{signingTimeAttr(tlv(cbasn1.GeneralizedTime, []byte("20260531120000Z")))}, ReasonOK},
		{"before the certificate", [][]byte{signingTimeAttr(tlv(cbasn1.UTCTime, []byte("000101000000Z")))}, ReasonOK},
		{"after the certificate", [][]byte{signingTimeAttr(tlv(cbasn1.GeneralizedTime, []byte("20990101000000Z")))}, ReasonOK},
		{"not a time", [][]byte{signingTimeAttr(tlv(cbasn1.UTCTime, []byte("yesterday")))}, ReasonSignatureMalformed},
		{"month 13", [][]byte{signingTimeAttr(tlv(cbasn1.UTCTime, []byte("261331120000Z")))}, ReasonSignatureMalformed},
		{"an INTEGER", [][]byte{signingTimeAttr(tlv(cbasn1.INTEGER, []byte{0x01}))}, ReasonSignatureMalformed},
		{"no value", [][]byte{signingTimeAttr()}, ReasonSignatureMalformed},
		{"two values", [][]byte{signingTimeAttr(utc, tlv(cbasn1.UTCTime, []byte("260601120000Z")))}, ReasonSignatureMalformed},
		{"two attributes", [][]byte{signingTimeAttr(utc), signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260601120000Z")))}, ReasonSignatureMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content := []byte("Content-Type: text/plain\r\n\r\nsigned\r\n")
			for _, opaque := range []bool{false, true} {
				der := buildCMS(t, cmsSpec{signer: cert, key: f.LeafKey, bag: []*x509.Certificate{f.Intermediate},
					content: content, opaque: opaque, hash: crypto.SHA256, digestAlg: oidSHA256, sigAlg: oidRSAEncryption,
					attrs: tt.attrs})
				e := &signedEntity{cms: der, content: content, opaque: opaque}
				if opaque {
					e.content = nil
				}
				_, fast := fastVerifyCMS(e, nil)
				_, slowErr := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
				_, err := verifyCMS(e, nil, &story{mu: &sync.Mutex{}})
				if got := ReasonOf(err); got != tt.want || ReasonOf(slowErr) != tt.want {
					t.Errorf("opaque %v: verifyCMS %s (%v), pkcs7 path %v; want %s", opaque, got, err, slowErr, tt.want)
				}
				if fast != (tt.want == ReasonOK) {
					t.Errorf("opaque %v: fast path accepts: %v", opaque, fast)
				}
				if tt.want == ReasonSignatureMalformed && (err == nil || !strings.Contains(err.Error(), "signing time")) {
					t.Errorf("opaque %v: the detail does not name the signing time: %v", opaque, err)
				}
			}
		})
	}
}

// The pkcs7 path checks each SignerInfo with the fast path's code (not
// pkcs7's Verify): the digests and signature algorithms pkcs7 verified are
// still accepted there, except SHA-1, refused as weak (sigalg.go), and both
// paths agree. sigalg_test.go has the algorithms pkcs7 does not know.
func TestCMSDigestAlgorithms(t *testing.T) {
	f := signingTimeFixture(t)
	rsaCert, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "rsa.alg@example.com", SubjectEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	ecCert, err := f.IssueLeaf(testcorpus.LeafSpec{Address: "ec.alg@example.com", SubjectEmail: true, Key: f.ECKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		cert      *x509.Certificate
		key       crypto.Signer
		hash      crypto.Hash
		digestAlg asn1.ObjectIdentifier
		sigAlg    asn1.ObjectIdentifier
		want      Reason
	}{
		{"rsaEncryption SHA-1", rsaCert, f.LeafKey, crypto.SHA1, oidSHA1, oidRSAEncryption, ReasonSignatureInvalid},
		{"sha1WithRSAEncryption", rsaCert, f.LeafKey, crypto.SHA1, oidSHA1, oidSHA1WithRSA, ReasonSignatureInvalid},
		{"rsaEncryption SHA-256", rsaCert, f.LeafKey, crypto.SHA256, oidSHA256, oidRSAEncryption, ReasonOK},
		{"sha384WithRSAEncryption", rsaCert, f.LeafKey, crypto.SHA384, oidSHA384, oidSHA384WithRSA, ReasonOK},
		{"rsaEncryption SHA-512", rsaCert, f.LeafKey, crypto.SHA512, oidSHA512, oidRSAEncryption, ReasonOK},
		{"ecdsa-with-SHA1", ecCert, f.ECKey, crypto.SHA1, oidSHA1, oidECDSAWithSHA1, ReasonSignatureInvalid},
		{"ecdsa-with-SHA256", ecCert, f.ECKey, crypto.SHA256, oidSHA256, oidECDSAWithSHA256, ReasonOK},
		{"ecdsa-with-SHA512", ecCert, f.ECKey, crypto.SHA512, oidSHA512, oidECDSAWithSHA512, ReasonOK},
		{"sha256WithRSAEncryption over a SHA-1 digest", rsaCert, f.LeafKey, crypto.SHA1, oidSHA1, oidSHA256WithRSA, ReasonSignatureInvalid},
		{"ECDSA key, RSA algorithm", ecCert, f.ECKey, crypto.SHA256, oidSHA256, oidRSAEncryption, ReasonSignatureInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content := []byte("Content-Type: text/plain\r\n\r\nsigned\r\n")
			der := buildCMS(t, cmsSpec{signer: tt.cert, key: tt.key, bag: []*x509.Certificate{f.Intermediate},
				content: content, hash: tt.hash, digestAlg: tt.digestAlg, sigAlg: tt.sigAlg,
				attrs: [][]byte{signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260531120000Z")))}})
			e := &signedEntity{cms: der, content: content}
			_, fast := fastVerifyCMS(e, nil)
			_, slowErr := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
			if got := ReasonOf(slowErr); got != tt.want || fast != (tt.want == ReasonOK) {
				t.Errorf("pkcs7 path %s (%v), fast path accepts %v; want %s", got, slowErr, fast, tt.want)
			}
		})
	}
}

// cmsSpec describes a CMS SignedData for buildCMS.
type cmsSpec struct {
	signer    *x509.Certificate
	key       crypto.Signer
	bag       []*x509.Certificate // after the signer
	content   []byte
	opaque    bool // encapsulate the content (else detached)
	hash      crypto.Hash
	digestAlg asn1.ObjectIdentifier
	sigAlg    asn1.ObjectIdentifier
	// sigParams are the signatureAlgorithm's parameters (DER); nil:
	// absent.
	sigParams []byte
	// sign, if set, signs the DER SET OF signed attributes; else key signs
	// their hash.
	sign func(set []byte) ([]byte, error)
	// attrs are signed attributes (DER Attributes) beside contentType and
	// messageDigest.
	attrs [][]byte
}

var oidAttrContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}

// buildCMS builds a DER ContentInfo holding a SignedData by s.signer over
// s.content (RFC 5652 §5), the signature over the DER SET OF its signed
// attributes (§5.4), whatever they hold.
func buildCMS(t *testing.T, s cmsSpec) []byte {
	t.Helper()
	h := s.hash.New()
	h.Write(s.content)
	var ct cryptobyte.Builder
	ct.AddASN1ObjectIdentifier(oidData)
	attrs := append([][]byte{
		attribute(oidAttrContentType, ct.BytesOrPanic()),
		attribute(oidAttrMessageDigest, tlv(cbasn1.OCTET_STRING, h.Sum(nil))),
	}, s.attrs...)
	slices.SortFunc(attrs, bytes.Compare)
	set := tlv(cbasn1.SET, bytes.Join(attrs, nil))
	var sig []byte
	var err error
	if s.sign != nil {
		sig, err = s.sign(set)
	} else {
		h = s.hash.New()
		h.Write(set)
		sig, err = s.key.Sign(rand.Reader, h.Sum(nil), s.hash)
	}
	if err != nil {
		t.Fatal(err)
	}
	signedAttrs := bytes.Clone(set)
	signedAttrs[0] = 0xa0 // [0] IMPLICIT

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(s.digestAlg) })
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo
					b.AddASN1ObjectIdentifier(oidData)
					if s.opaque {
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(s.content)
						})
					}
				})
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, c := range append([]*x509.Certificate{s.signer}, s.bag...) {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(s.signer.RawIssuer)
							b.AddASN1BigInt(s.signer.SerialNumber)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(s.digestAlg) })
						b.AddBytes(signedAttrs)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(s.sigAlg)
							b.AddBytes(s.sigParams)
						})
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tlv is one DER element.
func tlv(tag cbasn1.Tag, contents []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(contents) })
	return b.BytesOrPanic()
}

// attribute is an Attribute (RFC 5652 §5.3) with the given DER values.
func attribute(typ asn1.ObjectIdentifier, values ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(typ)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(bytes.Join(values, nil)) })
	})
	return b.BytesOrPanic()
}

func signingTimeAttr(values ...[]byte) []byte { return attribute(oidAttrSigningTime, values...) }

// A malformed signingTime is refused by what reads the signed attributes,
// before any signature is checked.
func TestReadSignedAttributesSigningTime(t *testing.T) {
	digest := attribute(oidAttrMessageDigest, tlv(cbasn1.OCTET_STRING, []byte{1, 2, 3}))
	for _, tt := range []struct {
		name string
		attr []byte
		ok   bool
	}{
		{"UTCTime", signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260531120000Z"))), true},
		{"UTCTime without seconds", signingTimeAttr(tlv(cbasn1.UTCTime, []byte("2605311200Z"))), true},
		{"GeneralizedTime", signingTimeAttr(tlv(cbasn1.GeneralizedTime, []byte("20260531120000Z"))), true},
		{"UTCTime, local time", signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260531120000"))), false},
		{"empty UTCTime", signingTimeAttr(tlv(cbasn1.UTCTime, nil)), false},
		{"OCTET STRING", signingTimeAttr(tlv(cbasn1.OCTET_STRING, []byte("260531120000Z"))), false},
		{"trailing bytes", signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260531120000Z")), []byte{0x05, 0x00}), false},
	} {
		attrs := [][]byte{digest, tt.attr}
		slices.SortFunc(attrs, bytes.Compare)
		raw := tlv(cbasn1.Tag(0).Constructed().ContextSpecific(), bytes.Join(attrs, nil))
		d, err := readSignedAttributes(raw)
		if (err == nil) != tt.ok || (err == nil && !bytes.Equal(d, []byte{1, 2, 3})) {
			t.Errorf("%s: digest %x, error %v; want ok %v", tt.name, d, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "signing time") {
			t.Errorf("%s: the error does not name the signing time: %v", tt.name, err)
		}
	}
	onlyTime := tlv(cbasn1.Tag(0).Constructed().ContextSpecific(), signingTimeAttr(tlv(cbasn1.UTCTime, []byte("260531120000Z"))))
	if _, err := readSignedAttributes(onlyTime); err == nil || !strings.Contains(err.Error(), "no message digest") {
		t.Errorf("without a message digest: %v", err)
	}
}
