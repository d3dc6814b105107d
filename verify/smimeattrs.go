package verify

import (
	"bytes"
	"encoding/asn1"
	"math/big"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The S/MIME signed attributes that say what a sender can read: the
// SMIMECapabilities (RFC 8551 §2.5.2) and the SMIMEEncryptionKeyPreference
// (RFC 8551 §2.5.3). They are read only from the signed attributes of a
// SignerInfo whose signature verified (derSignerInfo.check), the same bytes
// on the fast path and on the pkcs7 path, so that the signature covers
// what they say.
var (
	oidAttrSMIMECapabilities = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidAttrEncryptionKeyPref = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 11}
	oidRC2CBC                = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2}

	// The contents octets of the two OBJECT IDENTIFIERs (X.690 §8.19).
	derSMIMECapabilities = oidContents(oidAttrSMIMECapabilities)
	derEncryptionKeyPref = oidContents(oidAttrEncryptionKeyPref)
)

// oidContents returns the contents octets of an OBJECT IDENTIFIER's DER
// encoding.
func oidContents(oid asn1.ObjectIdentifier) []byte {
	der, err := asn1.Marshal(oid)
	if err != nil {
		panic(err) // fixed identifiers
	}
	return der[2:] // tag and a short length: these are short
}

// Limits on what the S/MIME attributes may make the pipeline keep.
const (
	// MaxCapabilities bounds the SMIMECapabilities recorded: the report
	// and the store keep the first ones, in the sender's order of
	// preference. Mail clients send ten or so.
	MaxCapabilities = 16
	// maxCapabilityName bounds one recorded capability: an unknown
	// algorithm is recorded as its dotted OID, and a longer one is left
	// out.
	maxCapabilityName = 64
	// maxSMIMEAttributes bounds the signed attributes looked at for
	// them; clients send five or so.
	maxSMIMEAttributes = 64
)

// capabilityNames name the algorithms of SMIMECapabilities: content
// encryption (RFC 3565, RFC 5084, RFC 8103, RFC 8551 §2.7), key transport
// and agreement (RFC 8017, RFC 3560, RFC 5753), key wrap (RFC 3394), and the
// digests and signatures some clients list too. Any other is recorded as
// its OID.
var capabilityNames = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}, "AES-256-GCM"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 26}, "AES-192-GCM"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}, "AES-128-GCM"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 3, 18}, "ChaCha20-Poly1305"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, "AES-256-CBC"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}, "AES-192-CBC"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, "AES-128-CBC"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}, "DES-EDE3-CBC"},
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}, "DES-CBC"},
	{oidRC2CBC, "RC2-CBC"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, "RSAES-PKCS1-v1_5"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}, "RSAES-OAEP"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1}, "ECDH-SHA256-KDF"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 2}, "ECDH-SHA384-KDF"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 3}, "ECDH-SHA512-KDF"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}, "AES-256-WRAP"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 25}, "AES-192-WRAP"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 5}, "AES-128-WRAP"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15, 1}, "preferBinaryInside"},
	{oidSHA256, "SHA-256"},
	{oidSHA384, "SHA-384"},
	{oidSHA512, "SHA-512"},
	{oidSHA1, "SHA-1"},
	{oidSHA256WithRSA, "RSA-SHA256"},
	{oidSHA384WithRSA, "RSA-SHA384"},
	{oidSHA512WithRSA, "RSA-SHA512"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}, "RSASSA-PSS"},
	{oidECDSAWithSHA256, "ECDSA-SHA256"},
	{oidECDSAWithSHA384, "ECDSA-SHA384"},
	{oidECDSAWithSHA512, "ECDSA-SHA512"},
	{asn1.ObjectIdentifier{1, 3, 101, 112}, "Ed25519"},
}

// smimeAttributes is what a verified SignerInfo's S/MIME attributes say.
type smimeAttributes struct {
	// pref names the certificate to encrypt to; nil: no usable
	// SMIMEEncryptionKeyPreference.
	pref *keyPreference
	// capabilities are the sender's SMIMECapabilities, named
	// (capabilityNames), at most MaxCapabilities.
	capabilities []string
	// problems says what was ignored and why, for the story.
	problems []string
}

// keyPreference is an SMIMEEncryptionKeyPreference (RFC 8551 §2.5.3):
//
//	SMIMEEncryptionKeyPreference ::= CHOICE {
//	    issuerAndSerialNumber   [0] IssuerAndSerialNumber,
//	    receipentKeyId          [1] RecipientKeyIdentifier,
//	    subjectAltKeyIdentifier [2] SubjectKeyIdentifier }
//
// with implicit tags (the module of RFC 8551 Appendix A). A certificate
// named by issuer and serial, or by its subject key identifier (the
// RecipientKeyIdentifier's, RFC 5652 §6.2.2, or the SubjectKeyIdentifier).
type keyPreference struct {
	issuer []byte // the issuer Name, DER; nil: by key identifier
	serial *big.Int
	keyID  []byte
}

