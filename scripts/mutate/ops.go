package main

import (
	"bytes"
	"strings"
)

// op is one kind of mutation. Its function returns the mutated message, or
// nil when it does not apply to this one (another op is drawn then).
type op struct {
	name   string
	weight int
	fn     func(mu *mutator, b []byte) []byte
}

// ops are the mutations drawn from, by weight.
var ops = []op{
	// Bytes.
	{"flip", 3, opFlip(false)},
	{"flip-body", 4, opFlip(true)},
	{"trunc", 2, opTrunc(false)},
	{"trunc-body", 3, opTrunc(true)},
	{"insert", 2, opInsert},
	{"delete", 2, opDelete},
	{"dup-range", 1, opDupRange},
	// Header fields.
	{"hdr-dup", 3, opHeaderDup},
	{"hdr-del", 4, opHeaderDel},
	{"hdr-shadow", 4, opHeaderShadow},
	{"hdr-add", 3, opHeaderAdd},
	{"hdr-case", 1, opHeaderCase},
	{"hdr-fold", 1, opHeaderFold},
	{"from", 5, opFrom},
	{"msgid", 2, opMessageID},
	{"dkim-tag", 4, opDKIMTag},
	// Line endings and white space.
	{"lf", 2, func(_ *mutator, b []byte) []byte { return toLF(b) }},
	{"crlf", 1, func(_ *mutator, b []byte) []byte { return toCRLF(b) }},
	{"mixed-eol", 2, opMixedEOL},
	{"cr", 1, opBareCR},
	{"trail-ws", 2, opTrailingWS},
	{"blank-end", 1, opBlankEnd},
	{"no-final-eol", 1, opNoFinalEOL},
	// MIME structure.
	{"bnd", 5, opBoundary},
	{"ctype", 4, opContentType},
	{"part-ctype", 2, opPartContentType},
	{"cte", 3, opCTE},
	{"b64", 6, opBase64},
	{"der", 6, opDER},
	{"swap-sig", 4, opSwapPart(1)},
	{"swap-content", 3, opSwapPart(0)},
	{"swap-body", 2, opSwapBody},
	{"nest", 1, opNest},
	{"concat", 1, opConcat},
	{"8bit", 1, opEightBit},
}

// pos returns a position in [lo, hi), or lo when the range is empty.
func (mu *mutator) pos(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + mu.r.IntN(hi-lo)
}

// pick returns one of choices.
func pick[T any](mu *mutator, choices ...T) T { return choices[mu.r.IntN(len(choices))] }

// bodyStart is the offset of the body in b, or 0 when there is none.
func bodyStart(b []byte) int {
	m := parse(b)
	if m.sep == nil {
		return 0
	}
	return len(b) - len(m.body)
}

func opFlip(bodyOnly bool) func(*mutator, []byte) []byte {
	return func(mu *mutator, b []byte) []byte {
		lo := 0
		if bodyOnly {
			lo = bodyStart(b)
		}
		if len(b) <= lo {
			return nil
		}
		for range 1 + mu.r.IntN(mu.pick3(1, 2, 8)) {
			i := mu.pos(lo, len(b))
			b[i] ^= byte(1 + mu.r.IntN(255))
		}
		return b
	}
}

// pick3 returns one of three values, the first most often.
func (mu *mutator) pick3(a, b, c int) int {
	switch n := mu.r.IntN(10); {
	case n < 6:
		return a
	case n < 9:
		return b
	}
	return c
}

func opTrunc(bodyOnly bool) func(*mutator, []byte) []byte {
	return func(mu *mutator, b []byte) []byte {
		lo := 0
		if bodyOnly {
			lo = bodyStart(b)
		}
		if len(b) <= lo+1 {
			return nil
		}
		return b[:mu.pos(lo+1, len(b))]
	}
}

var garbage = [][]byte{
	{0}, {0xff}, {0xc3}, []byte("\r"), []byte("\n"), []byte("\r\n\r\n"), []byte("--"),
	[]byte("="), []byte(":"), []byte(" "), []byte("\t"), []byte("é"), []byte("\xe2\x80"), []byte("=?utf-8?b?"),
}

func opInsert(mu *mutator, b []byte) []byte {
	i := mu.pos(0, len(b)+1)
	g := pick(mu, garbage...)
	return append(b[:i:i], append(bytes.Clone(g), b[i:]...)...)
}

