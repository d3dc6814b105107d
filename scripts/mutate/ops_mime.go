package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// boundaryEdits damage a multipart body or its boundary parameter.
var boundaryEdits = []func(mu *mutator, m *message, mp *multipart, bnd string){
	func(mu *mutator, m *message, _ *multipart, bnd string) { // another boundary in the header
		setBoundary(m, bnd, flipChar(mu, bnd))
	},
	func(mu *mutator, _ *message, mp *multipart, bnd string) { // one delimiter line damaged
		i := mu.r.IntN(len(mp.delims))
		mp.delims[i] = bytes.Replace(mp.delims[i], []byte(bnd), []byte(flipChar(mu, bnd)), 1)
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { mp.closing = nil }, // no closing delimiter
	func(_ *mutator, _ *message, mp *multipart, bnd string) { // closed after the first part
		if len(mp.delims) > 1 {
			mp.delims[1] = bytes.Replace(mp.delims[1], []byte(bnd), []byte(bnd+"--"), 1)
		}
	},
	func(mu *mutator, _ *message, mp *multipart, _ string) { // transport padding
		for i, d := range mp.delims {
			text := bytes.TrimRight(d, "\r\n")
			mp.delims[i] = append(append(bytes.Clone(text), pick(mu, " ", "\t", "   ")...), d[len(text):]...)
		}
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { // an extra empty part
		mp.delims = append(mp.delims, mp.delims[0])
		mp.parts = append(mp.parts, []byte("\r\n"))
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { // the first delimiter lost
		mp.pre = append(mp.pre, mp.parts[0]...)
		mp.delims, mp.parts = mp.delims[1:], mp.parts[1:]
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { // the parts in the other order
		if len(mp.parts) > 1 {
			mp.parts[0], mp.parts[1] = mp.parts[1], mp.parts[0]
		}
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { // only the first part
		mp.delims, mp.parts = mp.delims[:1], mp.parts[:1]
	},
	func(_ *mutator, m *message, _ *multipart, bnd string) { // the quotes removed
		setBoundary(m, bnd, bnd)
	},
	func(_ *mutator, m *message, _ *multipart, bnd string) { // an empty boundary
		setBoundary(m, bnd, "")
	},
	func(_ *mutator, m *message, _ *multipart, bnd string) { // upper case
		setBoundary(m, bnd, strings.ToUpper(bnd))
	},
	func(_ *mutator, _ *message, mp *multipart, _ string) { // a delimiter in the preamble
		mp.pre = append(mp.pre, mp.delims[0]...)
	},
}

// setBoundary replaces the boundary parameter of the Content-Type field,
// without quotes when old and new are the same.
func setBoundary(m *message, old, new string) {
	idx := m.find("Content-Type")
	if len(idx) == 0 {
		return
	}
	f := string(m.fields[idx[0]])
	if old == new {
		f = strings.Replace(f, `"`+old+`"`, old, 1)
	} else {
		f = strings.Replace(f, old, new, 1)
	}
	m.fields[idx[0]] = []byte(f)
}

// flipChar changes one character of s (not empty).
func flipChar(mu *mutator, s string) string {
	if s == "" {
		return "x"
	}
	i := mu.r.IntN(len(s))
	c := byte('a' + mu.r.IntN(26))
	if s[i] == c {
		c = 'Z'
	}
	return s[:i] + string(c) + s[i+1:]
}

func opBoundary(mu *mutator, b []byte) []byte {
	m := parse(b)
	mp, ok := topMultipart(m)
	if !ok {
		return nil
	}
	ct, _ := m.value("Content-Type")
	pick(mu, boundaryEdits...)(mu, m, mp, boundaryOf(ct))
	m.body = mp.bytes()
	return m.bytes()
}

var protocolRE = regexp.MustCompile(`;\s*protocol="[^"]*"`)

// contentTypeEdits change the top-level Content-Type field.
var contentTypeEdits = []func(ct string) string{
	func(ct string) string {
		return strings.Replace(ct, "application/pkcs7-signature", "application/x-pkcs7-signature", 1)
	},
	func(ct string) string { return strings.Replace(ct, "pkcs7-signature", "pgp-signature", 1) },
	func(ct string) string { return protocolRE.ReplaceAllString(ct, "") },
	func(ct string) string { return strings.Replace(ct, "micalg=sha-256", "micalg=md5", 1) },
	func(ct string) string { return strings.Replace(ct, "micalg=sha-256", "micalg=bogus", 1) },
	func(ct string) string { return strings.Replace(ct, "multipart/signed", "multipart/mixed", 1) },
	func(ct string) string { return strings.Replace(ct, "multipart/signed", "multipart/alternative", 1) },
	func(ct string) string {
		return strings.Replace(ct, "smime-type=signed-data", "smime-type=enveloped-data", 1)
	},
	func(ct string) string {
		return strings.Replace(ct, "smime-type=signed-data", "smime-type=certs-only", 1)
	},
	func(ct string) string { return strings.Replace(ct, "; smime-type=signed-data", "", 1) },
	func(ct string) string { return strings.Replace(ct, "pkcs7-mime", "octet-stream", 1) },
	func(ct string) string { return strings.ToUpper(ct) },
	func(ct string) string { return strings.Replace(ct, "/", "", 1) },
	func(ct string) string { return strings.Replace(ct, `"`, "", 1) },
	func(ct string) string { return "Content-Type: text/plain\r\n" },
	func(ct string) string { return "Content-Type:\r\n" },
	func(ct string) string { return strings.Replace(ct, ";", "; charset=\"unterminated", 1) },
}

func opContentType(mu *mutator, b []byte) []byte {
	m := parse(b)
	idx := m.find("Content-Type")
	if len(idx) == 0 {
		return nil
	}
	ct := string(m.fields[idx[0]])
	n := pick(mu, contentTypeEdits...)(ct)
	if n == ct {
		return nil
	}
	if m.eol() == "\n" {
		n = strings.ReplaceAll(n, "\r\n", "\n")
	}
	m.fields[idx[0]] = []byte(n)
	return m.bytes()
}

// editPart applies fn to the header of part i of the top multipart body
// (the last part when i is negative).
func editPart(b []byte, i int, fn func(p *message)) []byte {
	m := parse(b)
	mp, ok := topMultipart(m)
	if !ok || len(mp.parts) == 0 {
		return nil
	}
	if i < 0 || i >= len(mp.parts) {
		i = len(mp.parts) - 1
	}
	p := parse(mp.parts[i])
	fn(p)
	mp.parts[i] = p.bytes()
	m.body = mp.bytes()
	return m.bytes()
}

var partTypes = []string{
	"application/octet-stream; name=smime.p7s",
	"application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
	"text/plain",
	"application/x-pkcs7-signature",
	"multipart/mixed; boundary=inner",
}

func opPartContentType(mu *mutator, b []byte) []byte {
	ct := pick(mu, partTypes...)
	return editPart(b, pick(mu, 0, -1), func(p *message) {
		f := []byte("Content-Type: " + ct + p.eol())
		if idx := p.find("Content-Type"); len(idx) > 0 {
			p.fields[idx[0]] = f
		} else {
			p.insert(0, f)
		}
	})
}

var transferEncodings = []string{"quoted-printable", "7bit", "8bit", "binary", "x-unknown", "BASE64", "base64", ""}

func opCTE(mu *mutator, b []byte) []byte {
	cte := pick(mu, transferEncodings...)
	set := func(p *message) {
		idx := p.find("Content-Transfer-Encoding")
		switch {
		case cte == "" && len(idx) > 0:
			p.remove(idx[0])
		case cte == "":
		case len(idx) > 0:
			p.fields[idx[0]] = []byte("Content-Transfer-Encoding: " + cte + p.eol())
		default:
			p.insert(len(p.fields), []byte("Content-Transfer-Encoding: "+cte+p.eol()))
		}
	}
	if out := editPart(b, pick(mu, 0, -1), set); out != nil {
		return out
	}
	m := parse(b) // an opaque message: its own header
	set(m)
	return m.bytes()
}

// base64Edits damage the base64 text of a signature.
var base64Edits = []func(mu *mutator, r []byte) []byte{
	func(mu *mutator, r []byte) []byte { // one character changed
		i := b64Index(mu, r)
		r[i] = pick(mu, []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")...)
		return r
	},
	func(mu *mutator, r []byte) []byte { // one character that is not base64
		i := b64Index(mu, r)
		return append(r[:i:i], append([]byte(pick(mu, "!", "*", "-", "_", " ", "\x00", "é", "=")), r[i:]...)...)
	},
	func(mu *mutator, r []byte) []byte { // characters removed
		i := b64Index(mu, r)
		n := 1 + mu.r.IntN(3)
		if i+n > len(r) {
			return r[:i]
		}
		return append(r[:i:i], r[i+n:]...)
	},
	func(mu *mutator, r []byte) []byte { // cut at a line
		ls := lines(r)
		return bytes.Join(ls[:mu.pos(1, len(ls))], nil)
	},
	func(mu *mutator, r []byte) []byte { // lines cut out of the middle
		ls := lines(r)
		if len(ls) < 4 {
			return nil
		}
		i := mu.pos(1, len(ls)-2)
		return bytes.Join(append(ls[:i:i], ls[i+1+mu.r.IntN(2):]...), nil)
	},
	func(mu *mutator, r []byte) []byte { // wrapped at another width
		eol := "\r\n"
		if !bytes.Contains(r, []byte("\r\n")) {
			eol = "\n"
		}
		text := bytes.Join(bytes.Fields(r), nil)
		w := pick(mu, 1, 60, 64, 76, 999, 4000)
		var out bytes.Buffer
		for len(text) > 0 {
			n := min(w, len(text))
			out.Write(text[:n])
			out.WriteString(eol)
			text = text[n:]
		}
		return out.Bytes()
	},
	func(_ *mutator, r []byte) []byte { return bytes.ReplaceAll(r, []byte("="), nil) }, // padding removed
	func(_ *mutator, r []byte) []byte { // text after the padding
		return append(bytes.TrimRight(r, "\r\n"), []byte("==AAAA\r\n")...)
	},
	func(mu *mutator, r []byte) []byte { // an empty line inside
		ls := lines(r)
		i := mu.pos(1, len(ls))
		return bytes.Join(append(ls[:i:i], append([][]byte{[]byte("\r\n")}, ls[i:]...)...), nil)
	},
	func(_ *mutator, r []byte) []byte { return append(r, r...) }, // twice
}

// b64Index is a random index into r (not empty).
func b64Index(mu *mutator, r []byte) int { return mu.r.IntN(len(r)) }

func opBase64(mu *mutator, b []byte) []byte {
	start, end, ok := base64Region(b)
	if !ok {
		return nil
	}
	r := pick(mu, base64Edits...)(mu, bytes.Clone(b[start:end]))
	if r == nil {
		return nil
	}
	return append(append(b[:start:start], r...), b[end:]...)
}

// derEdits damage the DER (or BER) of a signature, before base64.
var derEdits = []func(mu *mutator, d []byte) []byte{
	func(mu *mutator, d []byte) []byte { // bytes changed
		for range mu.pick3(1, 2, 4) {
			d[mu.r.IntN(len(d))] ^= byte(1 + mu.r.IntN(255))
		}
		return d
	},
	func(mu *mutator, d []byte) []byte { // one bit, near the end (the signature value)
		i := len(d) - 1 - mu.r.IntN(min(len(d), 300))
		d[i] ^= 1 << mu.r.IntN(8)
		return d
	},
	func(mu *mutator, d []byte) []byte { return d[:mu.pos(1, len(d))] },       // cut
	func(mu *mutator, d []byte) []byte { return append(d, 0, 0, 0x30, 0x80) }, // trailing bytes
	func(mu *mutator, d []byte) []byte { // a length byte
		i := mu.r.IntN(min(len(d), 64))
		d[i]++
		return d
	},
}

func opDER(mu *mutator, b []byte) []byte {
	start, end, ok := base64Region(b)
	if !ok {
		return nil
	}
	region := b[start:end]
	der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(region), nil)))
	if err != nil || len(der) < 2 {
		return nil
	}
	der = pick(mu, derEdits...)(mu, der)
	eol := "\r\n"
	if !bytes.Contains(region, []byte("\r\n")) {
		eol = "\n"
	}
	width := bytes.IndexByte(region, '\n')
	if eol == "\r\n" {
		width--
	}
	text := base64.StdEncoding.EncodeToString(der)
	var out bytes.Buffer
	for len(text) > 0 {
		n := min(width, len(text))
		out.WriteString(text[:n])
		out.WriteString(eol)
		text = text[n:]
	}
	return append(append(b[:start:start], out.Bytes()...), b[end:]...)
}

// opSwapPart puts part i of another message in place of the message's.
func opSwapPart(i int) func(*mutator, []byte) []byte {
	return func(mu *mutator, b []byte) []byte {
		m := parse(b)
		mp, ok := topMultipart(m)
		if !ok || len(mp.parts) <= i {
			return nil
		}
		o := parse(mu.other())
		omp, ok := topMultipart(o)
		if !ok || len(omp.parts) <= i {
			return nil
		}
		mp.parts[i] = omp.parts[i]
		m.body = mp.bytes()
		return m.bytes()
	}
}

// opSwapBody gives the message the body (and Content-Type) of another.
func opSwapBody(mu *mutator, b []byte) []byte {
	m := parse(b)
	o := parse(mu.other())
	if m.sep == nil || o.sep == nil {
		return nil
	}
	m.body = o.body
	ct, ok := o.value("Content-Type")
	if idx := m.find("Content-Type"); ok && len(idx) > 0 {
		m.fields[idx[0]] = []byte("Content-Type: " + ct + m.eol())
	}
	return m.bytes()
}

// opNest forwards the message as an attachment of a new one from the same
// sender.
func opNest(mu *mutator, b []byte) []byte {
	m := parse(b)
	from, ok := m.value("From")
	if !ok {
		return nil
	}
	const bnd = "nested-by-mutate"
	var out bytes.Buffer
	fmt.Fprintf(&out, "From: %s\r\nTo: archive@certharvest.test\r\nSubject: Fwd\r\nDate: Sun, 31 May 2026 12:00:00 +0000\r\n", from)
	fmt.Fprintf(&out, "Message-ID: <nested%d@example.com>\r\nMIME-Version: 1.0\r\n", mu.r.IntN(1000))
	fmt.Fprintf(&out, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\n", bnd, bnd)
	out.WriteString("Content-Type: text/plain\r\n\r\nForwarded.\r\n--" + bnd + "\r\nContent-Type: message/rfc822\r\n\r\n")
	out.Write(toCRLF(b))
	out.WriteString("\r\n--" + bnd + "--\r\n")
	return out.Bytes()
}

// opConcat appends another whole message to the body.
func opConcat(mu *mutator, b []byte) []byte { return append(b, mu.other()...) }

// opEightBit puts 8-bit text in the first part (or the body).
func opEightBit(mu *mutator, b []byte) []byte {
	text := pick(mu, "Gr\xfc\xdfe aus K\xf6ln\r\n", "Grüße aus Köln\r\n", "\x00\x01\x02\r\n", "\xef\xbb\xbfBOM\r\n")
	if out := editPart(b, 0, func(p *message) { p.body = append([]byte(text), p.body...) }); out != nil {
		return out
	}
	m := parse(b)
	m.body = append([]byte(text), m.body...)
	return m.bytes()
}
