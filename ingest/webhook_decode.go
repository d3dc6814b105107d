package ingest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/certharvest/certharvest/verify"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// decode reads the JSON array one item at a time (the decoder buffers one
// item, not the whole body, and bounds nesting) and returns the messages
// decoded so far, with the first error.
//
// It uses github.com/go-json-experiment/json, the upstream of Go's
// encoding/json/v2: about 4 times as fast as encoding/json on a relay
// payload, which is mostly long strings. As encoding/json did, it matches
// member names without regard to case and leaves bytes that are not UTF-8
// as they are (JSONText keeps them); unlike it, a member named twice in
// one object is an error, so no relay message can carry two different
// messages.
func (h *Webhook) decode(body io.Reader, env verify.Envelope) ([]Incoming, error) {
	dec := jsontext.NewDecoder(body, jsontext.AllowInvalidUTF8(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errWebhookMalformed, err)
	}
	if tok.Kind() != '[' {
		return nil, fmt.Errorf("%w: want an array of relay messages", errWebhookMalformed)
	}
	var msgs []Incoming
	for i := 0; dec.PeekKind() != ']'; i++ {
		if i >= h.opts.MaxItems {
			return msgs, fmt.Errorf("%w: the limit is %d", errWebhookTooMany, h.opts.MaxItems)
		}
		var item relayItem
		if err := jsonv2.UnmarshalDecode(dec, &item, jsonv2.MatchCaseInsensitiveNames(true)); err != nil {
			return msgs, fmt.Errorf("%w: item %d: %w", errWebhookMalformed, i, err)
		}
		m, err := item.incoming(env)
		if err != nil {
			return msgs, fmt.Errorf("%w: item %d: %w", errWebhookItem, i, err)
		}
		msgs = append(msgs, m)
	}
	if _, err := dec.ReadToken(); err != nil { // the closing bracket
		return msgs, fmt.Errorf("%w: %w", errWebhookMalformed, err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("data after the array")
		}
		return msgs, fmt.Errorf("%w: %w", errWebhookMalformed, err)
	}
	return msgs, nil
}

// webhookErrorStatus maps a decoding error to the answer's status and
// message.
func webhookErrorStatus(err error) (int, string) {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, errWebhookTooMany):
		s := err.Error()
		return http.StatusRequestEntityTooLarge, strings.ToUpper(s[:1]) + s[1:]
	case errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusRequestTimeout, webhookMsgSlow
	default:
		// errWebhookMalformed or errWebhookItem, with the detail: the
		// sender's own mistake, capitalised as an answer.
		s := err.Error()
		return http.StatusBadRequest, strings.ToUpper(s[:1]) + s[1:]
	}
}

// relayItem is one element of the request's array.
type relayItem struct {
	Msys struct {
		RelayMessage *relayMessage `json:"relay_message"`
	} `json:"msys"`
}

// relayMessage is the part of a relay message the webhook keeps; the rest
// (content.headers, html, text, subject, to) is derived from email_rfc822
// and skipped: the decoder steps over those values without building
// anything of them, so content.headers (an array of one-member objects, one
// per header field) costs no table however many fields it lists
// (TestWebhookHeadersArrayNotDecoded). The caps on the header apply to
// email_rfc822 itself, in the pipeline.
type relayMessage struct {
	MsgFrom      string  `json:"msg_from"`
	RcptTo       string  `json:"rcpt_to"`
	FriendlyFrom string  `json:"friendly_from"`
	CustomerID   relayID `json:"customer_id"`
	WebhookID    relayID `json:"webhook_id"`
	Protocol     string  `json:"protocol"`
	Content      struct {
		EmailRFC822 JSONText `json:"email_rfc822"`
		IsBase64    bool     `json:"email_rfc822_is_base64"`
	} `json:"content"`
}