func opDelete(mu *mutator, b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	i := mu.pos(0, len(b)-1)
	n := 1 + mu.r.IntN(min(64, len(b)-i))
	return append(b[:i:i], b[i+n:]...)
}

func opDupRange(mu *mutator, b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	i := mu.pos(0, len(b)-1)
	n := 1 + mu.r.IntN(min(200, len(b)-i))
	return append(b[:i+n:i+n], b[i:]...)
}

// importantFields are drawn more often by the header mutations.
var importantFields = []string{"From", "DKIM-Signature", "Content-Type", "MIME-Version", "Message-ID", "Date", "To", "Subject", "Content-Transfer-Encoding"}

// field picks a field index: half of the time one of importantFields.
func (mu *mutator) field(m *message) (int, bool) {
	if len(m.fields) == 0 {
		return 0, false
	}
	if mu.r.IntN(2) == 0 {
		if idx := m.find(pick(mu, importantFields...)); len(idx) > 0 {
			return pick(mu, idx...), true
		}
	}
	return mu.r.IntN(len(m.fields)), true
}

func opHeaderDup(mu *mutator, b []byte) []byte {
	m := parse(b)
	i, ok := mu.field(m)
	if !ok {
		return nil
	}
	f := bytes.Clone(m.fields[i])
	m.insert(pick(mu, 0, i, i+1, len(m.fields)), f)
	return m.bytes()
}

func opHeaderDel(mu *mutator, b []byte) []byte {
	m := parse(b)
	i, ok := mu.field(m)
	if !ok {
		return nil
	}
	m.remove(i)
	return m.bytes()
}

// shadows are fields put above the signed ones: a DKIM verifier takes the
// last of each name, a mail reader often the first.
var shadows = []string{
	"Content-Type: text/plain; charset=us-ascii",
	`Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="shadow"`,
	`Content-Type: multipart/mixed; boundary="shadow"`,
	"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
	"Content-Type: application/pkcs7-mime; smime-type=enveloped-data",
	"Content-Type: message/rfc822",
	"From: Shadow <shadow@example.com>",
	"From: rsa.detached@example.com",
	"Subject: shadowed",
	"Date: Thu, 01 Jan 1970 00:00:00 +0000",
	"Message-ID: <shadow@example.com>",
	"MIME-Version: 2.0",
	"To: other@example.net",
	"Content-Transfer-Encoding: base64",
	"Content-Transfer-Encoding: quoted-printable",
}

func opHeaderShadow(mu *mutator, b []byte) []byte {
	m := parse(b)
	m.insert(pick(mu, 0, min(1, len(m.fields))), []byte(pick(mu, shadows...)+m.eol()))
	return m.bytes()
}

// additions are unsigned fields, some malformed.
var additions = []string{
	"Received: from mx.example.net (mx.example.net [192.0.2.1]) by mx.certharvest.test; Sun, 31 May 2026 12:00:01 +0000",
	"X-Mailer: scripts/mutate",
	"Return-Path: <bounce@example.net>",
	"List-Id: <test.lists.example.org>",
	"X-Spam-Status: No, score=-0.1",
	"Authentication-Results: mx.certharvest.test; dkim=pass header.d=example.com",
	"this line has no colon",
	"Bad Name: a space in the name",
	": no name",
	"X-8bit: caf\xe9 \xff",
	"X-Nul: a\x00b",
	"X-Long: " + strings.Repeat("long ", 600),
	" a continuation line with nothing to continue",
	"X-Empty:",
	"Resent-From: resent@example.net",
	"Sender: sender@example.net",
	"Reply-To: reply@example.org",
}

func opHeaderAdd(mu *mutator, b []byte) []byte {
	m := parse(b)
	m.insert(mu.pos(0, len(m.fields)+1), []byte(pick(mu, additions...)+m.eol()))
	return m.bytes()
}

func opHeaderCase(mu *mutator, b []byte) []byte {
	m := parse(b)
	conv := pick(mu, strings.ToLower, strings.ToUpper)
	for i, f := range m.fields {
		if name, rest, ok := bytes.Cut(f, []byte(":")); ok && (mu.r.IntN(2) == 0 || len(m.fields) < 3) {
			m.fields[i] = append([]byte(conv(string(name))+":"), rest...)
		}
	}
	return m.bytes()
}

