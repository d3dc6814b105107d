package testcorpus

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Reason codes the verifier reports, and the action for an accepted
// message whose address is new.
const (
	ReasonOK                 = "ok"
	ReasonMessageMalformed   = "message_malformed"
	ReasonMultipleFrom       = "multiple_from"
	ReasonInvalidFromAddress = "invalid_from_address"
	ReasonDKIMMissing        = "dkim_missing"
	ReasonDKIMInvalid        = "dkim_invalid"
	ReasonDKIMDomainMismatch = "dkim_domain_mismatch"
	ReasonNoSignature        = "no_signature"
	ReasonSignatureMalformed = "signature_malformed"
	ReasonSignatureInvalid   = "signature_invalid"
	ReasonCertUntrusted      = "cert_untrusted"
	ReasonCertExpired        = "cert_expired"
	ReasonCertNotYetValid    = "cert_not_yet_valid"
	ReasonCertWrongEKU       = "cert_wrong_eku"
	ReasonFromCertMismatch   = "from_cert_mismatch"
	ReasonCertNoEncryption   = "cert_no_encryption"

	ActionStored = "stored"
)

// Case is one test message with its expected verdict.
type Case struct {
	// Name is a short kebab-case identifier, unique in the corpus.
	Name string
	// Reason is the expected reason code (Reason* constants).
	Reason string
	// Action is the expected action for accepted messages (ActionStored:
	// every accepted case has an address of its own); empty for rejected
	// ones.
	Action string
	// Data is the raw message (CRLF line endings unless stated).
	Data []byte
	// Description says what the case exercises.
	Description string
	// Address is the address a certificate is stored under for accepted
	// cases (lower case); empty for rejected ones.
	Address string
	// EncryptionCert is the certificate (DER) stored for Address when it
	// is not the signer's (a dual-key sender); nil when the signer's is.
	EncryptionCert []byte
}

// Cases returns the corpus: one Case per behaviour, accepted ones first.
// The messages are generated once, by New; the returned slice and data are
// copies.
func (f *Fixture) Cases() []Case {
	out := make([]Case, len(f.cases))
	for i, c := range f.cases {
		c.Data = bytes.Clone(c.Data)
		c.EncryptionCert = bytes.Clone(c.EncryptionCert)
		out[i] = c
	}
	return out
}

// caseBuilder accumulates cases and the first error.
type caseBuilder struct {
	f     *Fixture
	cases []Case
	err   error
}

func (b *caseBuilder) add(c Case, data []byte, err error) {
	if b.err != nil {
		return
	}
	if err != nil {
		b.err = fmt.Errorf("testcorpus: case %s: %w", c.Name, err)
		return
	}
	c.Data = data
	if c.Reason == ReasonOK {
		c.Action = ActionStored
	}
	b.cases = append(b.cases, c)
}

// signedSpec describes an S/MIME + DKIM message built by signed.
type signedSpec struct {
	from     []string  // From field values
	subject  string    // defaults to the case description
	inner    []byte    // signed entity; defaults to a short text/plain
	leaf     *LeafSpec // certificate to issue (nil: use cms as is)
	cms      cmsParams // signer; cert/key filled from leaf if nil
	smime    smimeOpts
	dkim     string   // DKIM d= domain; "" for no DKIM-Signature
	dkimKeys []string // DKIM h=; default DKIMHeaderKeys
	extra    []field
	// wrap, if set, receives the S/MIME entity (fields, body) and returns
	// the top-level content fields and body (e.g. a mailing list footer).
	wrap func(fields []field, body []byte) ([]field, []byte)
	// afterDKIM alters the final message (CRLF) after DKIM signing.
	afterDKIM func([]byte) []byte
}

