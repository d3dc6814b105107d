package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The signature algorithms of sigalg.go, one SignerInfo at a time: each
// accepted one verifies on both CMS paths (the fast path deciding), each
// refused one gets the same reason and detail on both, in DER and in BER,
// detached and opaque.
func TestCMSSignatureAlgorithms(t *testing.T) {
	f := signingTimeFixture(t)
	issue := func(addr string, key crypto.Signer) *x509.Certificate {
		c, err := f.IssueLeaf(testcorpus.LeafSpec{Address: addr, SubjectEmail: true, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rsaCert := issue("rsa.alg@example.com", f.LeafKey)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	edCert, p384Cert, p521Cert := issue("ed.alg@example.com", f.Ed25519Key), issue("p384.alg@example.com", f.P384Key), issue("p521.alg@example.com", f.P521Key)
	p224Cert, weakCert := issue("p224.alg@example.com", p224), issue("rsa1024.alg@example.com", f.WeakRSAKey)

	// pss signs with RSASSA-PSS, hash and salt, whatever the parameters
	// state.
	pss := func(hash crypto.Hash, salt int) func([]byte) ([]byte, error) {
		return func(set []byte) ([]byte, error) {
			h := hash.New()
			h.Write(set)
			return f.LeafKey.Sign(rand.Reader, h.Sum(nil), &rsa.PSSOptions{Hash: hash, SaltLength: salt})
		}
	}
	edSign := func(set []byte) ([]byte, error) { return f.Ed25519Key.Sign(rand.Reader, set, crypto.Hash(0)) }
	params := testcorpus.PSSParams
	sha := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA1: oidSHA1, crypto.SHA256: oidSHA256, crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512}
	null := []byte{0x05, 0x00}
	type spec struct {
		name      string
		cert      *x509.Certificate
		key       crypto.Signer
		hash      crypto.Hash
		sigAlg    asn1.ObjectIdentifier
		sigParams []byte
		sign      func([]byte) ([]byte, error)
		want      Reason
		detail    string // in the refusal's detail
	}
	for _, tt := range []spec{
		{"PSS SHA-256, salt 32", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 32), pss(crypto.SHA256, 32), ReasonOK, ""},
		{"PSS SHA-256, salt 222 (OpenSSL's)", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 222), pss(crypto.SHA256, 222), ReasonOK, ""},
		{"PSS SHA-384, salt 48", rsaCert, nil, crypto.SHA384, oidRSASSAPSS, params(crypto.SHA384, crypto.SHA384, 48), pss(crypto.SHA384, 48), ReasonOK, ""},
		{"PSS SHA-512, salt 64", rsaCert, nil, crypto.SHA512, oidRSASSAPSS, params(crypto.SHA512, crypto.SHA512, 64), pss(crypto.SHA512, 64), ReasonOK, ""},
		{"PSS, hash identifiers without NULL", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, pssWithoutNULL(oidSHA256, 32), pss(crypto.SHA256, 32), ReasonOK, ""},
		{"PSS without parameters", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, nil, pss(crypto.SHA256, 32), ReasonSignatureInvalid, "without parameters"},
		{"PSS with the default parameters (SHA-1)", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, []byte{0x30, 0x00}, pss(crypto.SHA1, 20), ReasonSignatureInvalid, "SHA-1 as the RSASSA-PSS hash"},
		{"PSS SHA-1 digest", rsaCert, nil, crypto.SHA1, oidRSASSAPSS, params(crypto.SHA1, crypto.SHA1, 20), pss(crypto.SHA1, 20), ReasonSignatureInvalid, "SHA-1 as digest algorithm"},
		{"PSS hash other than the digest's", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA384, crypto.SHA384, 48), pss(crypto.SHA384, 48), ReasonSignatureInvalid, "differs from the digest algorithm"},
		{"PSS MGF1 with SHA-1", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA1, 32), pss(crypto.SHA256, 32), ReasonSignatureInvalid, "MGF1 hash"},
		{"PSS salt 20 with SHA-256", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 20), pss(crypto.SHA256, 20), ReasonSignatureInvalid, "salt of 20 bytes is weak"},
		{"PSS salt 0", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 0), pss(crypto.SHA256, 0), ReasonSignatureInvalid, "salt of 0 bytes is weak"},
		{"PSS stated salt 32, signed with 64", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 32), pss(crypto.SHA256, 64), ReasonSignatureInvalid, "verification error"},
		{"PSS trailer field 2", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, pssWithTrailer(params(crypto.SHA256, crypto.SHA256, 32), 2), pss(crypto.SHA256, 32), ReasonSignatureInvalid, "trailer field 2"},
		{"PSS parameters not a SEQUENCE", rsaCert, nil, crypto.SHA256, oidRSASSAPSS, null, pss(crypto.SHA256, 32), ReasonSignatureMalformed, "RSASSA-PSS parameters"},
		{"PSS by an ECDSA key", p384Cert, nil, crypto.SHA256, oidRSASSAPSS, params(crypto.SHA256, crypto.SHA256, 32), pss(crypto.SHA256, 32), ReasonSignatureInvalid, "ECDSA-P384 key"},
		{"Ed25519", edCert, nil, crypto.SHA512, oidEd25519, nil, edSign, ReasonOK, ""},
		{"Ed25519 with SHA-256", edCert, nil, crypto.SHA256, oidEd25519, nil, edSign, ReasonSignatureInvalid, "requires SHA-512"},
		{"Ed25519 with NULL parameters", edCert, nil, crypto.SHA512, oidEd25519, null, edSign, ReasonSignatureInvalid, "requires them absent"},
		{"Ed25519 by an RSA key", rsaCert, nil, crypto.SHA512, oidEd25519, nil, edSign, ReasonSignatureInvalid, "CMS signature by"},
		{"Ed25519 over the hash (not pure)", edCert, nil, crypto.SHA512, oidEd25519, nil, func(set []byte) ([]byte, error) {
			h := crypto.SHA512.New()
			h.Write(set)
			return ed25519.Sign(f.Ed25519Key, h.Sum(nil)), nil
		}, ReasonSignatureInvalid, "CMS signature by"},
		{"ECDSA P-384 SHA-384", p384Cert, f.P384Key, crypto.SHA384, oidECDSAWithSHA384, nil, nil, ReasonOK, ""},
		{"ECDSA P-384 SHA-256", p384Cert, f.P384Key, crypto.SHA256, oidECDSAWithSHA256, nil, nil, ReasonOK, ""},
		{"ECDSA P-521 SHA-512", p521Cert, f.P521Key, crypto.SHA512, oidECDSAWithSHA512, nil, nil, ReasonOK, ""},
		{"ECDSA P-224", p224Cert, p224, crypto.SHA256, oidECDSAWithSHA256, nil, nil, ReasonSignatureInvalid, "ECDSA key on P-224"},
		{"ECDSA SHA-1", p384Cert, f.P384Key, crypto.SHA1, oidECDSAWithSHA1, nil, nil, ReasonSignatureInvalid, "SHA-1 as digest algorithm"},
		{"ecdsa-with-SHA1 over SHA-256", p384Cert, f.P384Key, crypto.SHA256, oidECDSAWithSHA1, nil, nil, ReasonSignatureInvalid, "SHA-1 as signature algorithm"},
		{"RSA-1024", weakCert, f.WeakRSAKey, crypto.SHA256, oidSHA256WithRSA, nil, nil, ReasonSignatureInvalid, "RSA key of 1024 bits"},
		{"RSA PKCS #1 v1.5 SHA-512", rsaCert, f.LeafKey, crypto.SHA512, oidSHA512WithRSA, null, nil, ReasonOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content := []byte("Content-Type: text/plain\r\n\r\nsigned\r\n")
			for _, opaque := range []bool{false, true} {
				der := buildCMS(t, cmsSpec{signer: tt.cert, key: tt.key, bag: []*x509.Certificate{f.Intermediate},
					content: content, opaque: opaque, hash: tt.hash, digestAlg: sha[tt.hash], sigAlg: tt.sigAlg,
					sigParams: tt.sigParams, sign: tt.sign})
				ber, err := testcorpus.BERIndefinite(der, 7)
				if err != nil {
					t.Fatal(err)
				}
				for _, cms := range [][]byte{der, ber} {
					e := &signedEntity{cms: cms, content: content, opaque: opaque}
					if opaque {
						e.content = nil
					}
					_, fast := fastVerifyCMS(e, nil)
					_, slowErr := verifyCMSWithPKCS7(e, &story{mu: &sync.Mutex{}})
					_, err := verifyCMS(e, nil, &story{mu: &sync.Mutex{}})
					isDER := bytes.Equal(cms, der)
					switch {
					case ReasonOf(err) != tt.want || ReasonOf(slowErr) != tt.want:
						t.Errorf("opaque %v, DER %v: %v; pkcs7 path %v; want %s", opaque, isDER, err, slowErr, tt.want)
					case fast != (tt.want == ReasonOK && isDER):
						t.Errorf("opaque %v, DER %v: fast path accepts: %v", opaque, isDER, fast)
					case err != nil && (err.Error() != slowErr.Error() || !strings.Contains(err.Error(), tt.detail)):
						t.Errorf("opaque %v, DER %v: %v; pkcs7 path %v; want a detail with %q", opaque, isDER, err, slowErr, tt.detail)
					}
				}
			}
		})
	}
}

