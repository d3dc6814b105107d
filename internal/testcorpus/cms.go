package testcorpus

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/smallstep/pkcs7"
)

// cmsParams says how to build one CMS SignedData.
type cmsParams struct {
	cert        *x509.Certificate
	key         crypto.Signer
	bag         []*x509.Certificate // added to the certificates field after the signer's
	signingTime time.Time
	detached    bool
	// alg is the signature algorithm; zero: PKCS #1 v1.5 or ECDSA (as
	// the key is) with SHA-256.
	alg SigAlg
	// attrs are more signed attributes (SMIMECapabilities,
	// SMIMEEncryptionKeyPreference: smimeattrs.go).
	attrs []pkcs7.Attribute
}

// SigAlg says how a CMS SignerInfo is signed (RFC 5652 §5.4).
type SigAlg struct {
	// Hash is the digest algorithm (and the signature's hash); zero:
	// SHA-256. Ed25519 requires SHA-512 (RFC 8419 §3).
	Hash crypto.Hash
	// PSS signs with RSASSA-PSS (RFC 4056) instead of PKCS #1 v1.5, MGF1
	// with Hash, and the salt length PSSSalt (rsa.PSSSaltLengthEqualsHash:
	// the hash's; rsa.PSSSaltLengthAuto: the longest the key allows, as
	// OpenSSL does).
	PSS     bool
	PSSSalt int
	// PSSParams, if set, replaces the encoded RSASSA-PSS-params (a
	// signature made with other parameters than it states).
	PSSParams []byte
}

func (a SigAlg) hash() crypto.Hash {
	if a.Hash == 0 {
		return crypto.SHA256
	}
	return a.Hash
}

// digestOIDs are the digest algorithm identifiers (RFC 3370 §2.1, RFC
// 5754 §2).
var digestOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:   pkcs7.OIDDigestAlgorithmSHA1,
	crypto.SHA256: pkcs7.OIDDigestAlgorithmSHA256,
	crypto.SHA384: pkcs7.OIDDigestAlgorithmSHA384,
	crypto.SHA512: pkcs7.OIDDigestAlgorithmSHA512,
}

// Signature algorithm identifiers: RSASSA-PSS and MGF1 (RFC 4055 §3.1,
// §6), Ed25519 (RFC 8410 §3).
var (
	oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidEd25519   = asn1.ObjectIdentifier{1, 3, 101, 112}
)

func isEd25519(pub crypto.PublicKey) bool {
	_, ok := pub.(ed25519.PublicKey)
	return ok
}

// pssSaltLength is the salt length a PSS signature with opts has for pub.
func pssSaltLength(pub *rsa.PublicKey, opts *rsa.PSSOptions) int {
	switch opts.SaltLength {
	case rsa.PSSSaltLengthEqualsHash:
		return opts.Hash.Size()
	case rsa.PSSSaltLengthAuto:
		return (pub.N.BitLen()-1+7)/8 - 2 - opts.Hash.Size()
	}
	return opts.SaltLength
}

// PSSParams encodes RSASSA-PSS-params (RFC 4055 §3.1) for hash, MGF1 with
// mgfHash and the salt length, in DER: the SHA-1 and 20 defaults left out,
// the hash identifiers with NULL parameters, as OpenSSL writes them.
func PSSParams(hash, mgfHash crypto.Hash, salt int) []byte {
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	var params struct {
		Hash algID `asn1:"optional,explicit,tag:0"`
		MGF  algID `asn1:"optional,explicit,tag:1"`
		Salt int   `asn1:"optional,explicit,tag:2,default:20"`
	}
	if hash != crypto.SHA1 {
		params.Hash = algID{digestOIDs[hash], null}
	}
	if mgfHash != crypto.SHA1 {
		inner, _ := asn1.Marshal(algID{digestOIDs[mgfHash], null})
		params.MGF = algID{oidMGF1, asn1.RawValue{FullBytes: inner}}
	}
	params.Salt = salt
	der, err := asn1.Marshal(params)
	if err != nil {
		panic(err) // fixed shapes
	}
	return der
}

// placeholderSigner lets pkcs7.AddSigner build the SignerInfo without
// signing: pkcs7 always puts time.Now() in the signingTime attribute, and
// the corpus needs fixed signing times (see resign).
type placeholderSigner struct{ pub crypto.PublicKey }

func (p placeholderSigner) Public() crypto.PublicKey { return p.pub }

func (placeholderSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return []byte{0}, nil
}

