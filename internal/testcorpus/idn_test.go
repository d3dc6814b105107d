package testcorpus_test

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The reference checks of internationalised addresses, written apart from
// verify's: enough to tell the corpus's cases apart.

func refASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) < 0
}

// refIntlFrom says why a From with a non-ASCII part is refused, or "".
func refIntlFrom(local, domain string) string {
	if !refASCII(domain) {
		if _, err := idna.Registration.ToASCII(strings.ToLower(domain)); err != nil {
			return "domain " + err.Error()
		}
	}
	if refASCII(local) {
		return ""
	}
	if !norm.NFC.IsNormalString(local) {
		return "local part not NFC"
	}
	if p, err := precis.UsernameCasePreserved.String(local); err != nil || p != local {
		return "local part not a PRECIS identifier"
	}
	scripts := map[string]bool{}
	for _, r := range local {
		if !unicode.IsLetter(r) {
			continue
		}
		for name, table := range unicode.Scripts {
			if unicode.Is(table, r) {
				scripts[name] = true
			}
		}
	}
	if len(scripts) > 1 && !(len(scripts) == 2 && scripts["Han"] && scripts["Latin"]) {
		return "local part of several scripts"
	}
	return ""
}

// refALabels returns a domain in A-labels, lower case.
func refALabels(domain string) string {
	if a, err := idna.Registration.ToASCII(strings.ToLower(domain)); err == nil {
		return a
	}
	return strings.ToLower(domain)
}

// refSmtpUTF8Mailboxes reads the SmtpUTF8Mailbox otherNames of c's SAN
// with encoding/asn1.
func refSmtpUTF8Mailboxes(t *testing.T, c *x509.Certificate) []string {
	var boxes []string
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			continue
		}
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
			t.Fatalf("SAN: %v", err)
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 {
				continue
			}
			var other struct {
				ID    asn1.ObjectIdentifier
				Value string `asn1:"explicit,tag:0,utf8"`
			}
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &other, "tag:0"); err != nil {
				t.Fatalf("otherName: %v", err)
			}
			if other.ID.Equal(testcorpus.OIDSmtpUTF8Mailbox) {
				boxes = append(boxes, other.Value)
			}
		}
	}
	return boxes
}