// pssWithoutNULL encodes RSASSA-PSS-params whose hash identifiers have
// absent parameters (RFC 4055 §2.1 prefers it; OpenSSL writes NULL).
func pssWithoutNULL(hash asn1.ObjectIdentifier, salt int64) []byte {
	var b cryptobyte.Builder
	algID := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(hash) })
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), algID)
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidMGF1)
				algID(b)
			})
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(salt) })
	})
	return b.BytesOrPanic()
}

// pssWithTrailer adds trailerField [3] INTEGER to DER RSASSA-PSS-params.
func pssWithTrailer(params []byte, trailer byte) []byte {
	body := append(bytes.Clone(params[2:]), 0xa3, 0x03, 0x02, 0x01, trailer)
	return tlv(cbasn1.SEQUENCE, body)
}

// No byte of a signer kind's SignerInfo, from its signed attributes to the
// end, can be changed without the fast path refusing it; nor can the
// content. The pkcs7 path refuses them too, except where its BER parser
// mends the change (a length made one shorter, as for every algorithm):
// then it reads the very SignerInfo that was signed.
func TestCMSSignerKindsRefuseAlterations(t *testing.T) {
	f := signingTimeFixture(t)
	for _, k := range f.SignerKinds() {
		t.Run(k.Name, func(t *testing.T) {
			var e *signedEntity
			for _, c := range f.Cases() {
				if c.Name == "ok-"+k.Name+"-detached" {
					m, err := parseMessage(c.Data, DefaultMaxSize, HeaderLimits{})
					if err != nil {
						t.Fatal(err)
					}
					if e, err = locateSignature(m, &story{mu: &sync.Mutex{}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if e == nil {
				t.Fatal("no detached case")
			}
			if _, ok := fastVerifyCMS(e, nil); !ok {
				t.Fatal("the fast path does not take the unaltered CMS")
			}
			sd, ok := parseSignedDataDER(e.cms, nil)
			if !ok || sd.signers[0].signedAttrs == nil {
				t.Fatal("no signed attributes")
			}
			start := bytes.Index(e.cms, sd.signers[0].signedAttrs)
			orig, err := parseCMS(e.cms)
			if err != nil {
				t.Fatal(err)
			}
			// Every byte for RSASSA-PSS and Ed25519; every 7th for
			// ECDSA, whose P-384 and P-521 verifications are dear
			// under the race detector (and whose code x509 owns).
			step := 1
			if strings.HasPrefix(k.Name, "ecdsa") {
				step = 7
			}
			for i := start; i < len(e.cms); i += step {
				cms := bytes.Clone(e.cms)
				cms[i] ^= 0x01
				alt := &signedEntity{cms: cms, content: e.content}
				if _, ok := fastVerifyCMS(alt, nil); ok {
					t.Fatalf("byte %d flipped: the fast path accepts", i)
				}
				if _, err := verifyCMSWithPKCS7(alt, &story{mu: &sync.Mutex{}}); err == nil {
					if p7, _ := parseCMS(cms); !reflect.DeepEqual(p7.Signers, orig.Signers) {
						t.Fatalf("byte %d flipped: the pkcs7 path accepts another SignerInfo", i)
					}
				}
			}
			for i := 0; i < len(e.content); i += 5 {
				content := bytes.Clone(e.content)
				content[i] ^= 0x20
				if _, err := verifyCMS(&signedEntity{cms: e.cms, content: content}, nil, &story{mu: &sync.Mutex{}}); err == nil {
					t.Fatalf("content byte %d altered: accepted", i)
				}
			}
		})
	}
}
