package verify

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// attrs encodes a [0] IMPLICIT SET OF Attribute of (type, value) pairs,
// each value the one element of its SET.
func attrs(pairs ...any) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		for i := 0; i < len(pairs); i += 2 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(pairs[i].(asn1.ObjectIdentifier))
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(pairs[i+1].([]byte)) })
			})
		}
	})
	return b.BytesOrPanic()
}

func capabilitiesValue(oids ...asn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, oid := range oids {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				if oid.Equal(oidRC2CBC) {
					b.AddASN1Int64(128)
				}
			})
		}
	})
	return b.BytesOrPanic()
}

func TestReadSMIMEAttributes(t *testing.T) {
	issuer, _ := asn1.Marshal(struct{ CN string }{"issuer"})
	var ias cryptobyte.Builder
	ias.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddBytes(issuer)
		b.AddASN1BigInt(big.NewInt(42))
	})
	byIAS := ias.BytesOrPanic()
	var ski cryptobyte.Builder
	ski.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte{1, 2, 3}) })
	bySKI := ski.BytesOrPanic()
	var rkid cryptobyte.Builder
	rkid.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1OctetString([]byte{4, 5})
	})
	byRKID := rkid.BytesOrPanic()
	aesGCM := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	unknown := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}

	got := readSMIMEAttributes(attrs(oidAttrSMIMECapabilities, capabilitiesValue(aesGCM, oidRC2CBC, unknown), oidAttrEncryptionKeyPref, byIAS))
	if !slices.Equal(got.capabilities, []string{"AES-256-GCM", "RC2-CBC-128", "1.3.6.1.4.1.99999.7"}) || len(got.problems) != 0 {
		t.Errorf("capabilities %q, problems %q", got.capabilities, got.problems)
	}
	if got.pref == nil || !got.pref.names(issuer, big.NewInt(42), nil) || got.pref.names(issuer, big.NewInt(43), nil) {
		t.Errorf("issuerAndSerialNumber preference: %+v", got.pref)
	}
	if p := readSMIMEAttributes(attrs(oidAttrEncryptionKeyPref, bySKI)).pref; p == nil || !p.names(nil, big.NewInt(1), []byte{1, 2, 3}) || p.names(nil, nil, nil) {
		t.Errorf("subjectAltKeyIdentifier preference: %+v", p)
	}
	if p := readSMIMEAttributes(attrs(oidAttrEncryptionKeyPref, byRKID)).pref; p == nil || !p.names(nil, big.NewInt(1), []byte{4, 5}) {
		t.Errorf("rKeyId preference: %+v", p)
	}

	// What is ignored, with a problem for the story.
	for _, tt := range []struct {
		name string
		raw  []byte
	}{
		{"two preference attributes", attrs(oidAttrEncryptionKeyPref, bySKI, oidAttrEncryptionKeyPref, byIAS)},
		{"two values", attrs(oidAttrEncryptionKeyPref, append(slices.Clone(bySKI), bySKI...))},
		{"an unknown choice", attrs(oidAttrEncryptionKeyPref, []byte{0x83, 1, 0})},
		{"an empty key identifier", attrs(oidAttrEncryptionKeyPref, []byte{0x82, 0})},
		{"a truncated issuerAndSerialNumber", attrs(oidAttrEncryptionKeyPref, byIAS[:len(byIAS)-1])},
	} {
		got := readSMIMEAttributes(tt.raw)
		if got.pref != nil || len(got.problems) == 0 {
			t.Errorf("%s: preference %+v, problems %q", tt.name, got.pref, got.problems)
		}
	}
	if got := readSMIMEAttributes(attrs(oidAttrSMIMECapabilities, []byte{0x30, 3, 0x02, 1, 0})); got.capabilities != nil || len(got.problems) == 0 {
		t.Errorf("malformed capabilities: %q, %q", got.capabilities, got.problems)
	}
	if got := readSMIMEAttributes(attrs(oidAttrSMIMECapabilities, capabilitiesValue(aesGCM), oidAttrSMIMECapabilities, capabilitiesValue(aesGCM))); got.capabilities != nil {
		t.Errorf("two capabilities attributes: %q", got.capabilities)
	}
	if got := readSMIMEAttributes(nil); got.pref != nil || got.capabilities != nil {
		t.Error("no attributes read as some")
	}
}

