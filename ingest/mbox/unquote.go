package mbox

import (
	"bytes"
	"hash"
)

var (
	nlGT      = []byte("\n>")
	gt        = []byte(">")
	fromSpace = []byte("From ")
)

// unquoter undoes a format's From quoting on a message's bytes as they
// stream by, in chunks cut anywhere: the first '>' of a line that is
// quoted is dropped. The stream begins at the start of a line.
type unquoter struct {
	format Format // RD or O; any other quotes nothing
	// midLine: past the start of the current line (so not quoted, or
	// decided).
	midLine bool
	// held: the line began with '>', not yet written: dropped if the line
	// turns out quoted. matched counts the bytes of "From " seen after
	// the '>' (or '>'s) so far, also held.
	held    bool
	matched int
}

// write passes p, unquoted, to out.
func (u *unquoter) write(p []byte, out func([]byte)) {
	if u.format != RD && u.format != O {
		out(p)
		return
	}
	for len(p) > 0 {
		switch {
		case u.midLine && !u.held:
			// The usual case: copy up to the next line that begins
			// with '>', the only one that may be quoted.
			j := bytes.Index(p, nlGT)
			if j < 0 {
				out(p)
				u.midLine = p[len(p)-1] != '\n'
				return
			}
			out(p[:j+1])
			p = p[j+1:]
			u.midLine = false
		case !u.held:
			// At the start of a line.
			u.midLine = true
			if p[0] == '>' {
				u.held = true
				p = p[1:]
			}
		default:
			c := p[0]
			switch {
			case c == '>' && u.matched == 0 && u.format == RD:
				// ">>From ": one '>' stays held, the others are
				// the message's.
				out(gt)
				p = p[1:]
			case c == fromSpace[u.matched]:
				u.matched++
				p = p[1:]
				if u.matched == len(fromSpace) {
					out(fromSpace) // quoted: the held '>' is dropped
					u.held, u.matched = false, 0
				}
			default:
				// Not quoted: give back what was held; c is read
				// again, mid-line (it may be the line's end).
				u.flush(out)
			}
		}
	}
}

// flush writes what is held: the stream ended (or the line turned out not
// quoted) before it was known.
func (u *unquoter) flush(out func([]byte)) {
	if u.held {
		out(gt)
		out(fromSpace[:u.matched])
		u.held, u.matched = false, 0
	}
}

// sink receives one message's bytes as stored, unquotes them, and keeps
// them while they fit its limit; past it, it keeps nothing but their
// count and digest.
type sink struct {
	unq       unquoter
	max       int64 // bytes kept at most
	discard   bool  // keep nothing (counting messages)
	raw       []byte
	size      int64 // bytes of the message (unquoted) so far
	tooLarge  bool
	newDigest func() hash.Hash // of a message too large; nil: none
	digest    hash.Hash        // made once the message is too large
	digested  int64
	maxDig    int64 // bytes digested at most; 0: all
	out       func([]byte)
}

func newSink(format Format, max int64, discard bool, newDigest func() hash.Hash, maxDig int64) *sink {
	s := &sink{unq: unquoter{format: format}, max: max, discard: discard, newDigest: newDigest, maxDig: maxDig}
	s.out = s.take
	return s
}

// whole takes the whole message as stored, p, at once: copied once, and
// unquoted in place (its usual quoted lines are few).
func (s *sink) whole(p []byte) {
	switch {
	case s.discard:
		s.size = int64(len(p))
	case int64(len(p)) > s.max:
		s.write(p) // perhaps too large: never held whole
	default:
		// append, unlike make, leaves the copied bytes uncleared.
		s.raw = unquoteInPlace(append([]byte(nil), p...), s.unq.format)
		s.size = int64(len(s.raw))
	}
}

// unquoteInPlace undoes format's quoting in b, a whole message, and returns
// b shortened: each '>' dropped is a gap closed by moving what follows.
func unquoteInPlace(b []byte, format Format) []byte {
	if format != RD && format != O {
		return b
	}
	w, prev := 0, 0 // b[:w] is done; b[prev:] is still to move to w
	drop := func(q int) {
		copy(b[w:], b[prev:q])
		w += q - prev
		prev = q + 1
	}
	if quotedAt(b, 0, format) {
		drop(0)
	}
	// Each '>' that begins a line: a '>' is rarer than a newline in
	// most mail, and the search jumps from one to the next.
	for i := 1; i < len(b); {
		j := bytes.IndexByte(b[i:], '>')
		if j < 0 {
			break
		}
		q := i + j
		if b[q-1] == '\n' && quotedAt(b, q, format) {
			drop(q)
		}
		i = q + 1
	}
	if prev == 0 {
		return b
	}
	copy(b[w:], b[prev:])
	return b[:w+len(b)-prev]
}

// quotedAt reports whether the line at b[q:] is quoted in format: '>', then
// (mboxrd) any more, then "From ".
func quotedAt(b []byte, q int, format Format) bool {
	if q >= len(b) || b[q] != '>' {
		return false
	}
	k := q + 1
	if format == RD {
		for k < len(b) && b[k] == '>' {
			k++
		}
	}
	return bytes.HasPrefix(b[k:], fromSpace)
}

// write takes bytes of the message as stored.
func (s *sink) write(p []byte) {
	if len(p) > 0 {
		s.unq.write(p, s.out)
	}
}

// finish ends the message.
func (s *sink) finish() {
	s.unq.flush(s.out)
	if !s.tooLarge && !s.discard && s.raw == nil {
		s.raw = []byte{} // an empty message, not none
	}
}

// take takes bytes of the message, unquoted.
func (s *sink) take(p []byte) {
	s.size += int64(len(p))
	if s.discard {
		return
	}
	if !s.tooLarge {
		if s.size <= s.max {
			if need := len(s.raw) + len(p); need > cap(s.raw) {
				// Double, as far as the limit: what growing leaves
				// to the collector stays within the message's size
				// (append grows a large slice by a quarter).
				grown := make([]byte, len(s.raw), max(need, min(2*cap(s.raw), int(s.max))))
				copy(grown, s.raw)
				s.raw = grown
			}
			s.raw = append(s.raw, p...)
			return
		}
		s.tooLarge = true
		if s.newDigest != nil {
			s.digest = s.newDigest()
		}
		s.hash(s.raw)
		s.raw = nil
	}
	s.hash(p)
}

// hash adds p to the digest of a message too large, within its bound.
func (s *sink) hash(p []byte) {
	if s.digest == nil {
		return
	}
	if s.maxDig > 0 {
		room := s.maxDig - s.digested
		if room <= 0 {
			return
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	s.digest.Write(p)
	s.digested += int64(len(p))
}
