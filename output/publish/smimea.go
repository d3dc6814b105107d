package publish

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"github.com/certharvest/certharvest/output"
)

// SMIMEAParams are the first three fields of an SMIMEA record's data (RFC
// 8162 §2, which takes them from TLSA: RFC 6698 §2.1.1 to §2.1.3). Their
// mnemonics are RFC 7218's.
type SMIMEAParams struct {
	// Usage is 3 (DANE-EE: the certificate is the recipient's, whoever
	// issued it) or 1 (PKIX-EE: it is, and it must also chain to a CA the
	// sender trusts). 0 and 2 name a CA's certificate, which certharvest
	// does not store.
	Usage uint8
	// Selector is 0 (the whole certificate) or 1 (its
	// SubjectPublicKeyInfo).
	Selector uint8
	// MatchingType is 0 (Full: the selected bytes themselves), 1 (SHA-256
	// of them) or 2 (SHA-512).
	MatchingType uint8
}

// The default SMIMEA fields, 3 0 0: the recipient's own certificate, whole
// and as it is. A sender who does not have the certificate, which is why
// certharvest publishes it, finds it in the record and can encrypt to it
// (the SMIMEA-aware MTAs that encrypt, such as sys4's smilla, want 3 0 0);
// a digest (matching type 1 or 2) only confirms a certificate the sender
// already has, though its record is smaller.
const (
	DefaultSMIMEAUsage        = 3
	DefaultSMIMEASelector     = 0
	DefaultSMIMEAMatchingType = 0
)

// DefaultSMIMEA returns the default SMIMEA fields.
func DefaultSMIMEA() SMIMEAParams {
	return SMIMEAParams{DefaultSMIMEAUsage, DefaultSMIMEASelector, DefaultSMIMEAMatchingType}
}

func (p SMIMEAParams) check() error {
	switch {
	case p.Usage != 1 && p.Usage != 3:
		return fmt.Errorf("SMIMEA usage %d: want 3 (DANE-EE) or 1 (PKIX-EE); 0 and 2 name a CA's certificate, which is not stored", p.Usage)
	case p.Selector > 1:
		return fmt.Errorf("SMIMEA selector %d: want 0 (whole certificate) or 1 (SubjectPublicKeyInfo)", p.Selector)
	case p.MatchingType > 2:
		return fmt.Errorf("SMIMEA matching type %d: want 0 (full), 1 (SHA-256) or 2 (SHA-512)", p.MatchingType)
	}
	return nil
}

// AssociationData returns the certificate association data of c's record
// (RFC 6698 §2.1.4): the selected part of c, or its digest.
func (p SMIMEAParams) AssociationData(c *x509.Certificate) []byte {
	data := c.Raw
	if p.Selector == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch p.MatchingType {
	case 1:
		sum := sha256.Sum256(data)
		return sum[:]
	case 2:
		sum := sha512.Sum512(data)
		return sum[:]
	}
	return data
}

// SMIMEAName returns the owner name of the SMIMEA records of addr, fully
// qualified (RFC 8162 §3): the SHA-256 digest of the local part, as the
// octets it is written with (UTF-8, as RFC 6530 writes an internationalised
// one), without any change of case or normalisation, cut to its first 28
// octets and written in hex; then the label _smimecert; then the domain,
// written as DNS has it (A-labels, RFC 5890, for an internationalised one).
// For hugh@example.com:
// c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com.
func SMIMEAName(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("address %q: want local-part@domain", addr)
	}
	domain, err := idna.Lookup.ToASCII(addr[at+1:])
	if err != nil {
		return "", fmt.Errorf("address %q: domain: %w", addr, err)
	}
	sum := sha256.Sum256([]byte(addr[:at]))
	return hex.EncodeToString(sum[:28]) + "._smimecert." + strings.TrimSuffix(domain, ".") + ".", nil
}

// smimeaFormat writes one SMIMEA record per address, in the zone file's
// presentation format (RFC 1035 §5.1, RFC 6698 §2.2), after a comment line
// with the address: the lines a zone includes ($INCLUDE) or nsupdate adds
// ("update add" before each). The owner name is absolute and the TTL is
// left out (the zone's $TTL applies; nsupdate's "ttl" command sets it).
type smimeaFormat struct{ p SMIMEAParams }

func (smimeaFormat) Ext() string                    { return "zone" }
func (smimeaFormat) AppendHeader(dst []byte) []byte { return dst }

func (f smimeaFormat) AppendRecord(dst []byte, c output.StoredCertificate) ([]byte, error) {
	name, err := SMIMEAName(c.Address)
	if err != nil {
		return dst, err
	}
	dst = append(dst, "; "...)
	dst = append(dst, c.Address...)
	dst = append(dst, '\n')
	dst = append(dst, name...)
	dst = append(dst, " IN SMIMEA "...)
	dst = strconv.AppendUint(dst, uint64(f.p.Usage), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(f.p.Selector), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(f.p.MatchingType), 10)
	dst = append(dst, ' ')
	dst = hex.AppendEncode(dst, f.p.AssociationData(c.Cert))
	return append(dst, '\n'), nil
}
