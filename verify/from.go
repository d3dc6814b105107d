package verify

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// Limits on an address used as a file name. RFC 5321 §4.5.3.1 allows a
// 64-octet local part and a 254-octet path; the file name <address>.crt must
// also fit the 255-byte name limit of common file systems, hence 251.
const (
	maxLocalPart     = 64
	maxDomain        = 253
	maxAddressLength = 255 - len(".crt")
)

// fromAddress returns the single From address of h, normalised.
func fromAddress(p *parsedMessage) (string, error) {
	values := p.header.Values("From")
	switch {
	case len(values) == 0:
		return "", fail(ReasonInvalidFrom, "no From header field")
	case len(values) > 1:
		// RFC 5322 §3.6 allows exactly one From field. Two are a classic
		// trick: DKIM may cover one, a mail reader may display the other.
		return "", fail(ReasonMultipleFrom, "%d From header fields", len(values))
	}
	parser := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// The display name is never used, so an unknown charset in it is
		// passed through rather than rejecting the message.
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	list, err := parser.ParseList(values[0])
	if err != nil {
		return "", fail(ReasonInvalidFrom, "parsing From %q: %w", truncate(values[0], 200), err)
	}
	if len(list) != 1 {
		return "", fail(ReasonInvalidFrom, "From has %d mailboxes, want exactly one", len(list))
	}
	// net/mail unquotes a quoted local part; find out from the raw value
	// whether it was quoted, since a quoted local part is never accepted.
	if strings.Contains(values[0], `"@`) {
		return "", fail(ReasonInvalidFrom, "quoted local part in %q", truncate(values[0], 200))
	}
	addr, err := NormalizeAddress(list[0].Address)
	if err != nil {
		return "", &Error{Reason: ReasonInvalidFrom, Err: err}
	}
	return addr, nil
}

// ErrInvalidAddress is wrapped by every error of NormalizeAddress.
var ErrInvalidAddress = errors.New("invalid address")

// NormalizeAddress validates an email address and returns it normalised:
// an ASCII address lower-cased. It is the only way certharvest turns an
// address into a file name, so it accepts only what is unambiguous and safe
// there:
//
//   - the local part is a dot-atom (RFC 5322 §3.4.1): atext characters
//     separated by single dots, no leading or trailing dot, no quoting, and no
//     '/' (a path separator, though atext allows it);
//   - the domain is a host name of letters, digits and hyphens (RFC 1035
//     §2.3.1, RFC 5321 §4.1.2) with at least two labels;
//   - the whole fits a file name: at most 251 octets.
//
// An internationalised address (RFC 6532 §3.2) is accepted too, normalised
// as address.go says: its domain in A-labels, a non-ASCII local part as
// written (not case-folded), which must be in NFC and of letters, marks
// and digits of one script.
func NormalizeAddress(addr string) (string, error) {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || strings.Contains(domain, "@") {
		return "", fmt.Errorf("%w %q: want exactly one @", ErrInvalidAddress, truncate(addr, 100))
	}
	if !isASCII(addr) {
		return normalizeIntl(addr, local, domain)
	}
	if len(addr) > maxAddressLength {
		return "", fmt.Errorf("%w: %d octets, the limit is %d", ErrInvalidAddress, len(addr), maxAddressLength)
	}
	if err := checkDotAtom(local); err != nil {
		return "", fmt.Errorf("%w %q: local part: %v", ErrInvalidAddress, addr, err)
	}
	if err := checkDomain(domain); err != nil {
		return "", fmt.Errorf("%w %q: domain: %v", ErrInvalidAddress, addr, err)
	}
	return strings.ToLower(addr), nil
}

func checkDotAtom(local string) error {
	if local == "" {
		return errors.New("empty")
	}
	if len(local) > maxLocalPart {
		return fmt.Errorf("%d octets, the limit is %d", len(local), maxLocalPart)
	}
	if local[0] == '.' || local[len(local)-1] == '.' {
		return errors.New("leading or trailing dot")
	}
	if strings.Contains(local, "..") {
		return errors.New("consecutive dots")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '.' || isAtext(c) && c != '/' {
			continue
		}
		return fmt.Errorf("character %q not allowed", c)
	}
	return nil
}

// isAtext reports whether c is an atext character, RFC 5322 §3.2.3.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func checkDomain(domain string) error {
	if domain == "" {
		return errors.New("empty")
	}
	if len(domain) > maxDomain {
		return fmt.Errorf("%d octets, the limit is %d", len(domain), maxDomain)
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return errors.New("not a fully qualified domain name")
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q: empty or longer than 63 octets", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("character %q not allowed", c)
			}
		}
	}
	return nil
}

// domainOf returns the domain of a normalised address.
func domainOf(addr string) string {
	_, domain, _ := strings.Cut(addr, "@")
	return domain
}

// truncate shortens s for a log line or report detail.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
