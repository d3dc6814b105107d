// Copyright (c) 2017 emersion; changes for certharvest. MIT licence:
// LICENSE.go-msgauth. Derived from go-msgauth v0.7.0 dkim/canonical.go and
// dkim/header.go; the canonical forms are theirs, the code that makes them
// is new (see the package documentation).

package dkimfast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
)

const crlf = "\r\n"

// errHeaderEOF is go-msgauth's error for a message whose header section has
// no empty line to end it (readHeader, from textproto's io.EOF).
var errHeaderEOF = errors.New("failed to read header: EOF")

// header is the header section as go-msgauth reads it: a string per field,
// each line of it ending in CRLF.
type header []string

// splitHeader splits msg into its header fields and its body as
// go-msgauth's readHeader does through a bufio.Reader and
// textproto.Reader.ReadLine: a line ends at an LF, less one CR before it; a
// line that starts with a space or a tab continues the field before it, if
// there is one; the first empty line ends the header section, and the body
// is what follows it. A field is its lines, each followed by CRLF: the
// message's own bytes when its lines end in CRLF, as a message in canonical
// form (every LF after a CR) always does.
func splitHeader(msg []byte) (header, []byte, error) {
	var (
		starts []int // the offset of each field
		end    int   // the offset of the empty line
		body   int   // the offset of the body
		bare   bool  // a line of a field ends in a bare LF
	)
	for pos := 0; ; {
		i := bytes.IndexByte(msg[pos:], '\n')
		if i < 0 {
			// Also for a last line without LF: go-msgauth reads it,
			// then meets the end of the message.
			return nil, nil, errHeaderEOF
		}
		lf := pos + i
		content, cr := lf, lf > pos && msg[lf-1] == '\r'
		if cr {
			content--
		}
		if content == pos {
			end, body = pos, lf+1
			break
		}
		bare = bare || !cr
		if c := msg[pos]; (c != ' ' && c != '\t') || len(starts) == 0 {
			starts = append(starts, pos)
		}
		pos = lf + 1
	}
	h := make(header, len(starts))
	if !bare {
		s := string(msg[:end])
		for i, start := range starts {
			stop := end
			if i+1 < len(starts) {
				stop = starts[i+1]
			}
			h[i] = s[start:stop]
		}
		return h, msg[body:], nil
	}
	// Some line ends in a bare LF: each line is rebuilt with CRLF.
	for i, start := range starts {
		stop := end
		if i+1 < len(starts) {
			stop = starts[i+1]
		}
		var b strings.Builder
		for line := msg[start:stop]; len(line) > 0; {
			lf := bytes.IndexByte(line, '\n')
			content := line[:lf]
			content = bytes.TrimSuffix(content, []byte{'\r'})
			b.Write(content)
			b.WriteString(crlf)
			line = line[lf+1:]
		}
		h[i] = b.String()
	}
	return h, msg[body:], nil
}

// Sizes of a spanWriter's buffer: a slice shorter than minDirectWrite is
// copied into it, a longer one written to the hash directly (a Write costs
// about as much as copying 64 bytes). The usual body needs no buffer.
const (
	spanBufSize    = 512
	minDirectWrite = 64
)

// spanWriter writes a canonical form of src to a hash. A canonical body is
// mostly slices of the message as they are: a slice that continues the one
// before it in src extends it, and the whole is written in one Write. Bytes
// of the canonical form's own (the space that stands for a run of white
// space, the CR put before a bare LF), and short slices, go through a small
// buffer.
type spanWriter struct {
	h          hash.Hash
	src        []byte
	start, end int    // the pending slice, src[start:end]
	buf        []byte // what comes before it, not yet written
}

// span writes src[start:end].
func (w *spanWriter) span(start, end int) {
	if start == end {
		return
	}
	if w.start < w.end && start == w.end {
		w.end = end
		return
	}
	w.flushSpan()
	w.start, w.end = start, end
}

// lit writes s: as part of the pending slice when src goes on with s.
func (w *spanWriter) lit(s string) {
	if w.start < w.end && len(s) <= len(w.src)-w.end && string(w.src[w.end:w.end+len(s)]) == s {
		w.end += len(s)
		return
	}
	w.flushSpan()
	w.appendBuf(s)
}