func opHeaderFold(mu *mutator, b []byte) []byte {
	m := parse(b)
	i, ok := mu.field(m)
	if !ok {
		return nil
	}
	f := m.fields[i]
	sp := bytes.LastIndexByte(f, ' ')
	if sp <= 0 {
		return nil
	}
	switch mu.r.IntN(3) {
	case 0: // fold at a space (the same field for DKIM's relaxed reading)
		f = append(f[:sp:sp], append([]byte(m.eol()+" "), f[sp+1:]...)...)
	case 1: // spaces around the colon and at the end
		f = bytes.Replace(f, []byte(":"), []byte(" :  "), 1)
		f = bytes.Replace(f, []byte(m.eol()), []byte(" \t"+m.eol()), 1)
	default: // unfold everything
		f = append(bytes.ReplaceAll(bytes.ReplaceAll(f, []byte("\r\n"), nil), []byte("\n"), nil), m.eol()...)
	}
	m.fields[i] = f
	return m.bytes()
}

// fromValues replace the From field's value.
var fromValues = []string{
	`"quoted local"@example.com`,
	".leading@example.com",
	"trailing.@example.com",
	"two..dots@example.com",
	"no-at-sign",
	"a@example.com, b@example.com",
	"undisclosed-recipients:;",
	"Group: member@example.com;",
	"üser@example.com",
	"\u017Fam@example.com",
	"RSA.DETACHED@EXAMPLE.COM",
	"Robin (comment) <rsa.detached@example.com>",
	"=?utf-8?q?Robin_S=C3=A9nder?= <rsa.detached@example.com>",
	"<ecdsa.detached@example.com>",
	"bob@example.com",
	"mallory@example.com",
	"opaque@example.com",
	"someone@sub.example.com",
	"someone@example.com.",
	"someone@[192.0.2.1]",
	"",
	"<>",
	"a@b@example.com",
	"Robin <rsa.detached@example.com",
	strings.Repeat("x", 300) + "@example.com",
}

func opFrom(mu *mutator, b []byte) []byte {
	m := parse(b)
	v := pick(mu, fromValues...)
	idx := m.find("From")
	f := []byte("From: " + v + m.eol())
	if len(idx) == 0 {
		m.insert(0, f)
	} else {
		m.fields[idx[0]] = f
	}
	return m.bytes()
}

var messageIDs = []string{
	"<" + strings.Repeat("long", 300) + "@example.com>",
	"<a\x01b@example.com>",
	"<caf\xe9@example.com>",
	"no-angle-brackets@example.com",
	"",
	"<a@example.com> <b@example.com>",
}

func opMessageID(mu *mutator, b []byte) []byte {
	m := parse(b)
	idx := m.find("Message-ID")
	if len(idx) == 0 || mu.r.IntN(4) == 0 {
		m.insert(0, []byte("Message-ID: "+pick(mu, messageIDs...)+m.eol()))
	} else if mu.r.IntN(3) == 0 {
		m.remove(idx[0])
	} else {
		m.fields[idx[0]] = []byte("Message-ID: " + pick(mu, messageIDs...) + m.eol())
	}
	return m.bytes()
}

// dkimTagEdits change one thing in a DKIM-Signature field.
var dkimTagEdits = []func(mu *mutator, f string) string{
	func(mu *mutator, f string) string { return flipAfter(mu, f, "b=") },
	func(mu *mutator, f string) string { return flipAfter(mu, f, "bh=") },
	func(_ *mutator, f string) string { return replaceTag(f, "d", "example.net") },
	func(_ *mutator, f string) string { return replaceTag(f, "d", "unknown.example") },
	func(_ *mutator, f string) string { return replaceTag(f, "s", "nosuch") },
	func(_ *mutator, f string) string { return replaceTag(f, "a", "rsa-sha1") },
	func(_ *mutator, f string) string { return replaceTag(f, "a", "rsa-md5") },
	func(_ *mutator, f string) string { return replaceTag(f, "v", "2") },
	func(_ *mutator, f string) string { return replaceTag(f, "c", "simple/simple") },
	func(_ *mutator, f string) string { return replaceTag(f, "c", "bogus") },
	func(_ *mutator, f string) string { return replaceTag(f, "h", "To:Subject") },
	func(_ *mutator, f string) string { return replaceTag(f, "t", "99999999999") },
	func(_ *mutator, f string) string { return strings.Replace(f, "v=1;", "v=1; x=1000000000;", 1) },
	func(_ *mutator, f string) string { return strings.Replace(f, "v=1;", "v=1; l=10;", 1) },
	func(_ *mutator, f string) string { return strings.Replace(f, "v=1;", "v=1; i=@other.example;", 1) },
	func(_ *mutator, f string) string { return strings.Replace(f, "v=1;", "v=1; v=1;", 1) },
	func(_ *mutator, f string) string { return strings.Replace(f, "b=", "b=!!", 1) },
	func(_ *mutator, f string) string { return f[:len(f)/2] + "\r\n" },
	func(_ *mutator, f string) string { return "DKIM-Signature: garbage\r\n" },
	func(_ *mutator, f string) string { return "DKIM-Signature:\r\n" },
}

