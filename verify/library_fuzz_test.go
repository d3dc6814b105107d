package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// FuzzCMSLibrary is the differential test of certharvest's CMS
// verification (verifyCMS: the fast path, else the pkcs7 path, both
// checking each SignerInfo with derSignerInfo.check) against
// github.com/smallstep/pkcs7's own (Parse, then Verify), on what both
// support: RSA PKCS #1 v1.5 and ECDSA with SHA-256, SHA-384 or SHA-512
// (RSASSA-PSS and Ed25519 the library does not verify). Whatever the
// bytes, when libraryVerdict decides, certharvest accepts exactly when the
// library does. Its seeds, the sample's signatures and the OpenSSL
// vectors' (testdata/openssl), run in every go test.
func FuzzCMSLibrary(f *testing.F) {
	for _, e := range loadFuzzSample(f).signatures() {
		f.Add(e.cms, e.content, e.opaque)
	}
	for _, e := range opensslSignatures(f) {
		f.Add(e.cms, e.content, e.opaque)
	}
	f.Fuzz(func(t *testing.T, der, content []byte, opaque bool) {
		e := &signedEntity{cms: der, content: content, opaque: opaque}
		if opaque {
			e.content = nil
		}
		libOK, why := libraryVerdict(e)
		if why != "" {
			return
		}
		_, err := verifyCMS(e, nil, &story{mu: &sync.Mutex{}})
		if (err == nil) != libOK {
			t.Fatalf("certharvest: %v; pkcs7's Verify accepts: %v", err, libOK)
		}
	})
}

// opensslSignatures returns the signatures of the OpenSSL vectors
// (testdata/openssl), as the locate stage finds them.
func opensslSignatures(f testing.TB) []*signedEntity {
	files, err := filepath.Glob(filepath.Join(opensslDir, "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no OpenSSL vectors in %s", opensslDir)
	}
	var out []*signedEntity
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		m, err := parseMessage(raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		e, err := locateSignature(m, &story{mu: &sync.Mutex{}})
		if err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		out = append(out, e)
	}
	return out
}

// libraryVerdict verifies e's CMS with the library alone: pkcs7.Parse,
// then Verify, which checks every SignerInfo's message digest and
// signature, and its signingTime against the signer's validity. why is not
// empty when the two cannot be compared, and says why:
//
//   - the library cannot parse the CMS (certharvest's fast path may still
//     take it: FuzzCMSFastPath compares the two paths);
//   - an algorithm that is not in both: RSASSA-PSS or Ed25519 (the
//     library does not know them), SHA-1 (certharvest refuses it), a
//     signature algorithm whose hash is not the digest's (the library
//     takes the digest's, certharvest refuses), a key that certharvest
//     refuses as weak or too large;
//   - what certharvest checks and the library does not: more than
//     maxCMSCertificates certificates, a detached signature encapsulating
//     other content, an opaque one encapsulating none, a message digest or
//     signing time attribute that is not exactly one well-formed value
//     (the library reads the first value of the first attribute and skips
//     a signing time it cannot read);
//   - what the library checks and certharvest does not: a signingTime
//     outside the signer certificate's validity (the chain judges
//     validity, at the verification time).
func libraryVerdict(e *signedEntity) (ok bool, why string) {
	if checkCMSCertificateCount(e.cms) != nil {
		return false, "too many certificates"
	}
	p7, err := parseCMS(e.cms)
	if err != nil {
		return false, "the library does not parse it"
	}
	if len(p7.Signers) == 0 || len(p7.Certificates) > maxCMSCertificates {
		return false, "no signer, or too many certificates"
	}
	switch {
	case e.opaque && len(p7.Content) == 0:
		return false, "opaque without content"
	case !e.opaque && len(p7.Content) != 0 && string(p7.Content) != string(e.content):
		return false, "detached with other content"
	case !e.opaque:
		p7.Content = e.content
	}
	for _, si := range p7.Signers {
		if why := comparableSigner(p7, si.DigestAlgorithm.Algorithm, si.DigestEncryptionAlgorithm.Algorithm,
			si.IssuerAndSerialNumber.IssuerName.FullBytes, si.IssuerAndSerialNumber.SerialNumber); why != "" {
			return false, why
		}
		if len(si.AuthenticatedAttributes) == 0 {
			continue
		}
		digests, times := 0, 0
		for _, a := range si.AuthenticatedAttributes {
			var rest []byte
			switch {
			case a.Type.Equal(oidAttrMessageDigest):
				digests++
				var d []byte
				rest, err = asn1.Unmarshal(a.Value.Bytes, &d)
				if err != nil || len(d) == 0 || len(rest) != 0 {
					return false, "message digest not one value"
				}
			case a.Type.Equal(oidAttrSigningTime):
				times++
				var v asn1.RawValue
				var st time.Time
				rest, err = asn1.Unmarshal(a.Value.Bytes, &v)
				if err != nil || len(rest) != 0 || v.Class != asn1.ClassUniversal ||
					(v.Tag != asn1.TagUTCTime && v.Tag != asn1.TagGeneralizedTime) {
					return false, "signing time not one Time"
				}
				if _, err := asn1.Unmarshal(v.FullBytes, &st); err != nil || readSigningTime([]byte(v.FullBytes)) != nil {
					return false, "signing time read differently"
				}
			}
		}
		if digests != 1 || times > 1 {
			return false, "not one message digest and at most one signing time"
		}
	}
	err = libraryVerify(p7)
	var late *pkcs7.SigningTimeNotValidError
	if errors.As(err, &late) {
		return false, "signing time outside the signer's validity"
	}
	return err == nil, ""
}

