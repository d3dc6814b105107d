package publish

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// CertsOnly returns a "certs-only" CMS SignedData holding certs (RFC 8551
// §3.8; RFC 5652 §5): no signers, no digest algorithms, and an absent
// content of type data, as RFC 2798 §2.4 recommends for the values of
// userSMIMECertificate. It is DER: the same certificates give the same
// bytes, so that exporting again changes nothing.
func CertsOnly(certs ...*x509.Certificate) []byte {
	// A SET OF in DER is in the order of its elements' encodings (X.690
	// §11.6).
	ders := make([][]byte, len(certs))
	for i, c := range certs {
		ders[i] = c.Raw
	}
	slices.SortFunc(ders, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)                                   // version
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {}) // digestAlgorithms
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData) // encapContentInfo, no eContent
				})
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, der := range ders { // certificates [0] IMPLICIT
						b.AddBytes(der)
					}
				})
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {}) // signerInfos
			})
		})
	})
	return b.BytesOrPanic()
}
