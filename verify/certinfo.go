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
	"strconv"
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
	// Profile and Lint are set once the certificate's chain and address
	// are verified (profile.go, docs/PROFILES.md): the S/MIME BR profile
	// it claims, and zlint's findings for it (none: clean, or not linted,
	// as with ProfileNone).
	Profile Profile                `json:"profile,omitempty"`
	Lint    map[string]LintFinding `json:"lint,omitempty"`
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
		return "RSA-" + strconv.Itoa(k.N.BitLen())
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
	if line := log.certificateLine(c); role != "" {
		log.Info(line, "role", role)
	} else {
		log.Info(line)
	}
}

// certificateLine is the message of logCertificate's line about c.
func certificateLine(c *x509.Certificate) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString("Certificate: subject email_address=[")
	for i, a := range certAddresses(c) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a)
	}
	var date [len(time.RFC3339) + 10]byte
	b.WriteString("],not_valid_before=")
	b.Write(c.NotBefore.UTC().AppendFormat(date[:0], time.RFC3339))
	b.WriteString(",not_valid_after=")
	b.Write(c.NotAfter.UTC().AppendFormat(date[:0], time.RFC3339))
	b.WriteString(",signature=")
	b.WriteString(c.SignatureAlgorithm.String())
	b.WriteString(",key=")
	b.WriteString(KeyDescription(c.PublicKey))
	b.WriteString(",issuer={")
	b.WriteString(FormatName(c.Issuer))
	b.WriteString("}")
	return b.String()
}

// FormatName writes a distinguished name for people, most specific
// attribute first as RFC 4514 orders it, naming the attributes S/MIME
// certificates use (pkix.Name.String leaves emailAddress as an OID).
func FormatName(n pkix.Name) string {
	if len(n.Names) == 0 {
		return n.String()
	}
	var b strings.Builder
	b.Grow(64)
	for i := len(n.Names) - 1; i >= 0; i-- {
		atv := n.Names[i]
		if i < len(n.Names)-1 {
			b.WriteByte(',')
		}
		b.WriteString(attributeName(atv.Type))
		b.WriteByte('=')
		if s, ok := atv.Value.(string); ok {
			b.WriteString(s)
		} else {
			b.WriteString(fmt.Sprint(atv.Value))
		}
	}
	return b.String()
}

// attributeNames are the short names of DN attribute types (RFC 4519), and
// of PKCS #9 emailAddress (RFC 2985).
var attributeNames = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{2, 5, 4, 3}, "CN"},
	{asn1.ObjectIdentifier{2, 5, 4, 5}, "SERIALNUMBER"},
	{asn1.ObjectIdentifier{2, 5, 4, 6}, "C"},
	{asn1.ObjectIdentifier{2, 5, 4, 7}, "L"},
	{asn1.ObjectIdentifier{2, 5, 4, 8}, "ST"},
	{asn1.ObjectIdentifier{2, 5, 4, 10}, "O"},
	{asn1.ObjectIdentifier{2, 5, 4, 11}, "OU"},
	{asn1.ObjectIdentifier{2, 5, 4, 4}, "SN"},
	{asn1.ObjectIdentifier{2, 5, 4, 42}, "GN"},
	{oidEmailAddress, "emailAddress"},
}

// attributeName returns the short name of a DN attribute type, or its
// dotted form.
func attributeName(oid asn1.ObjectIdentifier) string {
	for _, a := range attributeNames {
		if oid.Equal(a.oid) {
			return a.name
		}
	}
	return oid.String()
}
