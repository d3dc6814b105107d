package verify

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
)

func TestAligned(t *testing.T) {
	tests := []struct {
		signing, from string
		strict, relax bool
	}{
		{"example.com", "example.com", true, true},
		{"EXAMPLE.com", "example.COM", true, true},
		{"mail.example.com", "example.com", false, true},
		{"example.com", "eu.mail.example.com", false, true},
		{"example.net", "example.com", false, false},
		{"example.co.uk", "other.co.uk", false, false}, // public suffix co.uk
		{"evil-example.com", "example.com", false, false},
		{"com", "example.com", false, false},
	}
	for _, tt := range tests {
		strict := &Pipeline{opts: Options{Align: AlignStrict}}
		relaxed := &Pipeline{opts: Options{Align: AlignRelaxed}}
		if got := strict.aligned(tt.signing, tt.from); got != tt.strict {
			t.Errorf("strict aligned(%s, %s) = %v", tt.signing, tt.from, got)
		}
		if got := relaxed.aligned(tt.signing, tt.from); got != tt.relax {
			t.Errorf("relaxed aligned(%s, %s) = %v", tt.signing, tt.from, got)
		}
	}
}

// The DKIM key cap reads both encodings go-msgauth accepts, and leaves
// anything else to go-msgauth.
func TestCheckDKIMKeySize(t *testing.T) {
	modulus := func(bits int) *rsa.PublicKey {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return &rsa.PublicKey{N: n.SetBit(n, 0, 1), E: 65537}
	}
	pkix := func(pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(der)
	}
	pkcs1 := func(pub *rsa.PublicKey) string {
		return base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(pub))
	}
	edKey, _, _ := ed25519.GenerateKey(nil)
	big16k := pkix(modulus(16384))
	tests := []struct {
		name, record string
		refused      bool
	}{
		{"8,192 bits", "v=DKIM1; k=rsa; p=" + pkix(modulus(8192)), false},
		{"8,193 bits", "v=DKIM1; k=rsa; p=" + pkix(modulus(8193)), true},
		{"16,384 bits", "v=DKIM1; k=rsa; p=" + big16k, true},
		{"16,384 bits as RSAPublicKey", "v=DKIM1; p=" + pkcs1(modulus(16384)), true},
		{"16,384 bits, folded", "v=DKIM1;\r\n\tp = " + big16k[:100] + " \r\n " + big16k[100:] + " ;", true},
		{"ed25519", "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edKey), false},
		{"revoked", "v=DKIM1; p=", false},
		{"not base64", "v=DKIM1; p=!!!", false},
		{"no p=", "v=DKIM1; k=rsa", false},
	}
	for _, tt := range tests {
		err := checkDKIMKeySize(tt.record)
		if (err != nil) != tt.refused {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "exceeds the 8192-bit limit") {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
