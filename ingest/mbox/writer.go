package mbox

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// Writer writes messages into an mbox of one variant: each after a "From "
// line, quoted as the variant says, and followed by a blank line. It is
// for tests and the benchmark corpus (scripts/gencorpus); certharvest
// itself only reads mbox files.
type Writer struct {
	w      io.Writer
	format Format
	// CRLF ends the "From " lines and the blank lines with CRLF, as a
	// file whose every line ends in CRLF has them.
	CRLF bool
}

// NewWriter returns a Writer of the variant format (Auto writes mboxrd).
func NewWriter(w io.Writer, format Format) *Writer {
	if format == Auto {
		format = RD
	}
	return &Writer{w: w, format: format}
}

// Write appends msg, received from sender (MAILER-DAEMON when empty) at t.
// For mboxcl2, a Content-Length field is added at the end of its header,
// which must end in a blank line.
func (w *Writer) Write(sender string, t time.Time, msg []byte) error {
	eol := "\n"
	if w.CRLF {
		eol = "\r\n"
	}
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	var b bytes.Buffer
	b.Grow(len(msg) + 128)
	fmt.Fprintf(&b, "From %s %s%s", sender, t.UTC().Format("Mon Jan _2 15:04:05 2006"), eol)
	switch w.format {
	case CL2:
		blank, bodyOff := headerEnd(msg)
		if blank < 0 {
			return fmt.Errorf("mbox: a message written to an mboxcl2 file needs a header ending in a blank line")
		}
		lineEnd := string(msg[blank:bodyOff])
		// A last line without its newline gets one, counted, as the
		// other variants give it one.
		body := len(msg) - bodyOff
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			body += len(eol)
		}
		b.Write(msg[:blank]) // the header's fields
		fmt.Fprintf(&b, "Content-Length: %d%s", body, lineEnd)
		b.Write(msg[blank:])
	default:
		quote(&b, msg, w.format)
	}
	if len(msg) > 0 && msg[len(msg)-1] != '\n' {
		b.WriteString(eol)
	}
	b.WriteString(eol)
	_, err := w.w.Write(b.Bytes())
	return err
}

// headerEnd returns where the blank line that ends msg's header begins
// (-1 when there is none) and where its body begins.
func headerEnd(msg []byte) (blank, bodyOff int) {
	for pos := 0; pos < len(msg); {
		i := bytes.IndexByte(msg[pos:], '\n')
		if i < 0 {
			break
		}
		if line := msg[pos : pos+i]; len(line) == 0 || string(line) == "\r" {
			return pos, pos + i + 1
		}
		pos += i + 1
	}
	return -1, 0
}

// quote writes msg to b with the From quoting of format.
func quote(b *bytes.Buffer, msg []byte, format Format) {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		rest := line
		if format == RD {
			rest = bytes.TrimLeft(line, ">")
		}
		if bytes.HasPrefix(rest, fromSpace) {
			b.WriteByte('>')
		}
		b.Write(line)
	}
}