// flipAfter changes one base64 character of the tag value that follows
// tag.
func flipAfter(mu *mutator, f, tag string) string {
	i := strings.Index(f, " "+tag)
	if i < 0 {
		i = strings.Index(f, ";"+tag)
	}
	if i < 0 {
		return f
	}
	i += 1 + len(tag)
	end := strings.IndexByte(f[i:], ';')
	if end < 0 {
		end = len(f) - i
	}
	var cands []int
	for j := i; j < i+end; j++ {
		if c := f[j]; c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			cands = append(cands, j)
		}
	}
	if len(cands) == 0 {
		return f
	}
	j := pick(mu, cands...)
	c := f[j] ^ 0x20 // the other case: still base64, another value
	return f[:j] + string(c) + f[j+1:]
}

// replaceTag sets the value of a tag of a DKIM-Signature field.
func replaceTag(f, tag, value string) string {
	for _, sep := range []string{" ", ";", "\t", "\n"} {
		i := strings.Index(f, sep+tag+"=")
		if i < 0 {
			continue
		}
		i += len(sep) + len(tag) + 1
		end := strings.IndexByte(f[i:], ';')
		if end < 0 {
			return f[:i] + value + "\r\n"
		}
		return f[:i] + value + f[i+end:]
	}
	return f
}

func opDKIMTag(mu *mutator, b []byte) []byte {
	m := parse(b)
	idx := m.find("DKIM-Signature")
	if len(idx) == 0 {
		return nil
	}
	i := pick(mu, idx...)
	f := pick(mu, dkimTagEdits...)(mu, string(m.fields[i]))
	if m.eol() == "\n" {
		f = strings.ReplaceAll(f, "\r\n", "\n")
	}
	m.fields[i] = []byte(f)
	return m.bytes()
}

// lines cuts b after each LF.
func lines(b []byte) [][]byte { return bytes.SplitAfter(b, []byte("\n")) }

func opMixedEOL(mu *mutator, b []byte) []byte {
	var out bytes.Buffer
	for _, l := range lines(b) {
		switch {
		case mu.r.IntN(2) == 0:
			out.Write(l)
		case bytes.HasSuffix(l, []byte("\r\n")):
			out.Write(l[:len(l)-2])
			out.WriteByte('\n')
		case bytes.HasSuffix(l, []byte("\n")):
			out.Write(l[:len(l)-1])
			out.WriteString("\r\n")
		default:
			out.Write(l)
		}
	}
	return out.Bytes()
}

func opBareCR(mu *mutator, b []byte) []byte {
	ls := lines(b)
	for range 1 + mu.r.IntN(3) {
		i := mu.r.IntN(len(ls))
		l := ls[i]
		switch {
		case bytes.HasSuffix(l, []byte("\r\n")):
			ls[i] = append(bytes.Clone(l[:len(l)-2]), '\r')
		case bytes.HasSuffix(l, []byte("\n")):
			ls[i] = append(bytes.Clone(l[:len(l)-1]), '\r')
		}
	}
	return bytes.Join(ls, nil)
}

func opTrailingWS(mu *mutator, b []byte) []byte {
	ls := lines(b)
	for i, l := range ls {
		if mu.r.IntN(4) != 0 || !bytes.HasSuffix(l, []byte("\n")) {
			continue
		}
		cut := len(l) - 1
		if bytes.HasSuffix(l, []byte("\r\n")) {
			cut--
		}
		ls[i] = append(append(bytes.Clone(l[:cut]), pick(mu, " ", "\t", "  \t ")...), l[cut:]...)
	}
	return bytes.Join(ls, nil)
}

func opBlankEnd(mu *mutator, b []byte) []byte {
	eol := parse(b).eol()
	return append(b, strings.Repeat(eol, 1+mu.r.IntN(5))...)
}

func opNoFinalEOL(_ *mutator, b []byte) []byte {
	return bytes.TrimRight(b, "\r\n")
}
