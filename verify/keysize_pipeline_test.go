package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// keySizes are the RSA keys the size cap is tested with: the largest
// allowed, the 16,384 bits of the threat model, and a key whose
// verification alone would cost seconds (65,536 bits, the largest public
// exponent crypto/rsa takes).
var keySizes = []struct {
	name   string
	bits   int
	e      int
	capped bool
}{
	{"8,192 bits", 8192, 65537, false},
	{"16,384 bits", 16384, 65537, true},
	{"65,536 bits, e=2^31-1", 65536, 1<<31 - 1, true},
}

// An S/MIME signer whose RSA key is over 8,192 bits is refused before its
// signature is verified, through the whole pipeline. The keys are real and
// the signatures valid (see multiPrimeKey): without the cap the message
// would be accepted, as the 8,192-bit one is.
func TestPipelineSMIMEKeySizeCap(t *testing.T) {
	f := testFixture(t)
	for i, tt := range keySizes {
		t.Run(tt.name, func(t *testing.T) {
			key := newMultiPrimeKey(t, tt.bits, tt.e)
			addr := "big" + string(rune('a'+i)) + "@example.com"
			cert := mustCreate(t, &x509.Certificate{
				SerialNumber: big.NewInt(int64(1000 + i)), Subject: pkix.Name{CommonName: addr},
				EmailAddresses: []string{addr}, NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter,
				KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			}, f.Intermediate, key.Public(), f.IntermediateKey)
			raw := signedWith(t, f, addr, cert, key, []*x509.Certificate{f.Intermediate})
			p, store := newPipeline(t, f, nil)
			if !tt.capped {
				checkBounded(t, p, raw, verify.ReasonOK, 5*time.Second, 4<<20)
				return
			}
			res := checkBounded(t, p, raw, verify.ReasonSignatureInvalid, time.Second, 4<<20)
			if !strings.Contains(res.Detail, "exceeds the 8192-bit limit") {
				t.Errorf("detail does not name the cap: %s", res.Detail)
			}
			if len(store.certs) != 0 {
				t.Errorf("%d certificates stored", len(store.certs))
			}
		})
	}
}

// A DKIM key over 8,192 bits, which the signing domain publishes and so the
// sender chooses, fails the signature before it is verified. The keys are
// real and the signatures valid: without the cap the message would be
// accepted, as the 8,192-bit one is.
func TestPipelineDKIMKeySizeCap(t *testing.T) {
	f := testFixture(t)
	unsigned := stripDKIM(t, caseData(t, f, "ok-rsa-detached"))
	for _, tt := range keySizes {
		t.Run(tt.name, func(t *testing.T) {
			key := newMultiPrimeKey(t, tt.bits, tt.e)
			var signed bytes.Buffer
			if err := dkim.Sign(&signed, bytes.NewReader(unsigned), &dkim.SignOptions{
				Domain: "example.com", Selector: "big", Signer: key,
				HeaderKeys: testcorpus.DKIMHeaderKeys,
			}); err != nil {
				t.Fatal(err)
			}
			record := "v=DKIM1; k=rsa; p=" + b64(mustMarshalPKIX(t, key.Public()))
			p, store := newPipeline(t, f, func(o *verify.Options) {
				o.LookupTXT = func(ctx context.Context, name string) ([]string, error) {
					if name == "big._domainkey.example.com" {
						return []string{record}, nil
					}
					return lookupFrom(f)(ctx, name)
				}
			})
			if !tt.capped {
				checkBounded(t, p, signed.Bytes(), verify.ReasonOK, 5*time.Second, 4<<20)
				return
			}
			res := checkBounded(t, p, signed.Bytes(), verify.ReasonDKIMInvalid, time.Second, 4<<20)
			if !strings.Contains(res.Detail, "exceeds the 8192-bit limit") {
				t.Errorf("detail does not name the cap: %s", res.Detail)
			}
			if len(store.certs) != 0 {
				t.Errorf("%d certificates stored", len(store.certs))
			}
		})
	}
}

// caseData returns the message of the named corpus case.
func caseData(t testing.TB, f *testcorpus.Fixture, name string) []byte {
	t.Helper()
	for _, c := range f.Cases() {
		if c.Name == name {
			return c.Data
		}
	}
	t.Fatalf("no corpus case %s", name)
	return nil
}

// stripDKIM removes the DKIM-Signature field at the top of a message.
func stripDKIM(t testing.TB, msg []byte) []byte {
	t.Helper()
	unsigned := regexp.MustCompile(`(?s)^DKIM-Signature:.*?\r\n([^ \t])`).ReplaceAll(msg, []byte("$1"))
	if bytes.Contains(unsigned, []byte("DKIM-Signature")) {
		t.Fatal("could not strip the DKIM signature")
	}
	return unsigned
}

func mustMarshalPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