// incoming turns a relay message into a delivery: the message bytes exactly
// as relayed, and its context.
func (it *relayItem) incoming(env verify.Envelope) (Incoming, error) {
	rm := it.Msys.RelayMessage
	if rm == nil {
		return Incoming{}, errors.New("no msys.relay_message")
	}
	raw := []byte(rm.Content.EmailRFC822)
	if rm.Content.IsBase64 {
		// RFC 4648 §4; the line breaks of MIME-style base64 are skipped.
		// Decoded in place, in the string's own copy (JSONText): the
		// decoder writes each quantum after reading it, and the output
		// (3 bytes per 4) never overtakes the input still to read
		// (TestBase64DecodeInPlace holds the library to it). No second
		// copy of the message.
		n, err := base64.StdEncoding.Decode(raw, raw)
		if err != nil {
			return Incoming{}, fmt.Errorf("content.email_rfc822 is not valid base64: %w", err)
		}
		raw = raw[:n]
	}
	if len(raw) == 0 {
		return Incoming{}, errors.New("content.email_rfc822 (the relayed message) is missing or empty")
	}
	extra := map[string]string{}
	for _, f := range []struct{ key, val string }{
		{"msg_from", rm.MsgFrom}, {"rcpt_to", rm.RcptTo}, {"friendly_from", rm.FriendlyFrom},
		{"customer_id", string(rm.CustomerID)}, {"webhook_id", string(rm.WebhookID)}, {"protocol", rm.Protocol},
	} {
		if len(f.val) > webhookMaxField {
			return Incoming{}, fmt.Errorf("%s is longer than %d bytes", f.key, webhookMaxField)
		}
		if f.val != "" && f.key != "msg_from" && f.key != "rcpt_to" {
			extra[f.key] = f.val
		}
	}
	env.EnvelopeFrom = rm.MsgFrom
	if rm.RcptTo != "" {
		env.EnvelopeTo = []string{rm.RcptTo}
	}
	if len(extra) > 0 {
		env.Extra = extra
	}
	return Incoming{Raw: raw, Envelope: env}, nil
}

// relayID is an id SparkPost sends as a string; a number is taken too.
type relayID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *relayID) UnmarshalJSON(data []byte) error {
	switch {
	case string(data) == "null":
		*id = ""
	case len(data) > 0 && data[0] == '"':
		s, err := unquoteJSON(data)
		if err != nil {
			return err
		}
		*id = relayID(s)
	case len(data) > 0 && (data[0] == '-' || data[0] >= '0' && data[0] <= '9'):
		*id = relayID(data)
	default:
		return fmt.Errorf("want a string or a number, not %.20s", data)
	}
	return nil
}

// JSONText is a JSON string decoded to bytes in one copy (a string field
// would cost two), keeping any bytes that are not UTF-8 as they are where
// encoding/json would replace them: a message must stay exactly as
// relayed, or its signatures break. The relay's email_rfc822 is one, and
// the other providers' messages in JSON (package ingest/providers).
type JSONText []byte

// UnmarshalJSON implements json.Unmarshaler.
func (t *JSONText) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*t = nil
		return nil
	}
	b, err := unquoteJSON(data)
	if err != nil {
		return err
	}
	*t = b
	return nil
}

// unquoteJSON decodes a JSON string literal (RFC 8259 §7) that the decoder
// has already checked. Like encoding/json, an escaped lone surrogate becomes
// U+FFFD.
func unquoteJSON(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return nil, fmt.Errorf("want a string, not %.20s", data)
	}
	s := data[1 : len(data)-1]
	out := make([]byte, 0, len(s))
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(out, s...), nil
		}
		out = append(out, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return nil, errors.New("bad escape in string")
		}
		switch c := s[1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[2:])
			if r < 0 {
				return nil, errors.New("bad \\u escape in string")
			}
			s = s[6:]
			if utf16.IsSurrogate(r) {
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[2:])); r2 != unicode.ReplacementChar {
						out = utf8.AppendRune(out, r2)
						s = s[6:]
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, fmt.Errorf("bad escape \\%c in string", c)
		}
		s = s[2:]
	}
}

// hex4 decodes four hex digits, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