func (b *caseBuilder) signed(s signedSpec) ([]byte, error) {
	f := b.f
	if s.inner == nil {
		s.inner = textEntity("Hello,", "", "this message is S/MIME signed and DKIM signed.", "", "-- ", "certharvest test corpus")
	}
	if s.cms.signingTime.IsZero() {
		s.cms.signingTime = SigningTime
	}
	if s.leaf != nil {
		cert, err := f.IssueLeaf(*s.leaf)
		if err != nil {
			return nil, err
		}
		key := s.leaf.Key
		if key == nil {
			key = f.LeafKey
		}
		s.cms.cert, s.cms.key = cert, key
		if s.cms.bag == nil {
			s.cms.bag = []*x509.Certificate{f.Intermediate}
		}
	}
	fields, body, err := f.smimeEntity(s.inner, s.cms, s.smime)
	if err != nil {
		return nil, err
	}
	if s.wrap != nil {
		fields, body = s.wrap(fields, body)
	}
	msg := entity(head{from: s.from, subject: s.subject, date: s.cms.signingTime, extra: s.extra}.fields(fields), body)
	if s.dkim != "" {
		if msg, err = f.DKIMSign(msg, s.dkim, s.dkimKeys...); err != nil {
			return nil, err
		}
	}
	if s.afterDKIM != nil {
		msg = s.afterDKIM(msg)
	}
	return msg, nil
}

// plain builds a DKIM-signed message without S/MIME.
func (b *caseBuilder) plain(from, subject, domain string, content []field, body []byte) ([]byte, error) {
	return b.f.DKIMSign(entity(head{from: []string{from}, subject: subject}.fields(content), body), domain)
}

func subj(c Case) string { return "certharvest test: " + c.Name }

func leaf(addr string) *LeafSpec { return &LeafSpec{Address: addr, SubjectEmail: true} }

// longText returns about n bytes of CRLF text.
func longText(n int) []byte {
	var b bytes.Buffer
	for i := 1; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Line %04d: the quick brown fox jumps over the lazy dog, again and again.\r\n", i)
	}
	return b.Bytes()
}

