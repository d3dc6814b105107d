package testcorpus

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
)

// smimeForm is one of the ways a signature travels in a message.
type smimeForm struct {
	name, desc string
	opts       smimeOpts
}

// smimeForms are the S/MIME forms of the corpus: a verdict must depend
// neither on how the signature travels nor on which parser reads it (DER or
// BER). The *-signingtime-* cases and the signer cases come in each.
func smimeForms() []smimeForm {
	return []smimeForm{
		{"detached", "multipart/signed (application/pkcs7-signature)", smimeOpts{}},
		{"opaque", "application/pkcs7-mime signed-data", smimeOpts{opaque: true}},
		{"ber-detached", "multipart/signed, Thunderbird style, BER CMS with indefinite lengths", smimeOpts{ber: true, thunderbird: true}},
		{"ber-opaque", "opaque signed-data in streaming BER (indefinite lengths, eContent as a constructed OCTET STRING)", smimeOpts{opaque: true, ber: true, chunk: 1000}},
		{"x-pkcs7-signature", "multipart/signed with the legacy protocol application/x-pkcs7-signature", smimeOpts{legacy: true}},
		{"x-pkcs7-mime", "opaque signed-data with the legacy type application/x-pkcs7-mime", smimeOpts{opaque: true, legacy: true}},
	}
}

// SignerKind is a kind of S/MIME signer the corpus signs with: its key, how
// its certificate is issued, and the CMS signature algorithm.
type SignerKind struct {
	// Name is the kind's part of the case names (ok-NAME-FORM).
	Name string
	// Description says what is signed how.
	Description string
	// Leaf is the signer's certificate, Address aside.
	Leaf LeafSpec
	// Alg is the CMS signature algorithm.
	Alg SigAlg
	// Issuer is the intermediate that issues the certificate, carried in
	// the CMS.
	Issuer *x509.Certificate
}

// SignerKinds are the signers beyond RSA PKCS #1 v1.5 and ECDSA P-256 with
// SHA-256: RSASSA-PSS, Ed25519, ECDSA P-384 and P-521, each also in the
// certificate chain. The corpus has an accepted case for each in every
// S/MIME form, and a tampered one.
func (f *Fixture) SignerKinds() []SignerKind {
	return []SignerKind{
		{"rsa-pss-sha256", "RSASSA-PSS SHA-256 signer (MGF1 SHA-256, 32-byte salt), its certificate signed with RSASSA-PSS SHA-256 by the RSA intermediate",
			LeafSpec{SignatureAlgorithm: x509.SHA256WithRSAPSS},
			SigAlg{PSS: true, PSSSalt: rsa.PSSSaltLengthEqualsHash}, f.Intermediate},
		{"rsa-pss-sha512", "RSASSA-PSS SHA-512 signer with the longest salt the key allows (190 bytes, as OpenSSL signs), its certificate signed with RSASSA-PSS SHA-512",
			LeafSpec{SignatureAlgorithm: x509.SHA512WithRSAPSS},
			SigAlg{Hash: crypto.SHA512, PSS: true, PSSSalt: rsa.PSSSaltLengthAuto}, f.Intermediate},
		{"ed25519", "Ed25519 signer (RFC 8419, SHA-512 message digest), its certificate signed with Ed25519 by the Ed25519 intermediate, which the root signed with RSASSA-PSS SHA-256",
			LeafSpec{Key: f.Ed25519Key, EdIssuer: true},
			SigAlg{Hash: crypto.SHA512}, f.EdIntermediate},
		{"ecdsa-p384", "ECDSA P-384 signer with SHA-384, its certificate signed with ECDSA SHA-384 by the P-256 intermediate",
			LeafSpec{Key: f.P384Key, ECIssuer: true, SignatureAlgorithm: x509.ECDSAWithSHA384},
			SigAlg{Hash: crypto.SHA384}, f.ECIntermediate},
		{"ecdsa-p521", "ECDSA P-521 signer with SHA-512, its certificate signed with ECDSA SHA-512 by the P-256 intermediate",
			LeafSpec{Key: f.P521Key, ECIssuer: true, SignatureAlgorithm: x509.ECDSAWithSHA512},
			SigAlg{Hash: crypto.SHA512}, f.ECIntermediate},
	}
}

