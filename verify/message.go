package verify

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/emersion/go-message/textproto"
)

// Message is one raw message and the context it arrived with. The context
// goes into the report; it never alters the bytes that are verified.
type Message struct {
	// Raw is the message as received, CRLF or bare-LF line endings.
	Raw []byte

	// ID names the message in logs and the report. When empty the pipeline
	// derives one from the message's content.
	ID string
	// Path is the file the message was read from, if any.
	Path string
	// MboxIndex is the message's number in the mbox file at Path, from
	// 1, and MboxOffset the offset there of its "From " line (in the
	// decompressed bytes of a compressed file); both 0 for a message
	// that is a file of its own.
	MboxIndex  int
	MboxOffset int64
	// Envelope is the context the message arrived with: m.Source,
	// m.EnvelopeFrom and the others are its fields.
	Envelope
}

// Envelope is the context a message arrived with: where it came from, its
// SMTP envelope, the peer that delivered it, when. An input fills it in;
// the Maildir spool keeps it beside the message as this JSON (so the names
// and encoding of its fields are a stored format: old spools must still
// decode); the report takes its fields into its own (output.Record).
type Envelope struct {
	// Source is the input the message came through: "scan", "maildir",
	// "webhook", "smtp", "check".
	Source string `json:"source"`
	// EnvelopeFrom and EnvelopeTo are the SMTP envelope (or the relay's
	// msg_from and rcpt_to), when known.
	EnvelopeFrom string   `json:"envelope_from,omitempty"`
	EnvelopeTo   []string `json:"envelope_to,omitempty"`
	// RemoteAddr is the network peer that delivered the message, if any.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// Received is when the input accepted the message.
	Received time.Time `json:"received"`
	// Extra holds input-specific context (a relay's customer_id and
	// webhook_id, an SMTP client's HELO name) for the report.
	Extra map[string]string `json:"extra,omitempty"`
}

// parsedMessage is a message in canonical CRLF form with its top-level header
// read.
type parsedMessage struct {
	canonical []byte
	header    textproto.Header
	body      []byte // canonical[len(header)+blank line:]
	// limits are the header caps, for the body parts' headers too.
	limits HeaderLimits
}

// canonicalCRLF returns b with every bare LF turned into CRLF (RFC 5322 §2.1:
// lines end in CRLF; Unix mail stores bare LF). Signatures, DKIM's and the
// CMS's alike, are computed over the CRLF form. b is returned unchanged, not
// copied, when it has no bare LF.
func canonicalCRLF(b []byte) []byte {
	bare := 0
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			bare++
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, b...)
		}
		if i > 0 && b[i-1] == '\r' {
			out = append(out, b[:i+1]...)
		} else {
			out = append(out, b[:i]...)
			out = append(out, '\r', '\n')
		}
		b = b[i+1:]
	}
}

// parseMessage canonicalises raw and reads its header, once it is known
// to be within limits.
func parseMessage(raw []byte, maxSize int64, limits HeaderLimits) (*parsedMessage, error) {
	if maxSize > 0 && int64(len(raw)) > maxSize {
		return nil, fail(ReasonTooLarge, "message is %d bytes, the limit is %d", len(raw), maxSize)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fail(ReasonMalformed, "empty message")
	}
	// Before any parser builds its table of the fields.
	if err := CheckHeader(raw, limits); err != nil {
		return nil, err
	}
	canonical := canonicalCRLF(raw)
	r := bytes.NewReader(canonical)
	// The reader needs to hold the header only: sized so, it copies less of
	// the body than one of the default size.
	size := len(canonical)
	if i := bytes.Index(canonical, []byte("\r\n\r\n")); i >= 0 {
		size = i + len("\r\n\r\n")
	}
	br := bufio.NewReaderSize(r, min(size, 4096))
	header, err := textproto.ReadHeader(br)
	if err != nil && !errors.Is(err, io.EOF) {
		if bytes.HasPrefix(canonical, []byte("From ")) {
			// mbox's separator line: a folder of messages passed as one.
			return nil, fail(ReasonMalformed, "looks like an mbox file, not one message: it begins with a \"From \" line; scan reads mbox files message by message (docs/ARCHIVES.md)")
		}
		return nil, fail(ReasonMalformed, "reading header: %w", headerError(err))
	}
	if header.Len() == 0 {
		return nil, fail(ReasonMalformed, "no header fields")
	}
	consumed := len(canonical) - r.Len() - br.Buffered()
	return &parsedMessage{canonical: canonical, header: header, body: canonical[consumed:], limits: limits}, nil
}