// A hostile sender's attributes are bounded: thousands of capabilities
// give MaxCapabilities, an OID too long to record is left out, and
// attributes past maxSMIMEAttributes are not looked at.
func TestReadSMIMEAttributesBounded(t *testing.T) {
	many := make([]asn1.ObjectIdentifier, 5000)
	for i := range many {
		many[i] = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, i}
	}
	long := asn1.ObjectIdentifier{1, 3}
	for len(long.String()) <= maxCapabilityName {
		long = append(long, 1234567)
	}
	got := readSMIMEAttributes(attrs(oidAttrSMIMECapabilities, capabilitiesValue(append([]asn1.ObjectIdentifier{long}, many...)...)))
	if len(got.capabilities) != MaxCapabilities || got.capabilities[0] != "1.3.6.1.4.1.99999.0" {
		t.Errorf("%d capabilities, first %q", len(got.capabilities), got.capabilities[:1])
	}
	var pairs []any
	for range maxSMIMEAttributes {
		pairs = append(pairs, asn1.ObjectIdentifier{1, 2, 3}, []byte{5, 0})
	}
	pairs = append(pairs, oidAttrSMIMECapabilities, capabilitiesValue(many[0]))
	if got := readSMIMEAttributes(attrs(pairs...)); got.capabilities != nil {
		t.Errorf("an attribute past the first %d was read: %q", maxSMIMEAttributes, got.capabilities)
	}
}

// Which keys an application can encrypt to, by key usage (RFC 8550
// §4.4.2).
func TestAllowsEncryption(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	kuExt := []pkix.Extension{{Id: oidExtKeyUsage}}
	for _, tt := range []struct {
		name string
		c    *x509.Certificate
		want bool
	}{
		{"RSA keyEncipherment", &x509.Certificate{PublicKey: &rsaKey.PublicKey, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, true},
		{"RSA digitalSignature only", &x509.Certificate{PublicKey: &rsaKey.PublicKey, KeyUsage: x509.KeyUsageDigitalSignature}, false},
		{"RSA keyAgreement", &x509.Certificate{PublicKey: &rsaKey.PublicKey, KeyUsage: x509.KeyUsageKeyAgreement}, false},
		{"RSA without the extension", &x509.Certificate{PublicKey: &rsaKey.PublicKey}, true},
		{"RSA with an empty extension", &x509.Certificate{PublicKey: &rsaKey.PublicKey, Extensions: kuExt}, false},
		{"EC keyAgreement", &x509.Certificate{PublicKey: &ecKey.PublicKey, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement}, true},
		{"EC keyEncipherment", &x509.Certificate{PublicKey: &ecKey.PublicKey, KeyUsage: x509.KeyUsageKeyEncipherment}, false},
		{"EC digitalSignature only", &x509.Certificate{PublicKey: &ecKey.PublicKey, KeyUsage: x509.KeyUsageDigitalSignature}, false},
		{"EC without the extension", &x509.Certificate{PublicKey: &ecKey.PublicKey}, true},
		{"X25519 keyAgreement", &x509.Certificate{PublicKey: x25519.PublicKey(), KeyUsage: x509.KeyUsageKeyAgreement}, true},
		{"Ed25519, whatever it says", &x509.Certificate{PublicKey: edPub, KeyUsage: x509.KeyUsageKeyAgreement | x509.KeyUsageKeyEncipherment}, false},
		{"Ed25519 without the extension", &x509.Certificate{PublicKey: edPub}, false},
	} {
		if got := allowsEncryption(tt.c); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := KeyUsageNames(x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement); got != "digitalSignature, keyAgreement" {
		t.Errorf("KeyUsageNames = %q", got)
	}
	if !strings.Contains(capabilityName(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}), "OAEP") {
		t.Error("RSAES-OAEP is not named")
	}
}