func (w *spanWriter) flushSpan() {
	if w.start == w.end {
		return
	}
	p := w.src[w.start:w.end]
	w.start, w.end = 0, 0
	if len(p) >= minDirectWrite {
		w.flushBuf()
		w.h.Write(p)
		return
	}
	w.reserve(len(p))
	w.buf = append(w.buf, p...)
}

// appendBuf adds s, at most minDirectWrite bytes, to the buffer.
func (w *spanWriter) appendBuf(s string) {
	w.reserve(len(s))
	w.buf = append(w.buf, s...)
}

// reserve makes room in the buffer for n bytes, at most minDirectWrite.
func (w *spanWriter) reserve(n int) {
	if w.buf == nil {
		w.buf = make([]byte, 0, spanBufSize)
	}
	if len(w.buf)+n > cap(w.buf) {
		w.flushBuf()
	}
}

func (w *spanWriter) flushBuf() {
	if len(w.buf) > 0 {
		w.h.Write(w.buf)
		w.buf = w.buf[:0]
	}
}

// close writes what is pending.
func (w *spanWriter) close() {
	w.flushSpan()
	w.flushBuf()
}

// simpleBody writes the simple canonical form of body (RFC 6376 §3.4.3) as
// go-msgauth's simpleBodyCanonicalizer makes it: with a CR before every
// bare LF (its crlfFixer), and the CRLFs at the end replaced by one,
// unless the body ends in a CR, which keeps them all and gets one more.
func simpleBody(w *spanWriter, body []byte) {
	w.src = body
	cut := len(body)
	if cut == 0 || body[cut-1] != '\r' {
		for cut > 0 && body[cut-1] == '\n' {
			cut--
			if cut > 0 && body[cut-1] == '\r' {
				cut--
			}
		}
	}
	from := 0
	for i := 0; i < cut; {
		j := bytes.IndexByte(body[i:cut], '\n')
		if j < 0 {
			break
		}
		lf := i + j
		if lf == 0 || body[lf-1] != '\r' {
			w.span(from, lf)
			w.lit("\r")
			from = lf
		}
		i = lf + 1
	}
	w.span(from, cut)
	w.lit(crlf)
	w.close()
}

// relaxedBody writes the relaxed canonical form of body (RFC 6376 §3.4.4)
// as go-msgauth's relaxedBodyCanonicalizer makes it. That one reads byte by
// byte: a space or tab is noted, a CR or LF is kept aside (and the white
// space noted before it forgotten), and any other byte writes what was
// kept aside, then a space if white space was noted, then itself; a CR is
// put before a bare LF (its crlfFixer); what is kept aside at the end is
// dropped, and a CRLF is written if any byte was. Here the runs of other
// bytes are found a word at a time, and written as slices of body.
func relaxedBody(w *spanWriter, body []byte) {
	w.src = body
	var (
		nl      = -1 // start of the line breaks kept aside, or -1
		nlEnd   int  // end of the last CR or LF among them
		nlClean bool // they are body[nl:nlEnd] as it is: no white space among them, no bare LF
		ws      = -1 // start of the white space noted, or -1
		wrote   = false
	)
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case ' ', '\t':
			if ws < 0 {
				ws = i
			}
			i++
		case '\r', '\n':
			if nl < 0 {
				nl, nlClean = i, true
			} else if nlEnd != i {
				nlClean = false // white space in between, dropped
			}
			if c == '\n' && (i == 0 || body[i-1] != '\r') {
				nlClean = false // a bare LF, which gets a CR
			}
			ws = -1
			i++
			nlEnd = i
		default:
			j := i + 1 + ordinaryRun(body[i+1:])
			if nl >= 0 {
				w.lineBreaks(nl, nlEnd, nlClean)
				nl = -1
			}
			if ws >= 0 {
				if i-ws == 1 && body[ws] == ' ' {
					w.span(ws, i)
				} else {
					w.lit(" ")
				}
				ws = -1
			}
			w.span(i, j)
			wrote = true
			i = j
		}
	}
	if wrote {
		w.lit(crlf)
	}
	w.close()
}

