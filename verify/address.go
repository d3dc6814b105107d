package verify

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Internationalised addresses (RFC 6530): a From header field may carry
// UTF-8 (RFC 6532 §3.2), in the local part and in the domain, as the mail of
// an SMTPUTF8 session does (RFC 6531). NormalizeAddress turns such an
// address into the one form certharvest stores and compares:
//
//   - the domain in A-labels, lower case (RFC 5890 §2.3.2.1): the form DNS,
//     DKIM's d= and a certificate's SmtpUTF8Mailbox (RFC 9598 §3) carry,
//     so that bücher.example and xn--bcher-kva.example are one address;
//   - the local part as it was written, byte for byte: RFC 9598 §5 compares
//     it octet for octet, without case folding or normalisation, so none is
//     applied; a local part that is not already in Normalization Form C is
//     refused rather than normalised (RFC 9598 §7: a mail system and a CA
//     that encoded one name two ways must not be made to agree), so that
//     the octet comparison is also the comparison "after NFC";
//   - an ASCII local part (with a non-ASCII domain) is lower-cased, as every
//     ASCII address is.
//
// A non-ASCII local part must be something a person could be told apart
// by, not a way to forge one: letters, marks and digits only (no space,
// symbol, punctuation, control or format character: no bidirectional
// override, no zero-width joiner), in the form the PRECIS
// UsernameCasePreserved profile leaves unchanged (RFC 8265 §3.3: no
// full-width or compatibility character, the Bidi Rule of RFC 5893), the
// ASCII in it the dot-atom's, and of one script, as Unicode's "highly
// restrictive" level has it (UTS #39 §5.2; the ASCII letters count as
// Latin), so that a Cyrillic а among Latin letters is refused.

// maxRawDomain bounds the octets of a domain before it is converted: its
// A-label form is at most maxDomain octets, and a UTF-8 character is at most
// 4 octets, each becoming at least one octet of its A-label.
const maxRawDomain = 4 * maxDomain

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// normalizeIntl is NormalizeAddress for an address that has a non-ASCII
// byte, split at its one @.
func normalizeIntl(addr, local, domain string) (string, error) {
	if !utf8.ValidString(addr) {
		return "", fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidAddress, truncate(addr, 100))
	}
	if len(local) > maxLocalPart {
		return "", fmt.Errorf("%w %q: local part: %d octets, the limit is %d", ErrInvalidAddress, truncate(addr, 100), len(local), maxLocalPart)
	}
	if len(domain) > maxRawDomain {
		return "", fmt.Errorf("%w %q: domain: %d octets, longer than a domain can be", ErrInvalidAddress, truncate(addr, 100), len(domain))
	}
	if isASCII(local) {
		if err := checkDotAtom(local); err != nil {
			return "", fmt.Errorf("%w %q: local part: %v", ErrInvalidAddress, addr, err)
		}
		local = strings.ToLower(local)
	} else if err := checkUTF8LocalPart(local); err != nil {
		return "", fmt.Errorf("%w %q: local part: %v", ErrInvalidAddress, addr, err)
	}
	a, err := domainToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("%w %q: domain: %v", ErrInvalidAddress, addr, err)
	}
	out := local + "@" + a
	if len(out) > maxAddressLength {
		return "", fmt.Errorf("%w %q: %d octets with its domain in A-labels, the limit is %d",
			ErrInvalidAddress, addr, len(out), maxAddressLength)
	}
	return out, nil
}

// checkUTF8LocalPart checks a local part that has a non-ASCII character
// (see the package comment above): RFC 6531 §3.3 extends the dot-atom with
// UTF-8 and keeps the 64-octet limit, in octets.
func checkUTF8LocalPart(local string) error {
	if len(local) > maxLocalPart {
		return fmt.Errorf("%d octets, the limit is %d", len(local), maxLocalPart)
	}
	if local[0] == '.' || local[len(local)-1] == '.' {
		return errors.New("leading or trailing dot")
	}
	if strings.Contains(local, "..") {
		return errors.New("consecutive dots")
	}
	for _, r := range local {
		switch {
		case r < utf8.RuneSelf:
			if c := byte(r); c != '.' && (!isAtext(c) || c == '/') {
				return fmt.Errorf("character %q not allowed", c)
			}
		case !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r):
			return fmt.Errorf("%U (%s) not allowed: only letters, marks and digits", r, runeClass(r))
		}
	}
	if !norm.NFC.IsNormalString(local) {
		return errors.New("not in Unicode Normalization Form C (a letter and its accent written apart)")
	}
	if got, err := precis.UsernameCasePreserved.String(local); err != nil {
		// Name the character, when one alone is refused (the Bidi Rule
		// judges the whole).
		for _, r := range local {
			if _, e := precis.UsernameCasePreserved.String(string(r)); e != nil && r >= utf8.RuneSelf && !strings.Contains(e.Error(), "Bidi") {
				return fmt.Errorf("%U not allowed in an identifier (RFC 8265 §3.3: a compatibility or disallowed character)", r)
			}
		}
		return fmt.Errorf("not an identifier as RFC 8265 §3.3 has it: %v", err)
	} else if got != local {
		return errors.New("a full-width or compatibility character (RFC 8265 §3.3 would change it)")
	}
	return checkScripts(local)
}

