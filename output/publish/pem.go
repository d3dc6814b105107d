package publish

import (
	"encoding/pem"

	"github.com/certharvest/certharvest/output"
)

// pemFormat writes each certificate as a PEM CERTIFICATE block (RFC 7468
// §5), after a line with its address: text outside the blocks, which PEM
// readers skip (RFC 7468 §5.2, explanatory text).
type pemFormat struct{}

func (pemFormat) Ext() string                    { return "pem" }
func (pemFormat) AppendHeader(dst []byte) []byte { return dst }

func (pemFormat) AppendRecord(dst []byte, c output.StoredCertificate) ([]byte, error) {
	dst = append(dst, "# "...)
	dst = append(dst, c.Address...)
	dst = append(dst, '\n')
	return append(dst, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})...), nil
}