// readSMIMEAttributes reads the S/MIME attributes of a [0] IMPLICIT SET OF
// Attribute that readSignedAttributes accepted. A malformed or repeated
// attribute is ignored, with a problem for the story: the signature
// verified, and the message is judged as if the sender's client had not
// sent it. At most maxSMIMEAttributes attributes are looked at.
func readSMIMEAttributes(raw []byte) smimeAttributes {
	var out smimeAttributes
	if raw == nil {
		return out
	}
	s := cryptobyte.String(raw)
	var attrs cryptobyte.String
	if !s.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return out
	}
	seenPref, seenCaps := false, false
	for n := 0; !attrs.Empty() && n < maxSMIMEAttributes; n++ {
		// The type's encoding is compared, not decoded: no allocation
		// for the attributes of every message.
		var body, typ, values cryptobyte.String
		if !attrs.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1(&typ, cbasn1.OBJECT_IDENTIFIER) ||
			!body.ReadASN1(&values, cbasn1.SET) {
			return out
		}
		switch {
		case bytes.Equal(typ, derEncryptionKeyPref):
			if seenPref {
				out.pref = nil
				out.problems = append(out.problems, "more than one SMIMEEncryptionKeyPreference attribute: none is used")
				continue
			}
			seenPref = true
			pref, ok := readKeyPreference(values)
			if !ok {
				out.problems = append(out.problems, "malformed SMIMEEncryptionKeyPreference attribute: ignored")
				continue
			}
			out.pref = pref
		case bytes.Equal(typ, derSMIMECapabilities):
			if seenCaps {
				out.capabilities = nil
				out.problems = append(out.problems, "more than one SMIMECapabilities attribute: none is recorded")
				continue
			}
			seenCaps = true
			caps, ok := readCapabilities(values)
			if !ok {
				out.problems = append(out.problems, "malformed SMIMECapabilities attribute: ignored")
				continue
			}
			out.capabilities = caps
		}
	}
	return out
}

// readKeyPreference reads the one value of an SMIMEEncryptionKeyPreference.
func readKeyPreference(values cryptobyte.String) (*keyPreference, bool) {
	var p keyPreference
	switch {
	case values.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()):
		var ias, issuer cryptobyte.String
		p.serial = new(big.Int)
		if !values.ReadASN1(&ias, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !ias.ReadASN1Integer(p.serial) || !ias.Empty() {
			return nil, false
		}
		p.issuer = issuer
	case values.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()):
		// RecipientKeyIdentifier ::= SEQUENCE { subjectKeyIdentifier,
		// date GeneralizedTime OPTIONAL, other OPTIONAL }: the date
		// and other attributes choose among keys of one identifier,
		// which a certificate does not have.
		var rkid, ski cryptobyte.String
		if !values.ReadASN1(&rkid, cbasn1.Tag(1).Constructed().ContextSpecific()) ||
			!rkid.ReadASN1(&ski, cbasn1.OCTET_STRING) {
			return nil, false
		}
		p.keyID = ski
	case values.PeekASN1Tag(cbasn1.Tag(2).ContextSpecific()):
		var ski cryptobyte.String
		if !values.ReadASN1(&ski, cbasn1.Tag(2).ContextSpecific()) {
			return nil, false
		}
		p.keyID = ski
	default:
		return nil, false
	}
	if !values.Empty() || (p.issuer == nil && len(p.keyID) == 0) {
		return nil, false // one value only (RFC 8551 §2.5.3)
	}
	return &p, true
}

// readCapabilities reads the one value of an SMIMECapabilities attribute:
//
//	SMIMECapabilities ::= SEQUENCE OF SMIMECapability
//	SMIMECapability ::= SEQUENCE { capabilityID OBJECT IDENTIFIER,
//	    parameters ANY DEFINED BY capabilityID OPTIONAL }
//
// and names the first MaxCapabilities (RC2-CBC with its key size, as
// RC2-CBC-128).
func readCapabilities(values cryptobyte.String) ([]string, bool) {
	var seq cryptobyte.String
	if !values.ReadASN1(&seq, cbasn1.SEQUENCE) || !values.Empty() {
		return nil, false
	}
	caps := []string{}
	for !seq.Empty() && len(caps) < MaxCapabilities {
		var c cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !seq.ReadASN1(&c, cbasn1.SEQUENCE) {
			return nil, false
		}
		if !c.ReadASN1ObjectIdentifier(&oid) {
			// An OID this reader cannot hold (an arc beyond 31
			// bits): not one any client sends. Skipped.
			continue
		}
		name := capabilityName(oid)
		if oid.Equal(oidRC2CBC) {
			var bits int64
			if c.ReadASN1Integer(&bits) && bits > 0 && bits <= 1024 {
				name += "-" + strconv.FormatInt(bits, 10)
			}
		}
		if len(name) <= maxCapabilityName {
			caps = append(caps, name)
		}
	}
	return caps, true
}

// capabilityName names an algorithm of SMIMECapabilities, or returns its
// dotted OID.
func capabilityName(oid asn1.ObjectIdentifier) string {
	for _, c := range capabilityNames {
		if oid.Equal(c.oid) {
			return c.name
		}
	}
	return oid.String()
}

// names reports whether the preference names c (by issuer and serial, or
// by subject key identifier).
func (p *keyPreference) names(issuer []byte, serial *big.Int, subjectKeyID []byte) bool {
	if p.issuer != nil {
		return bytes.Equal(p.issuer, issuer) && p.serial.Cmp(serial) == 0
	}
	return len(subjectKeyID) > 0 && bytes.Equal(p.keyID, subjectKeyID)
}
