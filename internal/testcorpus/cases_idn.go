package testcorpus

// The cases of internationalised addresses: a From with UTF-8 in it (RFC
// 6532 §3.2), its certificate's address a SubjectAltName otherName
// SmtpUTF8Mailbox (RFC 9598 §3: the local part as written, the domain in
// A-labels), DKIM d= the domain's A-labels. The address a certificate is
// stored under: the domain in A-labels, a non-ASCII local part as written.

// idnLeaf is a certificate whose only address is the SmtpUTF8Mailbox box.
func idnLeaf(box, cn string) *LeafSpec {
	return &LeafSpec{Address: box, CommonName: cn, NoSAN: true, SmtpUTF8Mailboxes: []string{box}}
}

// idnCases adds the accepted cases of internationalised addresses.
func (b *caseBuilder) idnCases() {
	c := Case{Name: "ok-smtputf8-mailbox", Reason: ReasonOK, Address: "jörg@" + IDNDomain,
		Description: "From Jörg Müller <jörg@bücher.example> in UTF-8 (RFC 6532), certificate SAN otherName SmtpUTF8Mailbox jörg@xn--bcher-kva.example (RFC 9598), DKIM d=xn--bcher-kva.example"}
	data, err := b.signed(signedSpec{from: []string{"Jörg Müller <jörg@" + IDNDomainU + ">"}, subject: subj(c),
		leaf: idnLeaf(c.Address, "Jörg Müller"), dkim: IDNDomain})
	b.add(c, data, err)

	c = Case{Name: "ok-smtputf8-a-label-from", Reason: ReasonOK, Address: "李雷@" + IDNDomain,
		Description: "From 李雷@xn--bcher-kva.example (the domain already in A-labels), opaque signed-data, certificate with an rfc822Name for an ASCII address and a SmtpUTF8Mailbox for this one"}
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c),
		leaf:  &LeafSpec{Address: "lilei@" + IDNDomain, CommonName: "Li Lei", SmtpUTF8Mailboxes: []string{c.Address}},
		smime: smimeOpts{opaque: true}, dkim: IDNDomain})
	b.add(c, data, err)

	c = Case{Name: "ok-smtputf8-ascii-domain", Reason: ReasonOK, Address: "δοκιμή@example.com",
		Description: "From δοκιμή@example.com (a Greek local part, an ASCII domain), ECDSA signer, SmtpUTF8Mailbox δοκιμή@example.com, DKIM d=example.com"}
	l := idnLeaf(c.Address, "Δοκιμή")
	l.Key = b.f.ECKey
	data, err = b.signed(signedSpec{from: []string{c.Address}, subject: subj(c), leaf: l, dkim: "example.com"})
	b.add(c, data, err)

	c = Case{Name: "ok-idn-domain-rfc822", Reason: ReasonOK, Address: "anna@" + IDNDomain,
		Description: "From Anna <Anna@Bücher.example> (an ASCII local part, a U-label domain), certificate rfc822Name anna@xn--bcher-kva.example: compared in A-labels, ASCII case folded"}
	data, err = b.signed(signedSpec{from: []string{"Anna <Anna@B" + IDNDomainU[1:] + ">"}, subject: subj(c),
		leaf: leaf(c.Address), dkim: IDNDomain})
	b.add(c, data, err)
}

// idnRejectedCases adds the refused cases of internationalised addresses.
func (b *caseBuilder) idnRejectedCases() {
	for _, r := range []struct {
		name, reason, from, box, dkim, desc string
	}{
		{"from-cert-mismatch-smtputf8", ReasonFromCertMismatch, "jörg.other@" + IDNDomainU, "jürgen@" + IDNDomain, IDNDomain,
			"From jörg.other@bücher.example (DKIM passes), SmtpUTF8Mailbox jürgen@xn--bcher-kva.example"},
		{"from-cert-mismatch-smtputf8-nfd", ReasonFromCertMismatch, "jörg.nfd@" + IDNDomainU, "jo\u0308rg.nfd@" + IDNDomain, IDNDomain,
			"From jörg.nfd@ in NFC, the SmtpUTF8Mailbox the same letters in NFD (o + U+0308): the local part is compared octet for octet, not normalised (RFC 9598 §5, §7)"},
		{"from-cert-mismatch-smtputf8-case", ReasonFromCertMismatch, "Jörg.Case@" + IDNDomainU, "jörg.case@" + IDNDomain, IDNDomain,
			"From Jörg.Case@, SmtpUTF8Mailbox jörg.case@: a non-ASCII local part is not case-folded (RFC 9598 §5)"},
		{"from-cert-mismatch-smtputf8-u-label", ReasonFromCertMismatch, "jörg.u@" + IDNDomainU, "jörg.u@" + IDNDomainU, IDNDomain,
			"From jörg.u@bücher.example, SmtpUTF8Mailbox jörg.u@bücher.example with its domain in U-labels (RFC 8398's form), which RFC 9598 §3 no longer allows"},
		{"from-cert-mismatch-smtputf8-ascii", ReasonFromCertMismatch, "ascii.box@example.com", "ascii.box@example.com", "example.com",
			"From ascii.box@example.com, the certificate's only address a SmtpUTF8Mailbox with that ASCII address: RFC 9598 §3 puts one in an rfc822Name, and a SmtpUTF8Mailbox escapes the name constraints an rfc822Name obeys"},
		{"invalid-from-utf8-nfd", ReasonInvalidFromAddress, "jo\u0308rg.decomposed@" + IDNDomainU, "jo\u0308rg.decomposed@" + IDNDomain, IDNDomain,
			"From jörg with the umlaut as a combining character (NFD): refused, not normalised, though certificate and DKIM match it"},
		{"invalid-from-utf8-bidi", ReasonInvalidFromAddress, "jörg\u202egpj.exe@" + IDNDomainU, "jörg\u202egpj.exe@" + IDNDomain, IDNDomain,
			"From with a RIGHT-TO-LEFT OVERRIDE (U+202E) in the local part, certificate and DKIM matching"},
		{"invalid-from-utf8-mixed-script", ReasonInvalidFromAddress, "p\u0430ypal@example.com", "p\u0430ypal@example.com", "example.com",
			"From pаypal@example.com, its а Cyrillic (U+0430) among Latin letters: a look-alike (UTS #39), certificate and DKIM matching"},
		{"dkim-domain-mismatch-idn", ReasonDKIMDomainMismatch, "jörg.dkim@" + IDNDomainU, "jörg.dkim@" + IDNDomain, "example.com",
			"From jörg.dkim@bücher.example, DKIM d=example.com only, certificate matching"},
	} {
		c := Case{Name: r.name, Reason: r.reason, Description: r.desc}
		data, err := b.signed(signedSpec{from: []string{r.from}, subject: subj(c), leaf: idnLeaf(r.box, "IDN test"), dkim: r.dkim})
		b.add(c, data, err)
	}
}