// comparableSigner says why a SignerInfo is not one both verify ("" when
// it is).
func comparableSigner(p7 *pkcs7.PKCS7, digestAlg, sigAlg asn1.ObjectIdentifier, issuer []byte, serial *big.Int) string {
	hash, ok := hashFor(digestAlg)
	if !ok {
		return "digest algorithm not in both"
	}
	if sigAlg.Equal(oidRSASSAPSS) || sigAlg.Equal(oidEd25519) {
		return "signature algorithm the library does not know"
	}
	if _, ok := signatureAlgorithmFor(sigAlg, hash); !ok {
		return "signature algorithm not in both"
	}
	if serial == nil {
		return "no serial number"
	}
	for _, c := range p7.Certificates {
		if string(c.RawIssuer) != string(issuer) || c.SerialNumber.Cmp(serial) != 0 {
			continue
		}
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
				return "an RSA key certharvest refuses"
			}
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
				return "a curve certharvest refuses"
			}
		}
	}
	return ""
}

// libraryVerify is p7.Verify, a panic being a refusal.
func libraryVerify(p7 *pkcs7.PKCS7) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pkcs7's Verify panicked: %v", r)
		}
	}()
	return p7.Verify()
}

// The seeds of FuzzCMSLibrary put the comparison to work: the library and
// certharvest decide on the OpenSSL vectors of RSA PKCS #1 v1.5 and
// ECDSA, accepted or altered, and on the sample's; RSASSA-PSS is left out
// for the library's want of it, SHA-1 and RSA-1024 for certharvest's
// refusal.
func TestCMSLibraryVerdicts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(opensslDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	decided := 0
	for i, e := range opensslSignatures(t) {
		name := strings.TrimSuffix(filepath.Base(files[i]), ".eml")
		libOK, why := libraryVerdict(e)
		_, err := verifyCMS(e, nil, &story{mu: &sync.Mutex{}})
		switch {
		case strings.Contains(name, "rsa-pss") && !strings.HasPrefix(name, "weak-"):
			if why != "signature algorithm the library does not know" {
				t.Errorf("%s: %q, want the library not to know PSS", name, why)
			}
		case strings.HasPrefix(name, "weak-") && !strings.HasSuffix(name, "-cert"):
			// SHA-1, RSA-1024, a short PSS salt (the chain's
			// weaknesses, *-cert, are no concern of the CMS).
			if why == "" {
				t.Errorf("%s: compared, though certharvest refuses it by policy", name)
			}
		default:
			if why != "" {
				t.Errorf("%s: not compared: %s", name, why)
				continue
			}
			decided++
			// Neither verifies with an id-RSASSA-PSS key (pss-key).
			if want := !strings.HasPrefix(name, "tampered-") && name != "pss-key"; libOK != want || (err == nil) != want {
				t.Errorf("%s: library %v, certharvest %v; want %v", name, libOK, err, want)
			}
		}
	}
	for _, e := range loadFuzzSample(t).signatures() {
		if _, why := libraryVerdict(e); why == "" {
			decided++
		}
	}
	if decided < 20 {
		t.Errorf("%d seeds compared, want at least 20", decided)
	}
}
