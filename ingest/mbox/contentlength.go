package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// This file reads mboxcl2: a message ends where the Content-Length field
// of its header says, which is checked before it is believed (a field may
// lie, or belong to a message of another variant).

// landing is what follows a message's end by its Content-Length.
type landing int

const (
	landOK      landing = iota // a "From " line, or the end of the file
	landLie                    // anything else
	landUnknown                // not known before reading it through
)

// readCL2 reads message m of an mboxcl2 file: by its Content-Length when
// it has one that holds, else (none) up to the next "From " line. A
// Content-Length that lies makes m's Err, and the reading goes on at the
// next "From " line after a blank line.
func (r *Reader) readCL2(m *Message) {
	s := r.newSink(m, CL2)
	r.fill(len(fromSpace))
	if isFrom(r.buf[r.r:r.w]) {
		r.end(m, s) // an empty message
		return
	}
	bodyOff, n, hasCL, ok := r.scanHeader()
	if !ok || !hasCL {
		r.readToFrom(m, s)
		return
	}
	total := int64(bodyOff) + n
	skip, land := r.land(total)
	switch land {
	case landLie:
		m.Err = fmt.Errorf("message %d at byte %d: its Content-Length, %d, does not end it at a \"From \" line or the end of the file", m.Index, m.Offset, n)
		r.consume(bodyOff)
		r.resync(m)
		return
	case landUnknown:
		if r.opts.MaxSkip > 0 && total > r.opts.MaxSkip {
			m.Err = fmt.Errorf("%w: message %d at byte %d says it is %d bytes (Content-Length), over %d", ErrStopped, m.Index, m.Offset, total, r.opts.MaxSkip)
			r.done = true
			return
		}
	}
	lie := func() {
		m.Err = fmt.Errorf("message %d at byte %d: its Content-Length, %d, does not end it at a \"From \" line or the end of the file; the rest of the file is not read", m.Index, m.Offset, n)
		r.done = true
	}
	if !r.copyN(m, s, total) {
		if land == landUnknown && r.rerr == nil {
			lie() // the file ended first
		}
		return
	}
	if land == landUnknown {
		r.fill(len("\r\nFrom "))
		var ok bool
		if skip, ok = validLanding(r.buf[r.r:r.w], r.avail() < len("\r\nFrom ")); !ok {
			lie()
			return
		}
	}
	r.fill(skip)
	r.consume(skip)
	r.end(m, s)
}

// copyN gives s the next n bytes of message m; false when the stream
// failed first (m then says so).
func (r *Reader) copyN(m *Message, s *sink, n int64) bool {
	if int64(r.avail()) >= n {
		s.whole(r.buf[r.r : r.r+int(n)])
		r.consume(int(n))
		return true
	}
	for n > 0 {
		if r.avail() == 0 && !r.more() {
			r.fail(m)
			return false
		}
		k := min(int64(r.avail()), n)
		s.write(r.buf[r.r : r.r+int(k)])
		r.consume(int(k))
		n -= k
	}
	return true
}

// land says what follows the next total bytes, and how many bytes of a
// blank line to skip there to reach the next "From " line: read there
// when the stream is a file, else read ahead into the window when the
// message may be held (at most MaxSize).
func (r *Reader) land(total int64) (skip int, _ landing) {
	const look = len("\r\nFrom ")
	if r.at != nil {
		// Also the byte before: a read past the end of the file reads
		// nothing, as one at its end does.
		var p [1 + look]byte
		off := r.offset() + total - 1
		k, err := r.at.ReadAt(p[:], off)
		if k == 0 {
			if err != nil && !isEOF(err) {
				return 0, landUnknown
			}
			return 0, landLie // past the end
		}
		skip, ok := validLanding(p[1:k], k < len(p))
		if !ok {
			return 0, landLie
		}
		return skip, landOK
	}
	if total > r.opts.MaxSize {
		return 0, landUnknown
	}
	r.fill(int(total) + look)
	if int64(r.avail()) < total {
		return 0, landLie
	}
	rest := r.buf[r.r+int(total) : r.w]
	skip, ok := validLanding(rest, len(rest) < look)
	if !ok {
		return 0, landLie
	}
	return skip, landOK
}

