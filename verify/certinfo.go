package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// oidEmailAddress is PKCS #9 emailAddress (RFC 2985 §5.2.1), which older
// S/MIME certificates put in the subject instead of the SAN.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// CertInfo is what the report and the logs say about a certificate.
type CertInfo struct {
	SHA256             string    `json:"sha256"`
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	Serial             string    `json:"serial"`
	Emails             []string  `json:"emails"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	Key                string    `json:"key"`
	SignatureAlgorithm string    `json:"signature_algorithm"`
}

// DescribeCertificate summarises c.
func DescribeCertificate(c *x509.Certificate) *CertInfo {
	sum := sha256.Sum256(c.Raw)
	emails := certAddresses(c)
	if emails == nil {
		emails = []string{}
	}
	return &CertInfo{
		SHA256:             hex.EncodeToString(sum[:]),
		Subject:            FormatName(c.Subject),
		Issuer:             FormatName(c.Issuer),
		Serial:             c.SerialNumber.Text(16),
		Emails:             emails,
		NotBefore:          c.NotBefore.UTC(),
		NotAfter:           c.NotAfter.UTC(),
		Key:                KeyDescription(c.PublicKey),
		SignatureAlgorithm: c.SignatureAlgorithm.String(),
	}
}

// KeyDescription names a public key's algorithm and size: RSA-2048,
// ECDSA-P256, Ed25519.
func KeyDescription(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + strings.ReplaceAll(k.Curve.Params().Name, "-", "")
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// logCertificate writes one certificate's story line, in the original
// service's shape.
func logCertificate(log *story, c *x509.Certificate, role string) {
	if !log.enabled() {
		return
	}
	args := []any{}
	if role != "" {
		args = append(args, "role", role)
	}
	log.Info(fmt.Sprintf("Certificate: subject email_address=%v,not_valid_before=%s,not_valid_after=%s,signature=%s,key=%s,issuer={%s}",
		certAddresses(c), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339),
		c.SignatureAlgorithm, KeyDescription(c.PublicKey), FormatName(c.Issuer)), args...)
}

// FormatName writes a distinguished name for people, most specific
// attribute first as RFC 4514 orders it, naming the attributes S/MIME
// certificates use (pkix.Name.String leaves emailAddress as an OID).
func FormatName(n pkix.Name) string {
	if len(n.Names) == 0 {
		return n.String()
	}
	parts := make([]string, 0, len(n.Names))
	for i := len(n.Names) - 1; i >= 0; i-- {
		atv := n.Names[i]
		parts = append(parts, attributeName(atv.Type)+"="+fmt.Sprint(atv.Value))
	}
	return strings.Join(parts, ",")
}

// attributeName returns the short name of a DN attribute type (RFC 4519).
func attributeName(oid asn1.ObjectIdentifier) string {
	switch oid.String() {
	case "2.5.4.3":
		return "CN"
	case "2.5.4.5":
		return "SERIALNUMBER"
	case "2.5.4.6":
		return "C"
	case "2.5.4.7":
		return "L"
	case "2.5.4.8":
		return "ST"
	case "2.5.4.10":
		return "O"
	case "2.5.4.11":
		return "OU"
	case "2.5.4.4":
		return "SN"
	case "2.5.4.42":
		return "GN"
	case "1.2.840.113549.1.9.1":
		return "emailAddress"
	}
	return oid.String()
}
