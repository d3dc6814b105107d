package publish

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/certharvest/certharvest/output"
)

// The attributes an entry names itself by (LDAPRDN), and the value each
// takes from the address.
const (
	LDAPRDNMail = "mail" // mail=bob@example.org: the address
	LDAPRDNUID  = "uid"  // uid=bob: the address's local part
	LDAPRDNCN   = "cn"   // cn=bob@example.org: the address
)

// The two attributes certharvest writes in a directory entry, and only
// those. userSMIMECertificate (RFC 2798 §2.4) is of the Binary syntax,
// which RFC 4517 no longer has: RFC 4522 §2 keeps the ;binary option for
// the certificate syntaxes alone, and OpenLDAP refuses it on this one (RFC
// 2798 predates both and asks for "userSMIMECertificate;binary"). The
// certificate syntax of userCertificate (RFC 4523 §2.1) is transferred only
// with ;binary.
const (
	attrSMIME = "userSMIMECertificate"
	attrCert  = "userCertificate;binary"
)

// ldifFormat writes LDIF change records (RFC 2849), one per address: by
// default a modify that replaces userSMIMECertificate (the certificate in a
// certs-only PKCS #7, which Outlook reads) and userCertificate;binary (the
// certificate, DER) of the existing entry of the address, and touches
// nothing else; loading it again changes nothing. With LDAPAdd, an add of
// the whole entry (inetOrgPerson), for a directory that has none yet.
type ldifFormat struct {
	base, rdn string
	add       bool
}

func newLDIF(opts Options) (ldifFormat, error) {
	f := ldifFormat{base: strings.TrimSpace(opts.LDAPBase), rdn: opts.LDAPRDN, add: opts.LDAPAdd}
	if f.rdn == "" {
		f.rdn = LDAPRDNMail
	}
	switch {
	case f.base == "":
		return f, errors.New("LDIF needs the base DN of the entries (--ldap-base), e.g. ou=people,dc=example,dc=org")
	case strings.ContainsAny(f.base, "\x00\r\n"):
		return f, fmt.Errorf("base DN %q: no line breaks", f.base)
	case f.rdn != LDAPRDNMail && f.rdn != LDAPRDNUID && f.rdn != LDAPRDNCN:
		return f, fmt.Errorf("RDN attribute %q: want mail, uid or cn", f.rdn)
	}
	return f, nil
}

func (ldifFormat) Ext() string { return "ldif" }

func (ldifFormat) AppendHeader(dst []byte) []byte { return append(dst, "version: 1\n\n"...) }

// DN returns the DN of addr's entry.
func (f ldifFormat) DN(addr string) string {
	value := addr
	if f.rdn == LDAPRDNUID {
		value, _, _ = strings.Cut(addr, "@")
	}
	return f.rdn + "=" + escapeDNValue(value) + "," + f.base
}

func (f ldifFormat) AppendRecord(dst []byte, c output.StoredCertificate) ([]byte, error) {
	// mail is an IA5String (RFC 4524 §2.16, RFC 4517 §3.3.15): ASCII.
	// An internationalised address cannot name an entry by it; with
	// uid or cn it can (Directory Strings, UTF-8), and --ldap-add leaves
	// its mail out.
	mailOK := isASCII(c.Address)
	if f.rdn == LDAPRDNMail && !mailOK {
		return dst, errors.New("internationalised: the LDAP mail attribute is ASCII (an IA5String, RFC 4524 §2.16); name such entries by uid or cn (--ldap-rdn)")
	}
	dst = appendLDIFValue(dst, "dn", f.DN(c.Address))
	smime := CertsOnly(c.Cert)
	if !f.add {
		dst = append(dst, "changetype: modify\n"...)
		dst = append(dst, "replace: "+attrSMIME+"\n"...)
		dst = appendLDIFBinary(dst, attrSMIME, smime)
		dst = append(dst, "-\nreplace: "+attrCert+"\n"...)
		dst = appendLDIFBinary(dst, attrCert, c.Cert.Raw)
		return append(dst, "-\n\n"...), nil
	}
	local, _, _ := strings.Cut(c.Address, "@")
	cn := c.Cert.Subject.CommonName
	if cn == "" || f.rdn == LDAPRDNCN {
		cn = c.Address
	}
	dst = append(dst, "changetype: add\nobjectClass: inetOrgPerson\n"...)
	dst = appendLDIFValue(dst, "cn", cn)
	dst = appendLDIFValue(dst, "sn", local)
	if mailOK {
		dst = appendLDIFValue(dst, "mail", c.Address)
	}
	if f.rdn == LDAPRDNUID {
		dst = appendLDIFValue(dst, "uid", local)
	}
	dst = appendLDIFBinary(dst, attrSMIME, smime)
	dst = appendLDIFBinary(dst, attrCert, c.Cert.Raw)
	return append(dst, '\n'), nil
}

// escapeDNValue escapes an attribute value for a DN string (RFC 4514
// §2.4): the special characters anywhere, a space or # first, a space
// last, and NUL as \00.
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == 0:
			b.WriteString(`\00`)
			continue
		case strings.IndexByte(`"+,;<>\`, c) >= 0,
			i == 0 && (c == ' ' || c == '#'),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ldifLineLength is the longest line written: RFC 2849 folds lines longer
// than 76 characters (note 2).
const ldifLineLength = 76

// appendLDIFValue appends "attr: value", or "attr:: base64" when value is
// not a SAFE-STRING (RFC 2849: ASCII without NUL, CR and LF, not starting
// with a space, colon or <) or ends with a space (note 8).
func appendLDIFValue(dst []byte, attr, value string) []byte {
	if !safeString(value) {
		return appendLDIFBinary(dst, attr, []byte(value))
	}
	return appendFolded(dst, attr+": "+value)
}

// appendLDIFBinary appends "attr:: " and data in base64, folded.
func appendLDIFBinary(dst []byte, attr string, data []byte) []byte {
	line := make([]byte, 0, len(attr)+3+base64.StdEncoding.EncodedLen(len(data)))
	line = append(line, attr...)
	line = append(line, ":: "...)
	line = base64.StdEncoding.AppendEncode(line, data)
	return appendFolded(dst, string(line))
}

// appendFolded appends line, folded (RFC 2849 note 2): at most
// ldifLineLength characters a line, each continuation starting with one
// space. LDIF is ASCII here (anything else is base64), so a fold never
// splits a character.
func appendFolded(dst []byte, line string) []byte {
	n := min(len(line), ldifLineLength)
	dst = append(dst, line[:n]...)
	for line = line[n:]; line != ""; line = line[n:] {
		n = min(len(line), ldifLineLength-1)
		dst = append(dst, "\n "...)
		dst = append(dst, line[:n]...)
	}
	return append(dst, '\n')
}

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func safeString(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == ':' || c == '<' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}
