package verify

import (
	"bytes"
	"fmt"
)

// The header section's caps. Every parser of a header (go-message's
// textproto, go-msgauth's DKIM verifier) builds a slice or a map of all its
// fields, about 400 bytes each: a 21 MB message of 1.5 million tiny fields
// ("X-H0: v") cost 690 MB to read, and eight at once ran the service out
// of memory. Real mail has a few dozen fields in a few KB (a long Received
// chain and an ARC set reach 100 fields and 60 KB), so the caps are far
// above it and far below the harm.
const (
	// DefaultMaxHeaderBytes caps the bytes of the header section,
	// its blank line included.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxHeaderFields caps the number of header fields.
	DefaultMaxHeaderFields = 10_000
)

// HeaderLimits cap a message's header section (RFC 5322 §2.2: the fields
// up to the first empty line). The zero value of a field means its
// default.
type HeaderLimits struct {
	// MaxBytes caps the section's bytes (default DefaultMaxHeaderBytes).
	MaxBytes int64
	// MaxFields caps its fields (default DefaultMaxHeaderFields).
	MaxFields int
}

func (l HeaderLimits) withDefaults() HeaderLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxHeaderBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxHeaderFields
	}
	return l
}

// CheckHeader returns a message_malformed *Error naming the cap when the
// header section of msg is over l, and nil otherwise. It reads msg only up
// to the end of the header, or to the cap.
func CheckHeader(msg []byte, l HeaderLimits) error {
	c := NewHeaderCounter(l)
	_, err := c.Write(msg)
	return err
}

// HeaderCounter checks a header section against HeaderLimits as its bytes
// arrive (an SMTP DATA stream, a request body), before any parser sees it.
// Write it the message from its first byte; once the header section has
// ended (Done), further bytes are not looked at. A line is a new field
// when it starts with neither a space nor a tab (RFC 5322 §2.2.3: those
// continue the previous field). Lines may end in CRLF or a bare LF.
type HeaderCounter struct {
	limits    HeaderLimits
	bytes     int64 // header bytes seen
	fields    int
	lineStart bool // the next byte starts a line
	cr        bool // the current line so far is a lone CR
	done      bool
	err       error
}

// NewHeaderCounter returns a counter for limits l.
func NewHeaderCounter(l HeaderLimits) *HeaderCounter {
	return &HeaderCounter{limits: l.withDefaults(), lineStart: true}
}

// Done reports whether the header section has ended.
func (c *HeaderCounter) Done() bool { return c.done }

// Err returns the error Write returned, if any: the header section is
// over a cap.
func (c *HeaderCounter) Err() error { return c.err }

// Fields returns the number of header fields seen so far.
func (c *HeaderCounter) Fields() int { return c.fields }

// Write looks at p as the next bytes of the message. It always consumes
// all of p (n = len(p)) and returns an error once the header section is
// over a cap, and every time after.
func (c *HeaderCounter) Write(p []byte) (n int, err error) {
	n = len(p)
	for len(p) > 0 && !c.done && c.err == nil {
		if c.lineStart || c.cr {
			b := p[0]
			switch {
			case b == '\n':
				// An empty line (CRLF or bare LF) ends the section.
				c.bytes++
				c.done = true
				return n, c.checkBytes()
			case c.cr:
				// A line starting with a lone CR: part of a field (or
				// garbage a parser will refuse); not a new field.
				c.cr = false
			case b == '\r':
				c.lineStart, c.cr = false, true
				c.bytes++
				p = p[1:]
				if err := c.checkBytes(); err != nil {
					return n, err
				}
				continue
			case b != ' ' && b != '\t':
				c.fields++
				if c.fields > c.limits.MaxFields {
					c.err = fail(ReasonMalformed, "header has more than %d fields (the cap on header fields)", c.limits.MaxFields)
					return n, c.err
				}
			}
			c.lineStart = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.bytes += int64(len(p))
			return n, c.checkBytes()
		}
		c.bytes += int64(i + 1)
		p = p[i+1:]
		c.lineStart = true
		if err := c.checkBytes(); err != nil {
			return n, err
		}
	}
	return n, c.err
}

func (c *HeaderCounter) checkBytes() error {
	if c.bytes > c.limits.MaxBytes && c.err == nil {
		c.err = fail(ReasonMalformed, "header is more than %s (the cap on header bytes)", formatBytes(c.limits.MaxBytes))
	}
	return c.err
}

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