// lineBreaks writes the CRs and LFs of src[from:to], with a CR before each
// bare LF; clean says that they are src[from:to] as it is.
func (w *spanWriter) lineBreaks(from, to int, clean bool) {
	if clean {
		w.span(from, to)
		return
	}
	for k := from; k < to; k++ {
		switch w.src[k] {
		case '\r':
			w.span(k, k+1)
		case '\n':
			if k == 0 || w.src[k-1] != '\r' {
				w.lit("\r")
			}
			w.span(k, k+1)
		}
	}
}

// ordinaryRun returns the length of the run of bytes at the start of b that
// are neither a space, a tab, a CR nor an LF. It looks at eight bytes at a
// time for one below 0x21 (all four are), and at those eight one by one
// only when there is one.
func ordinaryRun(b []byte) int {
	const highs, below = 0x8080808080808080, 0x21 * 0x0101010101010101
	i := 0
	for ; i+8 <= len(b); i += 8 {
		// Non-zero when some byte of x is below 0x21 (exact for a
		// bound of at most 0x80).
		if x := binary.LittleEndian.Uint64(b[i:]); (x-below)&^x&highs != 0 {
			for j := i; j < i+8; j++ {
				if isSpecial(b[j]) {
					return j
				}
			}
		}
	}
	for ; i < len(b); i++ {
		if isSpecial(b[i]) {
			return i
		}
	}
	return len(b)
}

func isSpecial(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendRelaxedHeader appends the relaxed canonical form of a header field
// (RFC 6376 §3.4.2) as go-msgauth's relaxedCanonicalizer.CanonicalizeHeader
// makes it: the name lower-cased and trimmed (strings.ToLower and
// strings.TrimSpace, Unicode-aware: an ASCII name, the usual one, is done
// here byte by byte, with the same result), a colon, the value with its
// runs of spaces, tabs, CRs and LFs made one space and trimmed, CRLF.
func appendRelaxedHeader(dst []byte, s string) []byte {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		dst = append(dst, strings.TrimSpace(strings.ToLower(s))...)
		return append(dst, ":"+crlf...)
	}
	dst = appendLowerTrimmed(dst, k)
	dst = append(dst, ':')
	first := true
	for i := 0; i < len(v); {
		if c := v[i]; c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			i++
			continue
		}
		j := i + 1
		for j < len(v) && !isSpecial(v[j]) {
			j++
		}
		if !first {
			dst = append(dst, ' ')
		}
		dst = append(dst, v[i:j]...)
		first = false
		i = j
	}
	return append(dst, crlf...)
}

// appendLowerTrimmed appends strings.TrimSpace(strings.ToLower(k)).
func appendLowerTrimmed(dst []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if k[i] >= 0x80 {
			return append(dst, strings.TrimSpace(strings.ToLower(k))...)
		}
	}
	// ASCII: TrimSpace trims '\t', '\n', '\v', '\f', '\r' and ' '.
	start, end := 0, len(k)
	for start < end && isASCIISpace(k[start]) {
		start++
	}
	for end > start && isASCIISpace(k[end-1]) {
		end--
	}
	for i := start; i < end; i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// removeSignature returns s with the value of its b= tag removed, as
// go-msgauth's removeSignature does with the regular expression
// `(b\s*=)[^;]+` and the replacement "$1": from left to right, every "b",
// then white space (\s: tab, LF, FF, CR, space), then "=", then at least
// one byte other than ";", loses the bytes after the "=" up to the next
// ";" or the end, and the search goes on from there.
func removeSignature(s string) string {
	var b []byte
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != 'b' {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '\t' || s[j] == '\n' || s[j] == '\f' || s[j] == '\r' || s[j] == ' ') {
			j++
		}
		if j == len(s) || s[j] != '=' {
			continue
		}
		j++
		k := j
		for k < len(s) && s[k] != ';' {
			k++
		}
		if k == j {
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(s))
		}
		b = append(b, s[last:j]...)
		last = k
		i = k - 1
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}