// runeClass names the kind of character r is, for an error.
func runeClass(r rune) string {
	switch {
	case unicode.Is(unicode.Cc, r):
		return "a control character"
	case unicode.Is(unicode.Cf, r):
		return "an invisible or bidirectional formatting character"
	case unicode.IsSpace(r), unicode.Is(unicode.Z, r):
		return "a space"
	case unicode.IsPunct(r):
		return "punctuation"
	case unicode.IsSymbol(r):
		return "a symbol"
	case unicode.IsNumber(r):
		return "a number other than a decimal digit"
	case unicode.Is(unicode.Co, r):
		return "a private-use character"
	}
	return "an unassigned code point"
}

// scriptSets are the sets of scripts one identifier may mix at UTS #39's
// "highly restrictive" level (§5.2): any single script, or Latin with the
// scripts of Japanese, Chinese or Korean writing.
var scriptSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// checkScripts refuses a string that mixes scripts beyond what one writing
// system does (scriptSets). Characters of the Common and Inherited scripts
// (digits, combining marks) go with any; ASCII letters are Latin.
func checkScripts(s string) error {
	var seen []string
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "" || contains(seen, sc) {
			continue
		}
		seen = append(seen, sc)
	}
	if len(seen) <= 1 {
		return nil
	}
	for _, set := range scriptSets {
		if subset(seen, set) {
			return nil
		}
	}
	return fmt.Errorf("mixes the scripts %s (UTS #39 §5.2): a look-alike of another address", strings.Join(seen, " and "))
}

// scriptOf returns the Unicode script of r (UAX #24), "" for the Common and
// Inherited scripts and for ASCII other than letters.
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	}
	if unicode.In(r, unicode.Common, unicode.Inherited) {
		return ""
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func subset(a, b []string) bool {
	for _, v := range a {
		if !contains(b, v) {
			return false
		}
	}
	return true
}

// domainToASCII returns a domain in the form it is stored and compared
// in: ASCII letters lower-cased (DNS ignores their case, RFC 4343), U-labels
// converted to A-labels (RFC 5891 §4 and §5.5), then checked as an ASCII
// domain is (checkDomain).
//
// The conversion is IDNA2008's registration profile (idna.Registration),
// not the lookup one: lookup maps first (UTS #46: full-width letters to
// ASCII, a soft hyphen removed, ﬁ to fi), so that many spellings, some
// invisible, would become one domain; RFC 9598 §4 asks for domains "without
// mappings". Registration refuses what is not already a valid U-label:
// one spelling per domain. x/net/idna's tables are UTS #46's, which still
// let a few symbols through (☃, NV8 in its data); IDNA2008 (RFC 5892 §2.1)
// allows letters, marks and digits only, which is checked here too, with
// the scripts of each label as for a local part.
func domainToASCII(domain string) (string, error) {
	d := []byte(domain)
	for i, c := range d {
		if 'A' <= c && c <= 'Z' {
			d[i] = c + 'a' - 'A'
		}
	}
	domain = string(d)
	if isASCII(domain) {
		return domain, checkDomain(domain)
	}
	a, err := idna.Registration.ToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("not an IDNA2008 domain name (RFC 5891): %v", err)
	}
	if err := checkDomain(a); err != nil {
		return "", fmt.Errorf("%s: %v", a, err)
	}
	// Within the lengths of DNS now: the checks below are bounded.
	for _, label := range strings.Split(domain, ".") {
		if isASCII(label) {
			continue
		}
		for _, r := range label {
			if r >= utf8.RuneSelf && !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r) {
				return "", fmt.Errorf("label %q: %U (%s) not allowed (RFC 5892 §2.1)", label, r, runeClass(r))
			}
		}
		if err := checkScripts(label); err != nil {
			return "", fmt.Errorf("label %q: %v", label, err)
		}
	}
	return a, nil
}
