package publish

import (
	"encoding/json"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// jsonFormat writes one JSON object per line (JSON Lines): what list
// --json says of a certificate (verify.CertInfo: sha256, subject, issuer,
// serial, emails, not_before, not_after, key, signature_algorithm) and its
// address, when it was stored, its S/MIME BR profile, and the certificate
// itself (DER, base64), so that a script needs nothing else.
type jsonFormat struct{}

func (jsonFormat) Ext() string                    { return "json" }
func (jsonFormat) AppendHeader(dst []byte) []byte { return dst }

// jsonRecord is a line of the JSON format.
type jsonRecord struct {
	Address string `json:"address"`
	*verify.CertInfo
	StoredAt time.Time `json:"stored_at"`
	// Profile is the certificate's S/MIME Baseline Requirements profile
	// (Profile), or "".
	Profile     string `json:"profile"`
	Certificate []byte `json:"certificate"`
}

func (jsonFormat) AppendRecord(dst []byte, c output.StoredCertificate) ([]byte, error) {
	line, err := json.Marshal(jsonRecord{
		Address:     c.Address,
		CertInfo:    verify.DescribeCertificate(c.Cert),
		StoredAt:    c.StoredAt.UTC(),
		Profile:     Profile(c.Cert),
		Certificate: c.Cert.Raw,
	})
	if err != nil {
		return dst, err
	}
	return append(append(dst, line...), '\n'), nil
}
