package publish

import (
	"crypto/x509"
	"strings"
)

// Profile returns the S/MIME Baseline Requirements profile of c (CA/Browser
// Forum S/MIME BR §7.1.6.1): "strict", "multipurpose" or "legacy", from
// the reserved certificate policy it asserts, 2.23.140.1.5.V.P (V the
// validation type: 1 mailbox, 2 organization, 3 sponsor, 4 individual; P
// the profile: 1 legacy, 2 multipurpose, 3 strict); "" when it asserts
// none, as certificates from before the BR and private CAs do.
func Profile(c *x509.Certificate) string {
	for _, oid := range c.Policies {
		rest, ok := strings.CutPrefix(oid.String(), "2.23.140.1.5.")
		if !ok || len(rest) != 3 || rest[1] != '.' || rest[0] < '1' || rest[0] > '4' {
			continue
		}
		switch rest[2] {
		case '1':
			return "legacy"
		case '2':
			return "multipurpose"
		case '3':
			return "strict"
		}
	}
	return ""
}
