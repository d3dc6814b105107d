package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
)

// message is a message cut into its header fields (each with its
// continuation lines and line endings), the empty line after them and the
// body. A message with no empty line is all header.
type message struct {
	fields [][]byte
	sep    []byte // the empty line: "\r\n", "\n", or nil when there is none
	body   []byte
}

// parse cuts b at its first empty line.
func parse(b []byte) *message {
	b = bytes.Clone(b)
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		return &message{sep: b[:2], body: b[2:]}
	case bytes.HasPrefix(b, []byte("\n")):
		return &message{sep: b[:1], body: b[1:]}
	}
	i := bytes.Index(b, []byte("\n\r\n"))
	j := bytes.Index(b, []byte("\n\n"))
	switch {
	case i >= 0 && (j < 0 || i < j):
		return &message{fields: splitFields(b[:i+1]), sep: b[i+1 : i+3], body: b[i+3:]}
	case j >= 0:
		return &message{fields: splitFields(b[:j+1]), sep: b[j+1 : j+2], body: b[j+2:]}
	}
	return &message{fields: splitFields(b)}
}

// bytes joins the message again.
func (m *message) bytes() []byte {
	var b bytes.Buffer
	for _, f := range m.fields {
		b.Write(f)
	}
	b.Write(m.sep)
	b.Write(m.body)
	return b.Bytes()
}

// eol is the line ending of the message's header.
func (m *message) eol() string {
	if len(m.fields) > 0 && !bytes.HasSuffix(m.fields[0], []byte("\r\n")) && bytes.HasSuffix(m.fields[0], []byte("\n")) {
		return "\n"
	}
	if bytes.Equal(m.sep, []byte("\n")) {
		return "\n"
	}
	return "\r\n"
}

// find returns the indexes of the fields named name (any case).
func (m *message) find(name string) []int {
	var idx []int
	for i, f := range m.fields {
		if strings.EqualFold(fieldName(f), name) {
			idx = append(idx, i)
		}
	}
	return idx
}

// value is the unfolded value of the first field named name, and whether
// there is one.
func (m *message) value(name string) (string, bool) {
	idx := m.find(name)
	if len(idx) == 0 {
		return "", false
	}
	_, v, _ := strings.Cut(string(m.fields[idx[0]]), ":")
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	return strings.TrimSpace(v), true
}

// insert puts fields f before index i.
func (m *message) insert(i int, f ...[]byte) { m.fields = slices.Insert(m.fields, i, f...) }

// remove drops the field at index i.
func (m *message) remove(i int) { m.fields = slices.Delete(m.fields, i, i+1) }

// splitFields cuts a header into fields, continuation lines joined to the
// field they continue.
func splitFields(header []byte) [][]byte {
	var fields [][]byte
	for _, line := range bytes.SplitAfter(header, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, bytes.Clone(line))
	}
	return fields
}

// fieldName is the name of a header field, as it is written.
func fieldName(f []byte) string {
	name, _, ok := bytes.Cut(f, []byte(":"))
	if !ok {
		return ""
	}
	return strings.TrimSpace(string(name))
}

// headerOf returns the header of msg, up to its first empty line.
func headerOf(msg []byte) []byte {
	m := parse(msg)
	var b bytes.Buffer
	for _, f := range m.fields {
		b.Write(f)
	}
	return b.Bytes()
}

// toCRLF turns every bare LF into CRLF.
func toCRLF(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// toLF turns every CRLF into LF.
func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

var boundaryRE = regexp.MustCompile(`(?i)boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))`)

// boundaryOf is the boundary parameter of a Content-Type value, or "".
func boundaryOf(contentType string) string {
	sub := boundaryRE.FindStringSubmatch(contentType)
	if sub == nil {
		return ""
	}
	return sub[1] + sub[2]
}

// multipart is a multipart body cut at its delimiter lines.
type multipart struct {
	pre     []byte   // the preamble
	delims  [][]byte // the delimiter line before each part
	parts   [][]byte // the parts, header and body
	closing []byte   // the closing delimiter line and what follows it; nil if none
}

// splitMultipart cuts body at the delimiter lines of boundary; ok is false
// when there is none.
func splitMultipart(body []byte, boundary string) (*multipart, bool) {
	if boundary == "" {
		return nil, false
	}
	delim := "--" + boundary
	mp := &multipart{}
	var cur *[]byte = &mp.pre
	for off := 0; off < len(body); {
		end := bytes.IndexByte(body[off:], '\n')
		if end < 0 {
			end = len(body)
		} else {
			end += off + 1
		}
		line := body[off:end]
		text := strings.TrimRight(string(line), " \t\r\n")
		switch {
		case mp.closing != nil:
			mp.closing = append(mp.closing, line...)
		case text == delim+"--":
			mp.closing = bytes.Clone(line)
		case text == delim:
			mp.delims = append(mp.delims, bytes.Clone(line))
			mp.parts = append(mp.parts, nil)
			cur = &mp.parts[len(mp.parts)-1]
		default:
			*cur = append(*cur, line...)
		}
		off = end
	}
	return mp, len(mp.delims) > 0
}

// bytes joins the multipart body again.
func (mp *multipart) bytes() []byte {
	var b bytes.Buffer
	b.Write(mp.pre)
	for i := range mp.parts {
		b.Write(mp.delims[i])
		b.Write(mp.parts[i])
	}
	b.Write(mp.closing)
	return b.Bytes()
}

// topMultipart returns the message's top-level multipart body.
func topMultipart(m *message) (*multipart, bool) {
	ct, _ := m.value("Content-Type")
	return splitMultipart(m.body, boundaryOf(ct))
}

var base64Line = regexp.MustCompile(`^[A-Za-z0-9+/=]{16,}\r?\n$`)

// base64Region returns the offsets in b of its longest run of at least two
// lines of base64: the signature of a message, or its opaque signed data.
func base64Region(b []byte) (start, end int, ok bool) {
	runStart, runLines := -1, 0
	best := 0
	for off := 0; off < len(b); {
		e := bytes.IndexByte(b[off:], '\n')
		if e < 0 {
			e = len(b)
		} else {
			e += off + 1
		}
		if base64Line.Match(b[off:e]) {
			if runStart < 0 {
				runStart, runLines = off, 0
			}
			runLines++
			if runLines >= 2 && e-runStart > best {
				start, end, best = runStart, e, e-runStart
			}
		} else {
			runStart = -1
		}
		off = e
	}
	return start, end, best > 0
}
