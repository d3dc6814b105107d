package publish

import (
	"crypto/x509"

	"github.com/certharvest/certharvest/verify"
)

// Profile returns the S/MIME Baseline Requirements profile of c (CA/Browser
// Forum S/MIME BR §7.1.6.1): "strict", "multipurpose" or "legacy", from
// the reserved certificate policy it asserts (verify.CertificateProfile);
// "" when it asserts none, as certificates from before the BR and private
// CAs do.
func Profile(c *x509.Certificate) string {
	if p := verify.CertificateProfile(c); p != verify.ProfileNone {
		return string(p)
	}
	return ""
}
