package verify

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// signedEntity is an S/MIME signature found in a message.
type signedEntity struct {
	// opaque is true for application/pkcs7-mime signed-data, where the
	// content travels inside the CMS; false for multipart/signed.
	opaque bool
	// mediaType is the S/MIME entity's media type.
	mediaType string
	// content is, for a detached signature, the exact canonical bytes of the
	// first body part: its header, the blank line and its body, without the
	// CRLF that precedes the next boundary (RFC 1847 §2.1, RFC 8551 §3.5).
	content []byte
	// cms is the decoded CMS ContentInfo (DER or BER).
	cms []byte
	// filename is the signature part's file name, if any.
	filename string
}

// locateSignature finds the S/MIME signature of a message: the top-level
// entity, or the first part of a top-level multipart/mixed (where a mailing
// list appended a footer part).
func locateSignature(m *parsedMessage, log *story) (*signedEntity, error) {
	return findSignature(m.header, m.body, true, m.limits, log)
}

func findSignature(h textproto.Header, body []byte, topLevel bool, limits HeaderLimits, log *story) (*signedEntity, error) {
	mediaType, params, err := parseContentType(h)
	logPart(log, h)
	if err != nil {
		return nil, fail(ReasonNoSignature, "unparseable Content-Type %q: %w", truncate(h.Get("Content-Type"), 100), err)
	}
	switch mediaType {
	case "multipart/signed":
		// RFC 8551 §3.5: protocol="application/pkcs7-signature"; the x-
		// form is what older agents send (§3.1 table).
		protocol := strings.ToLower(params["protocol"])
		if protocol != "application/pkcs7-signature" && protocol != "application/x-pkcs7-signature" {
			return nil, fail(ReasonNoSignature, "multipart/signed with protocol %q is not S/MIME", truncate(protocol, 60))
		}
		return readDetached(params["boundary"], body, limits, log)
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		// RFC 8551 §3.2.2: smime-type names the CMS content type. Some
		// agents omit it; the CMS parse then decides.
		smimeType := strings.ToLower(params["smime-type"])
		if smimeType != "" && smimeType != "signed-data" {
			return nil, fail(ReasonNoSignature, "%s with smime-type=%s is not a signature", mediaType, smimeType)
		}
		cms, err := decodeTransfer(h, body)
		if err != nil {
			return nil, fail(ReasonSignatureMalformed, "decoding %s: %w", mediaType, err)
		}
		name := filenameOf(h, params)
		log.Info("filename="+name+",bytes="+strconv.Itoa(len(cms)), "form", "opaque")
		return &signedEntity{opaque: true, mediaType: mediaType, cms: cms, filename: name}, nil
	case "multipart/mixed":
		if !topLevel {
			break
		}
		part, err := firstPart(params["boundary"], body, limits)
		var capped *Error
		if errors.As(err, &capped) {
			return nil, err // a part's header over the caps: malformed
		}
		if err != nil {
			return nil, fail(ReasonNoSignature, "reading multipart/mixed: %w", err)
		}
		return findSignature(part.Header, part.body, false, limits, log)
	}
	return nil, fail(ReasonNoSignature, "%s is not an S/MIME signed entity", mediaType)
}

// rawPart is a body part with its exact bytes.
type rawPart struct {
	Header textproto.Header
	raw    []byte // header, blank line and body
	body   []byte // raw[after the blank line:]
}

// readPart reads the current part p of a multipart body src, reproducing
// its header bytes as they were (go-message keeps each field's raw bytes)
// followed by its body. at is where in src the part is expected to start
// (-1 when unknown): when the bytes read are those of src there, as they are
// unless go-message rewrote a header line, the part is a slice of src rather
// than a copy.
func readPart(p *textproto.Part, src []byte, at int) (*rawPart, error) {
	w := &partWriter{}
	if at >= 0 && at <= len(src) {
		w.src = src[at:]
	}
	if err := textproto.WriteHeader(w, p.Header); err != nil {
		return nil, err
	}
	headerLen := w.n
	if _, err := io.CopyBuffer(w, p, w.scratch[:]); err != nil {
		return nil, err
	}
	raw := w.bytes()
	return &rawPart{Header: p.Header, raw: raw, body: raw[headerLen:]}, nil
}