// signCMS returns the DER encoding of a ContentInfo holding a SignedData
// (RFC 5652 §3, §5) over content, signed with SHA-256 and the signed
// attributes contentType, messageDigest and signingTime (RFC 8551 §2.5).
// With p.detached the eContent is omitted (RFC 5652 §5.2), as in
// multipart/signed.
func signCMS(content []byte, p cmsParams) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	// pkcs7's default is SHA-1; S/MIME 4.0 requires SHA-256 support
	// (RFC 8551 §2.1) and micalg=sha-256 is what the messages announce.
	sd.SetDigestAlgorithm(digestOIDs[p.alg.hash()])
	pub := p.key.Public()
	if isEd25519(pub) {
		// pkcs7 knows no Ed25519: the SignerInfo's algorithm is set
		// below.
		pub = &rsa.PublicKey{}
	}
	if err := sd.AddSigner(p.cert, placeholderSigner{pub}, pkcs7.SignerInfoConfig{ExtraSignedAttributes: p.attrs}); err != nil {
		return nil, err
	}
	si := &sd.GetSignedData().SignerInfos[0]
	switch k := p.key.Public().(type) {
	case ed25519.PublicKey:
		si.DigestEncryptionAlgorithm = pkix.AlgorithmIdentifier{Algorithm: oidEd25519}
	case *rsa.PublicKey:
		if p.alg.PSS {
			opts := &rsa.PSSOptions{Hash: p.alg.hash(), SaltLength: p.alg.PSSSalt}
			params := p.alg.PSSParams
			if params == nil {
				params = PSSParams(opts.Hash, opts.Hash, pssSaltLength(k, opts))
			}
			si.DigestEncryptionAlgorithm = pkix.AlgorithmIdentifier{Algorithm: oidRSASSAPSS, Parameters: asn1.RawValue{FullBytes: params}}
		}
	}
	for _, c := range p.bag {
		sd.AddCertificate(c)
	}
	if err := resign(sd, p.key, p.signingTime, p.alg); err != nil {
		return nil, err
	}
	if p.detached {
		sd.Detach()
	}
	return sd.Finish()
}

// cmsAttribute mirrors pkcs7's Attribute encoding (RFC 5652 §5.3:
// Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }).
type cmsAttribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

// resign replaces the signingTime attribute of the (only) SignerInfo and
// computes its signature over the DER SET OF signed attributes
// (RFC 5652 §5.4: the IMPLICIT [0] tag is replaced by the SET OF tag, and
// DER requires the elements in ascending order of their encodings), with
// alg.
func resign(sd *pkcs7.SignedData, key crypto.Signer, signingTime time.Time, alg SigAlg) error {
	infos := sd.GetSignedData().SignerInfos
	if len(infos) != 1 {
		return errors.New("testcorpus: expected exactly one SignerInfo")
	}
	si := &infos[0]
	// RFC 5652 §11.3: UTCTime for dates between 1950 and 2049
	// (encoding/asn1 picks UTCTime for those years).
	tv, err := asn1.Marshal(signingTime.UTC())
	if err != nil {
		return err
	}
	encs := make(map[int][]byte, len(si.AuthenticatedAttributes))
	idx := make([]int, len(si.AuthenticatedAttributes))
	for i := range si.AuthenticatedAttributes {
		a := &si.AuthenticatedAttributes[i]
		if a.Type.Equal(pkcs7.OIDAttributeSigningTime) {
			a.Value = asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: tv}
		}
		enc, err := asn1.Marshal(cmsAttribute{Type: a.Type, Value: a.Value})
		if err != nil {
			return err
		}
		encs[i] = enc
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool { return bytes.Compare(encs[idx[x]], encs[idx[y]]) < 0 })
	sorted := append(si.AuthenticatedAttributes[:0:0], si.AuthenticatedAttributes...)
	var body []byte
	for j, i := range idx {
		sorted[j] = si.AuthenticatedAttributes[i]
		body = append(body, encs[i]...)
	}
	copy(si.AuthenticatedAttributes, sorted)
	set, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: body})
	if err != nil {
		return err
	}
	var sig []byte
	switch {
	case isEd25519(key.Public()):
		// PureEdDSA over the attributes themselves (RFC 8419 §3).
		sig, err = key.Sign(rand.Reader, set, crypto.Hash(0))
	default:
		// RSA: PKCS #1 v1.5 (RFC 8017) or PSS; ECDSA: the DER
		// Ecdsa-Sig-Value (RFC 5753 §2.1.1). All are what
		// crypto.Signer returns.
		h := alg.hash().New()
		h.Write(set)
		var opts crypto.SignerOpts = alg.hash()
		if alg.PSS {
			opts = &rsa.PSSOptions{Hash: alg.hash(), SaltLength: alg.PSSSalt}
		}
		sig, err = key.Sign(rand.Reader, h.Sum(nil), opts)
	}
	if err != nil {
		return err
	}
	si.EncryptedDigest = sig
	return nil
}