// signerCases adds, for each SignerKind, an accepted case in every S/MIME
// form.
func (b *caseBuilder) signerCases() {
	for i, k := range b.f.SignerKinds() {
		for j, form := range smimeForms() {
			domain := DKIMDomains[(i+j)%len(DKIMDomains)]
			c := Case{Name: "ok-" + k.Name + "-" + form.name, Reason: ReasonOK, Address: k.Name + "." + form.name + "@" + domain,
				Description: form.desc + "; " + k.Description}
			leaf := k.Leaf
			leaf.Address, leaf.SubjectEmail = c.Address, true
			bag := []*x509.Certificate{k.Issuer}
			var enc *x509.Certificate
			var err error
			if DefaultKeyUsage(leafKey(b.f, leaf).Public())&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) == 0 {
				// A key that only signs (Ed25519): the sender's
				// encryption certificate travels beside it, RSA.
				c.Description += "; an RSA encryption certificate for the address in the bag"
				enc, err = b.f.IssueLeaf(LeafSpec{Address: c.Address, SubjectEmail: true, Key: b.f.DecoyKey})
				bag = append(bag, b.f.Intermediate, enc)
			}
			var data []byte
			if err == nil {
				data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: &leaf,
					cms: cmsParams{bag: bag, alg: k.Alg}, smime: form.opts, dkim: domain})
			}
			b.addEncryption(c, data, err, enc)
		}
	}
}

// rejectedSignerCases adds, for each SignerKind, a message altered after
// signing (in a form of its own), and the weak signatures the verifier
// refuses.
func (b *caseBuilder) rejectedSignerCases() {
	f := b.f
	forms := smimeForms()
	tamperForms := []smimeForm{forms[0], forms[1], forms[2], forms[3], forms[5]}
	for i, k := range f.SignerKinds() {
		form := tamperForms[i%len(tamperForms)]
		addr := "tampered." + k.Name + "@example.com"
		c := Case{Name: "signature-invalid-" + k.Name, Reason: ReasonSignatureInvalid,
			Description: form.desc + "; " + k.Description + "; the signed content altered after signing ($100 became $900)"}
		leaf := k.Leaf
		leaf.Address, leaf.SubjectEmail = addr, true
		opts := form.opts
		if opts.opaque {
			opts.post = func(der []byte) ([]byte, error) { return alter(der), nil }
		} else {
			opts.tamper = alter
		}
		data, err := b.signed(signedSpec{from: []string{addr}, subject: subj(c), inner: textEntity("Please pay invoice 1234: $100."),
			leaf: &leaf, cms: cmsParams{bag: []*x509.Certificate{k.Issuer}, alg: k.Alg}, smime: opts, dkim: "example.com"})
		b.add(c, data, err)
	}

	c := Case{Name: "signature-invalid-weak-sha1", Reason: ReasonSignatureInvalid,
		Description: "RSA PKCS #1 v1.5 signature with SHA-1 (as S/MIME v3 clients signed): a valid signature, refused as weak"}
	data, err := b.signed(signedSpec{from: []string{"weak.sha1@example.com"}, subject: subj(c),
		leaf: leaf("weak.sha1@example.com"), cms: cmsParams{alg: SigAlg{Hash: crypto.SHA1}}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "signature-invalid-weak-rsa-pss-salt", Reason: ReasonSignatureInvalid,
		Description: "RSASSA-PSS SHA-256 signature with a 16-byte salt, shorter than the hash: a valid signature, refused as weak"}
	data, err = b.signed(signedSpec{from: []string{"weak.salt@example.net"}, subject: subj(c),
		leaf: leaf("weak.salt@example.net"), cms: cmsParams{alg: SigAlg{PSS: true, PSSSalt: 16}}, dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "signature-invalid-weak-rsa-1024", Reason: ReasonSignatureInvalid,
		Description: "RSA-1024 signer, SHA-256: a valid signature, refused as weak (at least 2,048 bits)"}
	data, err = b.signed(signedSpec{from: []string{"weak.rsa1024@example.org"}, subject: subj(c),
		leaf: &LeafSpec{Address: "weak.rsa1024@example.org", SubjectEmail: true, Key: f.WeakRSAKey}, dkim: "example.org"})
	b.add(c, data, err)

	c = Case{Name: "cert-untrusted-weak-sha1", Reason: ReasonCertUntrusted,
		Description: "a valid SHA-256 CMS signature, but the signer's certificate is signed with SHA-1 by the intermediate: no acceptable chain"}
	data, err = b.signed(signedSpec{from: []string{"weak.cert@example.com"}, subject: subj(c),
		leaf: &LeafSpec{Address: "weak.cert@example.com", SubjectEmail: true, SignatureAlgorithm: x509.SHA1WithRSA}, dkim: "example.com"})
	b.add(c, data, err)
}

// leafKey is the key a LeafSpec's certificate is issued for.
func leafKey(f *Fixture, spec LeafSpec) crypto.Signer {
	if spec.Key != nil {
		return spec.Key
	}
	return f.LeafKey
}

// alter changes the amount of the tampered cases' invoice, in the signed
// part or in the CMS that encapsulates it (same length: the DER stays
// well-formed).
func alter(b []byte) []byte {
	return bytes.Replace(b, []byte("$100"), []byte("$900"), 1)
}