// partWriter collects the bytes of a part. While they are those of src, it
// only counts them; from the first difference on, it copies them.
type partWriter struct {
	src     []byte // the bytes expected
	n       int    // bytes written
	copied  []byte // non-nil once the bytes differed from src
	scratch [512]byte
}

// Write implements io.Writer; it never fails.
func (w *partWriter) Write(b []byte) (int, error) {
	if w.copied == nil {
		if len(b) <= len(w.src)-w.n && bytes.Equal(w.src[w.n:w.n+len(b)], b) {
			w.n += len(b)
			return len(b), nil
		}
		w.copied = append(make([]byte, 0, w.n+len(b)+len(w.scratch)), w.src[:w.n]...)
	}
	w.copied = append(w.copied, b...)
	w.n += len(b)
	return len(b), nil
}

// bytes returns the bytes written. A slice of src is capped at its length,
// so that nothing appended to it can write into the message.
func (w *partWriter) bytes() []byte {
	if w.copied != nil {
		return w.copied
	}
	return w.src[:w.n:w.n]
}

// partStart returns where the part after the first boundary delimiter line
// at or after offset from in body starts: the end of that line. It is a
// guess for readPart, which checks it; -1 when there is no such line.
func partStart(body []byte, boundary string, from int) int {
	if from < 0 || from > len(body) {
		return -1
	}
	for i := from; i < len(body); {
		end := bytes.IndexByte(body[i:], '\n')
		if end < 0 {
			return -1
		}
		end += i + 1
		line := body[i:end]
		if len(line) >= 2+len(boundary) && line[0] == '-' && line[1] == '-' && string(line[2:2+len(boundary)]) == boundary {
			return end
		}
		i = end
	}
	return -1
}

// checkPartHeaders applies the header caps to the header of every part of
// the multipart body, before go-message's multipart reader, which has no
// cap, builds its table of the fields: a part header of 1.5 million tiny
// fields cost 690 MB there, as the top-level header did. Every line that
// may be a boundary delimiter (RFC 2046 §5.1.1) is taken as one, whether or
// not the reader would agree, so no part the reader reads goes unchecked.
// One pass over the body, each header read up to its end or to the cap.
func checkPartHeaders(body []byte, boundary string, limits HeaderLimits) error {
	delim := []byte("--" + boundary)
	for i := 0; i < len(body); {
		end := bytes.IndexByte(body[i:], '\n')
		if end < 0 {
			return nil
		}
		end += i + 1
		line := body[i:end]
		i = end
		rest, ok := bytes.CutPrefix(line, delim)
		if !ok {
			continue
		}
		if bytes.HasPrefix(rest, []byte("--")) {
			return nil // the close delimiter: an epilogue follows, never read
		}
		if err := CheckHeader(body[end:], limits); err != nil {
			var e *Error
			if errors.As(err, &e) {
				return &Error{Reason: e.Reason, Err: fmt.Errorf("a body part's %w", e.Err)}
			}
			return err
		}
	}
	return nil
}

func firstPart(boundary string, body []byte, limits HeaderLimits) (*rawPart, error) {
	if boundary == "" {
		return nil, errors.New("no boundary parameter")
	}
	if err := checkPartHeaders(body, boundary, limits); err != nil {
		return nil, err
	}
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	p, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("first part: %w", err)
	}
	return readPart(p, body, partStart(body, boundary, 0))
}