func (f *Fixture) buildCases() ([]Case, error) {
	b := &caseBuilder{f: f}
	var data []byte
	var err error

	// ---- accepted ----

	c := Case{Name: "ok-rsa-detached", Reason: ReasonOK, Address: "rsa.detached@example.com",
		Description: "multipart/signed, RSA-2048 signer (SAN and subject emailAddress), intermediate in the bag, DKIM d=example.com"}
	data, err = b.signed(signedSpec{from: []string{"Robin Sender <rsa.detached@example.com>"}, subject: subj(c),
		leaf: leaf(c.Address), dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-ecdsa-detached", Reason: ReasonOK, Address: "ecdsa.detached@example.com",
		Description: "multipart/signed, ECDSA P-256 signer, quoted-printable UTF-8 signed part"}
	qp := entity([]field{
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
	}, []byte("Gr=C3=BC=C3=9Fe aus K=C3=B6ln,=\r\nthis line was soft-broken; the signature covers the encoded form.\r\n"))
	l := leaf(c.Address)
	l.Key = f.ECKey
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), inner: qp, leaf: l, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-opaque", Reason: ReasonOK, Address: "opaque@example.com",
		Description: "application/pkcs7-mime; smime-type=signed-data (content inside the CMS)"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: leaf(c.Address),
		smime: smimeOpts{opaque: true}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-x-pkcs7-signature", Reason: ReasonOK, Address: "x.signature@example.net",
		Description: "multipart/signed with the legacy protocol application/x-pkcs7-signature, DKIM d=example.net"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: leaf(c.Address),
		smime: smimeOpts{legacy: true}, dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "ok-x-pkcs7-mime", Reason: ReasonOK, Address: "x.mime@example.org",
		Description: "opaque signed-data with the legacy type application/x-pkcs7-mime, DKIM d=example.org"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: leaf(c.Address),
		smime: smimeOpts{opaque: true, legacy: true}, dkim: "example.org"})
	b.add(c, data, err)

	c = Case{Name: "ok-ber-detached", Reason: ReasonOK, Address: "thunderbird@example.com",
		Description: "Thunderbird style: BER CMS with indefinite lengths, signed part is a multipart/mixed with an attachment"}
	innerBoundary := "------------" + randDigits(24)
	mixed := entity([]field{{"Content-Type", "multipart/mixed;" + crlf + ` boundary="` + innerBoundary + `"`}},
		multipartBody(innerBoundary, "This is a multi-part message in MIME format.",
			entity([]field{
				{"Content-Type", "text/plain; charset=UTF-8; format=flowed"},
				{"Content-Transfer-Encoding", "7bit"},
			}, []byte("Hi,\r\n\r\nthe notes are attached.\r\n\r\nThunder\r\n")),
			entity([]field{
				{"Content-Type", `application/octet-stream; name="notes.bin"`},
				{"Content-Disposition", `attachment; filename="notes.bin"`},
				{"Content-Transfer-Encoding", "base64"},
			}, base64Lines(longText(300)))))
	data, err = b.signed(signedSpec{from: []string{"Thunder Bird <thunderbird@example.com>"}, subject: subj(c),
		inner: mixed, leaf: leaf(c.Address), smime: smimeOpts{ber: true, thunderbird: true}, dkim: "example.com",
		extra: []field{{"User-Agent", "Mozilla Thunderbird"}, {"Content-Language", "en-US"}}})
	b.add(c, data, err)

	c = Case{Name: "ok-ber-opaque-chunked", Reason: ReasonOK, Address: "stream@example.org",
		Description: "opaque signed-data in streaming BER (openssl smime -stream): indefinite lengths, eContent as 1000-byte OCTET STRING chunks, content over 4096 bytes"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c),
		inner: entity([]field{{"Content-Type", "text/plain; charset=us-ascii"}}, longText(5000)),
		leaf:  leaf(c.Address), smime: smimeOpts{opaque: true, ber: true, chunk: 1000}, dkim: "example.org"})
	b.add(c, data, err)

	c = Case{Name: "ok-bare-lf", Reason: ReasonOK, Address: "bare.lf@example.net",
		Description: "the whole message with bare LF line endings (as archived on Unix); DKIM and CMS were computed over the CRLF form"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: leaf(c.Address),
		dkim: "example.net", afterDKIM: ToLF})
	b.add(c, data, err)

	c = Case{Name: "ok-san-only", Reason: ReasonOK, Address: "san.only@example.com",
		Description: "the address only in the SAN rfc822Name (subject CN is a display name, no emailAddress)"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c),
		leaf: &LeafSpec{Address: c.Address, CommonName: "SAN Only"}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-subject-email-only", Reason: ReasonOK, Address: "subject.email@example.net",
		Description: "the address only in the subject emailAddress attribute (no SAN extension)"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c),
		leaf: &LeafSpec{Address: c.Address, CommonName: "Subject Email Only", NoSAN: true, SubjectEmail: true}, dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "ok-mixed-case-from", Reason: ReasonOK, Address: "carol.mixed@example.com",
		Description: "From Carol.Mixed@Example.COM, certificate for carol.mixed@example.com, DKIM d=example.com"}
	data, err = b.signed(signedSpec{from: []string{"Carol Mixed <Carol.Mixed@Example.COM>"}, subject: subj(c),
		leaf: leaf(c.Address), dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-mailing-list-footer", Reason: ReasonOK, Address: "list.member@example.org",
		Description: "a mailing list wrapped the signed message as first part of a multipart/mixed and appended a footer; DKIM signed after wrapping"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: "[list] " + subj(c), leaf: leaf(c.Address),
		dkim: "example.org", extra: []field{{"List-Id", "<test.lists.example.org>"}},
		wrap: func(fields []field, body []byte) ([]field, []byte) {
			boundary := newBoundary("list")
			return []field{{"Content-Type", `multipart/mixed; boundary="` + boundary + `"`}},
				multipartBody(boundary, "", entity(fields, body), textEntity("_______________________________________________", "test mailing list", "https://lists.example.org/test"))
		}})
	b.add(c, data, err)

	// The S/MIME forms of the corpus, each given the *-signingtime-* cases
	// (a signingTime outside the certificate's validity).
	signingTimeForms := smimeForms()
	// Certificates valid at At, from a sender whose clock was reset.
	for i, form := range signingTimeForms {
		c = Case{Name: "ok-signingtime-" + form.name, Reason: ReasonOK, Address: "signingtime." + form.name + "@" + DKIMDomains[i%len(DKIMDomains)],
			Description: form.desc + "; signer certificate valid at At, signingTime 2000-01-01 (a sender's clock reset) before its validity: the signer's claim decides nothing"}
		data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: leaf(c.Address),
			cms: cmsParams{signingTime: SkewedSigningTime}, smime: form.opts, dkim: DKIMDomains[i%len(DKIMDomains)]})
		b.add(c, data, err)
	}

	// RSASSA-PSS, Ed25519, ECDSA P-384 and P-521, in every form.
	b.signerCases()

	// Dual-key senders (enccases.go).
	b.encryptionCases()

	// ---- rejected ----

	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'e', 'r', 't', 'h', 'a', 'r', 'v', 'e', 's', 't'}))
	garbage := func(n int) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = byte(rng.Uint32())
		}
		return out
	}

	c = Case{Name: "malformed-binary", Reason: ReasonMessageMalformed,
		Description: "random binary bytes, no header/body structure (no ':' anywhere)"}
	data = garbage(2048)
	for i := range data {
		if data[i] == ':' {
			data[i] = 0xff
		}
	}
	data[0] = 0
	b.add(c, data, nil)

	b.add(Case{Name: "malformed-empty", Reason: ReasonMessageMalformed, Description: "an empty file"}, []byte{}, nil)

	c = Case{Name: "multiple-from", Reason: ReasonMultipleFrom,
		Description: "two From fields (RFC 5322 §3.6 allows one); both DKIM-signed, signer certificate for the first"}
	data, err = b.signed(signedSpec{from: []string{"multi.one@example.com", "multi.two@example.com"}, subject: subj(c),
		leaf: leaf("multi.one@example.com"), dkim: "example.com",
		dkimKeys: append([]string{"From"}, DKIMHeaderKeys...)})
	b.add(c, data, err)

	c = Case{Name: "invalid-from-quoted", Reason: ReasonInvalidFromAddress,
		Description: `From "quoted local"@example.com: not a dot-atom local part (certificate and DKIM match it anyway)`}
	data, err = b.signed(signedSpec{from: []string{`"quoted local"@example.com`}, subject: subj(c),
		leaf: leaf(`"quoted local"@example.com`), dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "invalid-from-leading-dot", Reason: ReasonInvalidFromAddress,
		Description: "From .leading@example.com: a dot-atom cannot start with a dot (RFC 5322 §3.2.3)"}
	data, err = b.signed(signedSpec{from: []string{".leading@example.com"}, subject: subj(c),
		leaf: leaf(".leading@example.com"), dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "dkim-missing", Reason: ReasonDKIMMissing,
		Description: "valid S/MIME signature, no DKIM-Signature field"}
	data, err = b.signed(signedSpec{from: []string{"dkim.missing@example.com"}, subject: subj(c),
		leaf: leaf("dkim.missing@example.com")})
	b.add(c, data, err)

	c = Case{Name: "dkim-invalid", Reason: ReasonDKIMInvalid,
		Description: "DKIM-signed, then the body altered (the multipart preamble, so the S/MIME signature still verifies)"}
	data, err = b.signed(signedSpec{from: []string{"dkim.invalid@example.com"}, subject: subj(c),
		leaf: leaf("dkim.invalid@example.com"), dkim: "example.com",
		afterDKIM: func(m []byte) []byte {
			return bytes.Replace(m, []byte("This is an S/MIME signed message"), []byte("This is an S/MIME signed message, altered in transit"), 1)
		}})
	b.add(c, data, err)

	c = Case{Name: "dkim-domain-mismatch", Reason: ReasonDKIMDomainMismatch,
		Description: "From @example.com, valid DKIM signature with d=example.net"}
	data, err = b.signed(signedSpec{from: []string{"dkim.mismatch@example.com"}, subject: subj(c),
		leaf: leaf("dkim.mismatch@example.com"), dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "no-signature-plain", Reason: ReasonNoSignature,
		Description: "DKIM-signed plain text message"}
	data, err = b.plain("plain@example.com", subj(c), "example.com",
		[]field{{"Content-Type", "text/plain; charset=utf-8"}, {"Content-Transfer-Encoding", "7bit"}},
		[]byte("Just text, no S/MIME.\r\n"))
	b.add(c, data, err)

	c = Case{Name: "no-signature-fake-p7s", Reason: ReasonNoSignature,
		Description: "multipart/mixed with a text/plain attachment merely named smime.p7s"}
	boundary := newBoundary("mixed")
	data, err = b.plain("fake.p7s@example.net", subj(c), "example.net",
		[]field{{"Content-Type", `multipart/mixed; boundary="` + boundary + `"`}},
		multipartBody(boundary, "", textEntity("See attachment."), entity([]field{
			{"Content-Type", "text/plain; name=smime.p7s"},
			{"Content-Disposition", "attachment; filename=smime.p7s"},
			{"Content-Transfer-Encoding", "7bit"},
		}, []byte("this is not a signature\r\n"))))
	b.add(c, data, err)

	c = Case{Name: "no-signature-forwarded", Reason: ReasonNoSignature,
		Description: "plain message forwarding a valid signed message (same From address) as a message/rfc822 part"}
	fwd := "forwarder@example.org"
	var inner []byte
	inner, err = b.signed(signedSpec{from: []string{fwd}, subject: "the forwarded original", leaf: leaf(fwd), dkim: "example.org"})
	if err == nil {
		boundary = newBoundary("fwd")
		data, err = b.plain(fwd, subj(c), "example.org",
			[]field{{"Content-Type", `multipart/mixed; boundary="` + boundary + `"`}},
			multipartBody(boundary, "", textEntity("Forwarding the signed original below."),
				entity([]field{{"Content-Type", "message/rfc822"}, {"Content-Disposition", "inline"}}, inner)))
	}
	b.add(c, data, err)

	c = Case{Name: "signature-malformed", Reason: ReasonSignatureMalformed,
		Description: "multipart/signed whose smime.p7s is well-formed base64 of garbage bytes"}
	g := garbage(600)
	copy(g, []byte{0x30, 0x82, 0x02, 0x54})
	data, err = b.signed(signedSpec{from: []string{"garbage.sig@example.com"}, subject: subj(c),
		leaf: leaf("garbage.sig@example.com"), smime: smimeOpts{garbage: g}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "signature-invalid", Reason: ReasonSignatureInvalid,
		Description: "S/MIME-signed, then the signed part's body altered, then DKIM-signed (DKIM passes, the CMS digest does not match)"}
	data, err = b.signed(signedSpec{from: []string{"tampered@example.com"}, subject: subj(c),
		inner: textEntity("Please pay invoice 1234: $100."), leaf: leaf("tampered@example.com"), dkim: "example.com",
		smime: smimeOpts{tamper: func(p []byte) []byte { return bytes.Replace(p, []byte("$100"), []byte("$900"), 1) }}})
	b.add(c, data, err)

	c = Case{Name: "cert-untrusted", Reason: ReasonCertUntrusted,
		Description: "signer issued by a root that is not in the trust bundle (that root is in the certificate bag)"}
	data, err = b.signed(signedSpec{from: []string{"untrusted@example.com"}, subject: subj(c),
		leaf: &LeafSpec{Address: "untrusted@example.com", SubjectEmail: true, Untrusted: true},
		cms:  cmsParams{bag: []*x509.Certificate{f.UntrustedRoot}}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "cert-expired", Reason: ReasonCertExpired,
		Description: "signer certificate valid 2024-01-01..2025-01-01; signingTime 2024-06-01 is inside it, so only the chain at At fails"}
	data, err = b.signed(signedSpec{from: []string{"expired@example.net"}, subject: subj(c),
		leaf: &LeafSpec{Address: "expired@example.net", SubjectEmail: true, NotBefore: ExpiredNotBefore, NotAfter: ExpiredNotAfter},
		cms:  cmsParams{signingTime: ExpiredSigningTime}, dkim: "example.net"})
	b.add(c, data, err)

	c = Case{Name: "cert-not-yet-valid", Reason: ReasonCertNotYetValid,
		Description: "signer certificate valid 2027-01-01..2028-01-01; signingTime 2027-06-01 is inside it, so only the chain at At fails"}
	data, err = b.signed(signedSpec{from: []string{"future@example.org"}, subject: subj(c),
		leaf: &LeafSpec{Address: "future@example.org", SubjectEmail: true, NotBefore: FutureNotBefore, NotAfter: FutureNotAfter},
		cms:  cmsParams{signingTime: FutureSigningTime}, dkim: "example.org"})
	b.add(c, data, err)

	// What mail clients send when the certificate has expired or is not
	// yet valid: signingTime is the time of sending (SigningTime), outside
	// the certificate's validity. The verdict is the chain's at At, not a
	// broken signature.
	for i, form := range signingTimeForms {
		domain := DKIMDomains[i%len(DKIMDomains)]
		c = Case{Name: "cert-expired-signingtime-" + form.name, Reason: ReasonCertExpired,
			Description: form.desc + "; signer certificate valid 2024-01-01..2025-01-01, signingTime 2026-05-31 after it (the time of sending, as Outlook, Thunderbird, Apple Mail and gpgsm stamp it)"}
		addr := "expired." + form.name + "@" + domain
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c),
			leaf: &LeafSpec{Address: addr, SubjectEmail: true, NotBefore: ExpiredNotBefore, NotAfter: ExpiredNotAfter},
			cms:  cmsParams{signingTime: SigningTime}, smime: form.opts, dkim: domain})
		b.add(c, data, err)

		c = Case{Name: "cert-not-yet-valid-signingtime-" + form.name, Reason: ReasonCertNotYetValid,
			Description: form.desc + "; signer certificate valid 2027-01-01..2028-01-01, signingTime 2026-05-31 before it (the time of sending)"}
		addr = "future." + form.name + "@" + domain
		data, err = b.signed(signedSpec{from: []string{addr}, subject: subj(c),
			leaf: &LeafSpec{Address: addr, SubjectEmail: true, NotBefore: FutureNotBefore, NotAfter: FutureNotAfter},
			cms:  cmsParams{signingTime: SigningTime}, smime: form.opts, dkim: domain})
		b.add(c, data, err)
	}

	c = Case{Name: "cert-wrong-eku", Reason: ReasonCertWrongEKU,
		Description: "signer certificate with extended key usage clientAuth only (no emailProtection)"}
	data, err = b.signed(signedSpec{from: []string{"client.auth@example.com"}, subject: subj(c),
		leaf: &LeafSpec{Address: "client.auth@example.com", SubjectEmail: true, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "from-cert-mismatch", Reason: ReasonFromCertMismatch,
		Description: "From alice@example.com (DKIM passes), valid signer certificate for mallory@example.com"}
	data, err = b.signed(signedSpec{from: []string{"Alice <alice@example.com>"}, subject: subj(c),
		leaf: leaf("mallory@example.com"), dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "from-cert-mismatch-decoy", Reason: ReasonFromCertMismatch,
		Description: "signer certificate for mallory@example.com; the bag also holds (first) a valid certificate for the From address bob@example.com with another key"}
	var decoy *x509.Certificate
	decoy, err = f.IssueLeaf(LeafSpec{Address: "bob@example.com", SubjectEmail: true, Key: f.DecoyKey})
	if err == nil {
		data, err = b.signed(signedSpec{from: []string{"Bob <bob@example.com>"}, subject: subj(c),
			leaf: leaf("mallory@example.com"), cms: cmsParams{bag: []*x509.Certificate{f.Intermediate, decoy}},
			smime: smimeOpts{post: certFirst(decoy)}, dkim: "example.com"})
	}
	b.add(c, data, err)

	// Unicode simple case folding maps U+017F (ſ) to "s" and U+212A (the
	// Kelvin sign) to "k"; addresses fold ASCII letters only.
	c = Case{Name: "from-cert-mismatch-long-s", Reason: ReasonFromCertMismatch,
		Description: "From sam@example.com (DKIM passes), the signer certificate's only address is the subject emailAddress \u017Fam@example.com (long s, UTF8String)"}
	data, err = b.signed(signedSpec{from: []string{"Sam <sam@example.com>"}, subject: subj(c),
		leaf: &LeafSpec{Address: "\u017Fam@example.com", NoSAN: true, SubjectEmail: true, SubjectEmailUTF8: true}, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "from-cert-mismatch-kelvin", Reason: ReasonFromCertMismatch,
		Description: "From Kate@example.com (DKIM passes), the signer certificate's only address is the subject emailAddress \u212Aate@example.com (Kelvin sign, UTF8String)"}
	data, err = b.signed(signedSpec{from: []string{"Kate <Kate@example.com>"}, subject: subj(c),
		leaf: &LeafSpec{Address: "\u212Aate@example.com", NoSAN: true, SubjectEmail: true, SubjectEmailUTF8: true}, dkim: "example.com"})
	b.add(c, data, err)

	b.rejectedSignerCases()
	b.rejectedEncryptionCases()

	if b.err != nil {
		return nil, b.err
	}
	seen := map[string]bool{}
	for _, c := range b.cases {
		if seen[c.Name] {
			return nil, fmt.Errorf("testcorpus: duplicate case %s", c.Name)
		}
		seen[c.Name] = true
		if c.Address != "" && seen["addr:"+strings.ToLower(c.Address)] {
			return nil, fmt.Errorf("testcorpus: duplicate address %s", c.Address)
		}
		seen["addr:"+strings.ToLower(c.Address)] = true
	}
	return b.cases, nil
}
