package providers

// Postmark's inbound webhook with the raw email included (the server's
// "Include raw email content in JSON payload", RawEmailEnabled in its API):
// a JSON POST whose RawEmail is the message, OriginalRecipient the envelope
// recipient, and whose first Headers entry is the Return-Path Postmark
// adds (https://postmarkapp.com/developer/webhooks/inbound-webhook). It is
// not signed: basic credentials in the webhook URL authenticate it
// (https://postmarkapp.com/developer/webhooks/webhooks-overview). Postmark
// takes 200; 403 stops its retries; any other answer is retried 10 times,
// from 1 minute to 6 hours apart
// (https://postmarkapp.com/developer/user-guide/inbound/parse-an-email).

import (
	"errors"
	"net/http"
	"strings"

	"github.com/certharvest/certharvest/ingest"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Postmark's fixed names.
const (
	// DefaultPostmarkPath is where Postmark posts by default.
	DefaultPostmarkPath = "/postmark"
	// PostmarkSource is the Source of the messages Postmark delivers.
	PostmarkSource = "postmark"
)

const msgPostmarkNoRaw = `No "RawEmail": turn on "Include raw email content in JSON payload" in the inbound stream's settings`

// PostmarkOptions configure a Postmark handler. The zero value of each
// field means its default; BasicAuth must be set.
type PostmarkOptions struct {
	// Path is the URL path Postmark posts to (default
	// DefaultPostmarkPath).
	Path string
	// BasicAuth is "user:password", the credentials of the webhook URL
	// (https://user:password@host/...), required of every request.
	BasicAuth string
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own.
	Input ingest.HTTPInputOptions
}

// Postmark is the http.Handler of Postmark's inbound webhook.
type Postmark struct {
	base
	opts PostmarkOptions
}

// NewPostmark returns the Postmark handler delivering into sink.
func NewPostmark(sink ingest.Sink, opts PostmarkOptions) (*Postmark, error) {
	if opts.Path == "" {
		opts.Path = DefaultPostmarkPath
	}
	if opts.BasicAuth == "" {
		return nil, errors.New("postmark: basic auth (user:password) is required: Postmark does not sign its requests")
	}
	if err := checkUserPass("postmark", opts.BasicAuth); err != nil {
		return nil, err
	}
	// 403 is Postmark's "do not retry": for what no retry can fix.
	b, err := newBase(sink, PostmarkSource, opts.Path, opts.Input, 2, ingest.Statuses{
		Malformed: http.StatusForbidden, TooLarge: http.StatusForbidden, Slow: http.StatusServiceUnavailable})
	if err != nil {
		return nil, err
	}
	return &Postmark{base: b, opts: opts}, nil
}

// Handle registers the handler at its path on mux.
func (h *Postmark) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// postmarkInbound is the part of Postmark's inbound JSON the handler
// keeps; TextBody, HtmlBody, Attachments and the rest are derived from
// RawEmail and skipped without being built.
type postmarkInbound struct {
	RecordType        string          `json:"RecordType"`
	MessageID         string          `json:"MessageID"`
	OriginalRecipient string          `json:"OriginalRecipient"`
	RawEmail          ingest.JSONText `json:"RawEmail"`
	Headers           firstHeader     `json:"Headers"`
}

// ServeHTTP takes Postmark's posts.
func (h *Postmark) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, false)
	if x == nil {
		return
	}
	defer end()
	if !basicAuthOK(r, h.opts.BasicAuth) {
		// Retried: the credentials may be fixed within Postmark's retries.
		unauthorized(x, "Basic", "basic credentials missing or wrong")
		return
	}
	if mt := mediaType(r); mt != "application/json" {
		x.Refuse("Unknown Content-Type in request headers", "content-type "+r.Header.Get("Content-Type"))
		return
	}
	body, ok := readBody(x)
	if !ok {
		return
	}
	var in postmarkInbound
	if err := jsonv2.Unmarshal(body, &in, jsontext.AllowInvalidUTF8(true)); err != nil {
		x.Refuse("Malformed JSON in request body", err.Error())
		return
	}
	if in.RecordType != "" && in.RecordType != "Inbound" {
		x.Refuse("Not an inbound message", "RecordType "+in.RecordType+": point only the inbound webhook here")
		return
	}
	if len(in.RawEmail) == 0 {
		x.Refuse(msgPostmarkNoRaw, "")
		return
	}
	var from string
	if strings.EqualFold(in.Headers.Name, "Return-Path") {
		from = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(in.Headers.Value), "<"), ">")
	}
	if !addressOK(from) || !addressOK(in.OriginalRecipient) || !addressOK(in.MessageID) {
		x.Refuse("Malformed envelope", "an address or the MessageID too long")
		return
	}
	env := x.Envelope()
	env.EnvelopeFrom = from
	if in.OriginalRecipient != "" {
		env.EnvelopeTo = []string{in.OriginalRecipient}
	}
	if in.MessageID != "" {
		env.Extra = map[string]string{"message_id": in.MessageID}
	}
	deliverOne(x, ingest.Incoming{Raw: in.RawEmail, Envelope: env}, envelopeLine(from, env.EnvelopeTo, len(in.RawEmail)))
}

// firstHeader is the first entry of Postmark's Headers array, which is
// the Return-Path Postmark adds; the others are read past without being
// kept (a message may have thousands of fields).
type firstHeader struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

// UnmarshalJSONFrom implements jsonv2.UnmarshalerFrom.
func (h *firstHeader) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() == 'n' {
		return nil
	}
	if tok.Kind() != '[' {
		return errors.New("the Headers member: want an array")
	}
	for first := true; dec.PeekKind() != ']'; first = false {
		if !first {
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		var e struct {
			Name  string `json:"Name"`
			Value string `json:"Value"`
		}
		if err := jsonv2.UnmarshalDecode(dec, &e); err != nil {
			return err
		}
		h.Name, h.Value = e.Name, e.Value
	}
	_, err = dec.ReadToken()
	return err
}