// readDetached reads a multipart/signed body: exactly two parts, the signed
// content and the signature (RFC 1847 §2.1).
func readDetached(boundary string, body []byte, limits HeaderLimits, log *story) (*signedEntity, error) {
	if boundary == "" {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed without a boundary parameter")
	}
	if err := checkPartHeaders(body, boundary, limits); err != nil {
		return nil, err
	}
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	p, err := mr.NextPart()
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: reading the signed part: %w", err)
	}
	contentAt := partStart(body, boundary, 0)
	content, err := readPart(p, body, contentAt)
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: reading the signed part: %w", err)
	}
	logPart(log, content.Header)
	p, err = mr.NextPart()
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: reading the signature part: %w", err)
	}
	sigAt := -1
	if contentAt >= 0 {
		sigAt = partStart(body, boundary, contentAt+len(content.raw))
	}
	sigPart, err := readPart(p, body, sigAt)
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: reading the signature part: %w", err)
	}
	logPart(log, sigPart.Header)
	mediaType, params, err := parseContentType(sigPart.Header)
	if err != nil || mediaType != "application/pkcs7-signature" && mediaType != "application/x-pkcs7-signature" {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: second part is %q, not application/pkcs7-signature",
			truncate(sigPart.Header.Get("Content-Type"), 100))
	}
	if _, err := mr.NextPart(); !errors.Is(err, io.EOF) {
		return nil, fail(ReasonSignatureMalformed, "multipart/signed: more than two parts, or no closing boundary")
	}
	cms, err := decodeTransfer(sigPart.Header, sigPart.body)
	if err != nil {
		return nil, fail(ReasonSignatureMalformed, "decoding the signature part: %w", err)
	}
	name := filenameOf(sigPart.Header, params)
	log.Info("filename="+name+",bytes="+strconv.Itoa(len(cms)), "form", "detached", "signed_bytes", len(content.raw))
	return &signedEntity{mediaType: mediaType, content: content.raw, cms: cms, filename: name}, nil
}

// parseContentType returns the media type of h, text/plain when there is
// none (RFC 2045 §5.2).
func parseContentType(h textproto.Header) (string, map[string]string, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		return "text/plain", nil, nil
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	return strings.ToLower(mediaType), params, err
}

func filenameOf(h textproto.Header, ctParams map[string]string) string {
	if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return ctParams["name"]
}

// decodeTransfer undoes the Content-Transfer-Encoding of a body
// (RFC 2045 §6).
func decodeTransfer(h textproto.Header, body []byte) ([]byte, error) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		if out, ok := decodeBase64Lines(body); ok {
			return out, nil
		}
		// Line breaks are ignored by the decoder; other whitespace is an
		// error, as is a missing padding.
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		out, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean)))
		if err != nil {
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return out, nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil, fmt.Errorf("invalid quoted-printable: %w", err)
		}
		return out, nil
	case "", "7bit", "8bit", "binary":
		return body, nil
	default:
		return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", truncate(cte, 40))
	}
}

// decodeBase64Lines decodes a base64 body in one pass: padded base64 whose
// line breaks, spaces and tabs are ignored. It reports false for anything
// else, for the streaming decoder to decide and explain: on valid input both
// give the same bytes, and the error details (offsets in the decoder's
// chunks) stay those of the streaming decoder.
func decodeBase64Lines(body []byte) ([]byte, bool) {
	// The decoder itself skips CR and LF; spaces and tabs, rare, are
	// removed first.
	src := body
	if bytes.IndexByte(body, ' ') >= 0 || bytes.IndexByte(body, '\t') >= 0 {
		src = make([]byte, 0, len(body))
		for _, c := range body {
			if c != ' ' && c != '\t' {
				src = append(src, c)
			}
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Strict().Decode(out, src)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// logPart logs a MIME part's type as the original service did.
func logPart(log *story, h textproto.Header) {
	if !log.enabled() {
		return
	}
	desc := h.Get("Content-Description")
	if desc == "" {
		desc = "None"
	}
	log.Info("content-type=" + truncate(h.Get("Content-Type"), 200) + ",content-description=" + truncate(desc, 100))
}
