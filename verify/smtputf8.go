package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// A certificate names an internationalised address in its SubjectAltName as
// an otherName of type SmtpUTF8Mailbox (RFC 9598 §3), a UTF8String: the
// local part holds a non-ASCII character (an ASCII one goes in an
// rfc822Name), the domain is in A-labels, lower case. crypto/x509 parses
// neither the name nor its name constraints, so this file does both.

var (
	// oidSmtpUTF8Mailbox is id-on-SmtpUTF8Mailbox (RFC 9598 §3, Appendix
	// A): id-pkix 8 9.
	oidSmtpUTF8Mailbox = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 9}
	// oidSubjectAltName is id-ce-subjectAltName (RFC 5280 §4.2.1.6).
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// smtpUTF8Mailboxes returns the SmtpUTF8Mailbox names of c's
// SubjectAltName, leaving out any that is not valid UTF-8 or holds a
// character that is not graphic (a control, a bidirectional override): such
// a name matches no From (which cannot hold one), and is not written to a
// log.
func smtpUTF8Mailboxes(c *x509.Certificate) []string {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			return parseSmtpUTF8Mailboxes(ext.Value)
		}
	}
	return nil
}

// parseSmtpUTF8Mailboxes reads the SmtpUTF8Mailbox names of a DER
// GeneralNames (RFC 5280 §4.2.1.6):
//
//	GeneralName ::= CHOICE { otherName [0] OtherName, ... }
//	OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER,
//	                         value [0] EXPLICIT ANY DEFINED BY type-id }
//	SmtpUTF8Mailbox ::= UTF8String (SIZE (1..MAX))
func parseSmtpUTF8Mailboxes(der []byte) []string {
	in := cryptobyte.String(der)
	var names cryptobyte.String
	if !in.ReadASN1(&names, cbasn1.SEQUENCE) {
		return nil
	}
	otherName := cbasn1.Tag(0).ContextSpecific().Constructed()
	var out []string
	for !names.Empty() {
		var name cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&name, &tag) {
			return out
		}
		if tag != otherName {
			continue
		}
		var oid asn1.ObjectIdentifier
		var value, box cryptobyte.String
		if !name.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSmtpUTF8Mailbox) ||
			!name.ReadASN1(&value, otherName) || !value.ReadASN1(&box, cbasn1.UTF8String) {
			continue
		}
		if s := string(box); s != "" && printable(s) {
			out = append(out, s)
		}
	}
	return out
}

// printable reports whether s is valid UTF-8 of graphic characters only.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// smtpUTF8Matches reports whether a SmtpUTF8Mailbox name is from, a
// normalised address whose local part is not ASCII. RFC 9598 §5: the local
// parts octet for octet, neither case-folded nor normalised; the domains as
// LDH labels (A-labels), ignoring the case of their ASCII letters. A name
// whose domain has a U-label (RFC 8398's form, which RFC 9598 §3 no longer
// allows) does not match.
func smtpUTF8Matches(box, from string) bool {
	i, j := strings.LastIndexByte(box, '@'), strings.LastIndexByte(from, '@')
	if i < 0 || j < 0 || box[:i] != from[:j] {
		return false
	}
	domain := box[i+1:]
	return isASCII(domain) && asciiEqualFold(domain, from[j+1:])
}

// asciiEqualFold reports whether a and b are equal once ASCII letters are
// lower-cased (and only those).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// checkSmtpUTF8Constraints applies the email name constraints of the
// chain's CAs to the signer's SmtpUTF8Mailbox names, as RFC 9598 §6 extends
// RFC 5280 §4.2.1.10 to them; crypto/x509, which applies them to the
// rfc822Names, leaves otherNames alone. A CA constrained to its own domains
// would otherwise vouch for an address of any domain. chain is the
// verified chain, signer first.
//
// The domain of the name, lower case, is compared with each constraint's:
// ".example.com" takes the domains under example.com, "example.com" that
// domain itself. A constraint that names a mailbox (local@host, which
// RFC 9598 §6 deprecates) never permits a SmtpUTF8Mailbox, whose local
// part is never its ASCII one; excluded, its host is excluded, the safe
// side.
func checkSmtpUTF8Constraints(chain []*x509.Certificate) error {
	constrained := false
	for _, ca := range chain[1:] {
		constrained = constrained || len(ca.PermittedEmailAddresses) > 0 || len(ca.ExcludedEmailAddresses) > 0
	}
	if !constrained {
		return nil
	}
	for _, box := range smtpUTF8Mailboxes(chain[0]) {
		domain := strings.ToLower(box[strings.LastIndexByte(box, '@')+1:])
		for _, ca := range chain[1:] {
			permitted := len(ca.PermittedEmailAddresses) == 0
			for _, c := range ca.PermittedEmailAddresses {
				permitted = permitted || emailConstraintMatches(c, domain, false)
			}
			if !permitted {
				return fail(ReasonCertUntrusted, "%q: its address %s is outside the names %q may certify (RFC 9598 §6)",
					certName(chain[0]), box, certName(ca))
			}
			for _, c := range ca.ExcludedEmailAddresses {
				if emailConstraintMatches(c, domain, true) {
					return fail(ReasonCertUntrusted, "%q: its address %s is among the names %q excludes (RFC 9598 §6)",
						certName(chain[0]), box, certName(ca))
				}
			}
		}
	}
	return nil
}

// emailConstraintMatches reports whether an rfc822Name constraint takes
// domain, the domain of a SmtpUTF8Mailbox (see checkSmtpUTF8Constraints).
func emailConstraintMatches(constraint, domain string, excluded bool) bool {
	c := strings.ToLower(constraint)
	if at := strings.LastIndexByte(c, '@'); at >= 0 {
		if !excluded {
			return false
		}
		c = c[at+1:]
	}
	if strings.HasPrefix(c, ".") {
		return strings.HasSuffix(domain, c)
	}
	return domain == c
}
