package verify

import (
	"errors"
	"fmt"
	"strings"
)

// headerBPrefix is how much of a signature's b= an Authentication-Results
// field gives as header.b: eight characters, as RFC 6008 §4 recommends at
// least and OpenDKIM writes.
const headerBPrefix = 8

// maxAuthservID bounds an authserv-id: a domain name's length.
const maxAuthservID = 255

// CheckAuthservID checks that id can be an authserv-id as certharvest writes
// and compares them: a token (RFC 2045 §5.1: no space, control character or
// tspecial), as a host name is, of at most 255 bytes.
func CheckAuthservID(id string) error {
	if id == "" {
		return errors.New("empty authserv-id")
	}
	if len(id) > maxAuthservID {
		return fmt.Errorf("authserv-id of %d bytes: at most %d", len(id), maxAuthservID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return fmt.Errorf("authserv-id %q: %q is not allowed (a host name is)", id, c)
		}
	}
	return nil
}

// AuthenticationResults returns the Authentication-Results field (RFC 8601)
// that records res's DKIM verdict under authservID, with its CRLF: what an
// MTA adds on top of a message it has checked, so that a later run with
// --trust-authserv-id authservID can rely on it once the key is gone
// (authres.go).
//
//   - DKIM established: dkim=pass, naming the signature by header.d,
//     header.s and header.b (RFC 6008); when it was itself established by
//     another's Authentication-Results, a reason says whose.
//   - No DKIM-Signature: dkim=none. A temporary failure: dkim=temperror.
//     No aligned signature verified: dkim=fail. Each with the reason code.
//   - DKIM not reached (the message could not be read, parsed, or had no
//     usable From): dkim=permerror, with the reason code.
//
// Only a pass names a signature, so only a pass can be relied on; but every
// verdict gets a DKIM result, so that a field of the same authserv-id
// further down, which came with the message, is never the one read.
func AuthenticationResults(authservID string, res *Result) []byte {
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(authservID)
	b.WriteString(";\r\n\tdkim=")
	switch d := res.DKIM; {
	case d != nil:
		b.WriteString("pass")
		if plainValue(d.Domain) {
			b.WriteString(" header.d=")
			b.WriteString(d.Domain)
		}
		if d.Selector != "" && plainValue(d.Selector) {
			b.WriteString(" header.s=")
			b.WriteString(d.Selector)
		}
		if len(d.b) >= headerBPrefix && isBase64(d.b[:headerBPrefix]) {
			// Quoted: base64 has "/" and "+" (RFC 8601 §2.2, value).
			b.WriteString(` header.b="`)
			b.WriteString(d.b[:headerBPrefix])
			b.WriteString(`"`)
		}
		if d.Via == DKIMViaAuthResults {
			b.WriteString(` reason="by the Authentication-Results of `)
			b.WriteString(d.AuthservID)
			b.WriteString(`"`)
		}
	default:
		switch res.Reason {
		case ReasonDKIMMissing:
			b.WriteString("none")
		case ReasonDKIMTempError:
			b.WriteString("temperror")
		case ReasonDKIMInvalid, ReasonDKIMDomainMismatch:
			b.WriteString("fail")
		default:
			b.WriteString("permerror")
		}
		b.WriteString(` reason="`)
		b.WriteString(string(res.Reason))
		b.WriteString(`"`)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// plainValue reports whether s can be written as a property value without
// quoting: a domain and a selector are DNS names, but the signature's
// sender wrote them.
func plainValue(s string) bool {
	return CheckAuthservID(s) == nil
}

// isBase64 reports whether s holds only characters of the base64 alphabet.
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