// ---- DER to BER (indefinite lengths), as Thunderbird/NSS and
// `openssl smime -stream` produce. ----

type tlv struct {
	ident   []byte // identifier octets
	content []byte
	full    []byte
}

// readTLV reads one DER element (X.690 §8.1: identifier, definite length,
// contents).
func readTLV(b []byte) (tlv, []byte, error) {
	if len(b) < 2 {
		return tlv{}, nil, errors.New("testcorpus: truncated DER")
	}
	n := 1
	if b[0]&0x1f == 0x1f { // high tag number form, X.690 §8.1.2.4
		for n < len(b) && b[n]&0x80 != 0 {
			n++
		}
		n++
	}
	if n >= len(b) {
		return tlv{}, nil, errors.New("testcorpus: truncated DER tag")
	}
	ident := b[:n]
	l := int(b[n])
	n++
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 4 || n+k > len(b) {
			return tlv{}, nil, errors.New("testcorpus: unsupported DER length")
		}
		l = 0
		for _, c := range b[n : n+k] {
			l = l<<8 | int(c)
		}
		n += k
	}
	if n+l > len(b) {
		return tlv{}, nil, errors.New("testcorpus: truncated DER contents")
	}
	return tlv{ident: ident, content: b[n : n+l], full: b[:n+l]}, b[n+l:], nil
}

func children(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		t, rest, err := readTLV(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

// derLength encodes a definite length (X.690 §8.1.3).
func derLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var b []byte
	for ; n > 0; n >>= 8 {
		b = append([]byte{byte(n)}, b...)
	}
	return append([]byte{0x80 | byte(len(b))}, b...)
}

var endOfContents = []byte{0, 0}

// indefinite re-encodes a constructed element with the indefinite length
// form (X.690 §8.1.3.6): 0x80 instead of the length, then the contents, then
// the end-of-contents octets 00 00.
func indefinite(ident []byte, parts ...[]byte) []byte {
	out := append(append([]byte{}, ident...), 0x80)
	for _, p := range parts {
		out = append(out, p...)
	}
	return append(out, endOfContents...)
}

// BERIndefinite converts a DER CMS ContentInfo/SignedData into the BER form
// streaming encoders produce: ContentInfo, its [0] EXPLICIT wrapper,
// SignedData and EncapsulatedContentInfo (and its [0]) use indefinite
// lengths; the certificates and SignerInfos stay DER (as NSS does). If
// chunk > 0 and the eContent is present, the OCTET STRING is re-encoded as a
// constructed OCTET STRING of chunk-sized primitive pieces (X.690 §8.7.3.2),
// like `openssl smime -stream`.
func BERIndefinite(der []byte, chunk int) ([]byte, error) {
	ci, rest, err := readTLV(der)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("testcorpus: trailing data after ContentInfo")
	}
	ciKids, err := children(ci.content) // contentType, [0] content
	if err != nil {
		return nil, err
	}
	if len(ciKids) != 2 {
		return nil, fmt.Errorf("testcorpus: ContentInfo has %d elements", len(ciKids))
	}
	sd, _, err := readTLV(ciKids[1].content)
	if err != nil {
		return nil, err
	}
	sdKids, err := children(sd.content)
	if err != nil {
		return nil, err
	}
	if len(sdKids) < 4 {
		return nil, errors.New("testcorpus: short SignedData")
	}
	// SignedData ::= SEQUENCE { version, digestAlgorithms,
	//   encapContentInfo, [0] certificates OPTIONAL, [1] crls OPTIONAL,
	//   signerInfos }   (RFC 5652 §5.1)
	var sdParts [][]byte
	for i, k := range sdKids {
		if i != 2 {
			sdParts = append(sdParts, k.full)
			continue
		}
		eci, err := children(k.content) // eContentType, [0] eContent OPTIONAL
		if err != nil {
			return nil, err
		}
		parts := [][]byte{eci[0].full}
		if len(eci) > 1 {
			octets, _, err := readTLV(eci[1].content)
			if err != nil {
				return nil, err
			}
			enc := octets.full
			if chunk > 0 {
				var pieces [][]byte
				for c := octets.content; len(c) > 0; {
					n := min(chunk, len(c))
					pieces = append(pieces, append(append([]byte{0x04}, derLength(n)...), c[:n]...))
					c = c[n:]
				}
				enc = indefinite([]byte{0x24}, pieces...) // constructed OCTET STRING
			}
			parts = append(parts, indefinite(eci[1].ident, enc))
		}
		sdParts = append(sdParts, indefinite(k.ident, parts...))
	}
	return indefinite(ci.ident, ciKids[0].full, indefinite(ciKids[1].ident, indefinite(sd.ident, sdParts...))), nil
}