// validLanding says whether b, what follows a message, is a "From " line
// (after a blank line or not) or the end of the file (atEOF: b is all
// there is), and how many bytes of blank line come first.
func validLanding(b []byte, atEOF bool) (skip int, ok bool) {
	switch {
	case isFrom(b):
		return 0, true
	case bytes.HasPrefix(b, []byte("\nFrom ")):
		return 1, true
	case bytes.HasPrefix(b, []byte("\r\nFrom ")):
		return 2, true
	case atEOF && len(b) == 0:
		return 0, true
	case atEOF && string(b) == "\n":
		return 1, true
	case atEOF && string(b) == "\r\n":
		return 2, true
	}
	return 0, false
}

// resync skips, after the header of message m whose Content-Length lied,
// to the next "From " line that follows a blank line, or the end of the
// file.
func (r *Reader) resync(m *Message) {
	var skipped int64
	search := r.r
	for {
		b := r.buf[search:r.w]
		for i := bytes.Index(b, []byte("\nFrom ")); i >= 0; {
			j := search + i // the '\n'
			if (j-1 >= r.r && r.buf[j-1] == '\n') || (j-2 >= r.r && r.buf[j-1] == '\r' && r.buf[j-2] == '\n') {
				r.consume(j + 1 - r.r)
				return
			}
			k := bytes.Index(b[i+1:], []byte("\nFrom "))
			if k < 0 {
				break
			}
			i += 1 + k
		}
		if r.eof {
			if r.rerr != nil {
				r.fail(m)
				return
			}
			r.consume(r.avail())
			return
		}
		if n := r.avail() - holdBack; n > 0 {
			r.consume(n)
			skipped += int64(n)
		}
		if r.opts.MaxSkip > 0 && skipped > r.opts.MaxSkip {
			r.stopped = fmt.Errorf("%w: no \"From \" line in the %d bytes after message %d at byte %d", ErrStopped, skipped, m.Index, m.Offset)
			return
		}
		search = max(r.r, r.w-len("\nFrom")) - r.r
		r.more()
		search += r.r
	}
}

// scanHeader looks through the header at the window's start (a message's
// first byte) for its end and its Content-Length, consuming nothing:
// bodyOff is where its body begins, from the message's start. ok is false
// when the header does not end, in a blank line, within maxHeader bytes
// and before a "From " line or the end of the file.
func (r *Reader) scanHeader() (bodyOff int, n int64, hasCL, ok bool) {
	pos := 0 // of the line looked at, from r.r
	for pos < maxHeader {
		b := r.buf[r.r:r.w]
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			if !r.more() {
				return 0, 0, false, false
			}
			continue
		}
		line := b[pos : pos+i]
		pos += i + 1
		if len(line) == 0 || string(line) == "\r" {
			return pos, n, hasCL, true
		}
		if isFrom(line) {
			return 0, 0, false, false
		}
		if !hasCL {
			n, hasCL = contentLength(line)
		}
	}
	return 0, 0, false, false
}

// contentLength returns the value of line when it is a Content-Length
// field: decimal digits, at most 18.
func contentLength(line []byte) (int64, bool) {
	const name = "content-length"
	if len(line) <= len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return 0, false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return 0, false
	}
	v := bytes.Trim(rest[1:], " \t\r")
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// detect decides the variant of a file by its first message, whose header
// is at the window's start: mboxcl2 when it has a Content-Length that
// ends it at the next "From " line or the end of the file, else mboxrd.
func (r *Reader) detect() Format {
	r.fill(len(fromSpace))
	if isFrom(r.buf[r.r:r.w]) {
		return RD
	}
	bodyOff, n, hasCL, ok := r.scanHeader()
	if !ok || !hasCL {
		return RD
	}
	if _, land := r.land(int64(bodyOff) + n); land == landOK {
		return CL2
	}
	return RD
}
