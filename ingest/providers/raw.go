package providers

// The raw input: a POST whose body is the message itself (Content-Type
// message/rfc822), authenticated by a bearer token (RFC 6750 §2.1), its
// envelope in the header fields X-Envelope-From and X-Envelope-To (the
// latter repeated, or comma-separated). For Cloudflare Email Workers
// (docs/WEBHOOKS.md has one) and scripts. The body is received as a
// message, streamed into the sink's writer: no decoding, no copy.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/certharvest/certharvest/ingest"
)

// The raw input's fixed names.
const (
	// DefaultRawPath is where the raw input takes posts by default.
	DefaultRawPath = "/raw"
	// RawSource is the Source of the messages the raw input delivers.
	RawSource = "raw"
	// RawFromHeader and RawToHeader carry the envelope.
	RawFromHeader = "X-Envelope-From"
	RawToHeader   = "X-Envelope-To"
)

// RawOptions configure a raw handler. The zero value of each field means
// its default; Token must be set.
type RawOptions struct {
	// Path is the URL path of the posts (default DefaultRawPath).
	Path string
	// Token is the bearer token required in every request's
	// Authorization header.
	Token string
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own.
	Input ingest.HTTPInputOptions
}

// Raw is the http.Handler of the raw input.
type Raw struct {
	base
	opts RawOptions
}

// NewRaw returns the raw handler delivering into sink.
func NewRaw(sink ingest.Sink, opts RawOptions) (*Raw, error) {
	if opts.Path == "" {
		opts.Path = DefaultRawPath
	}
	if opts.Token == "" {
		return nil, errors.New("raw: a bearer token is required")
	}
	// The body is the message: nothing is decoded from it.
	b, err := newBase(sink, RawSource, opts.Path, opts.Input, 1, ingest.Statuses{})
	if err != nil {
		return nil, err
	}
	return &Raw{base: b, opts: opts}, nil
}

// Handle registers the handler at its path on mux.
func (h *Raw) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// ServeHTTP takes the posts.
func (h *Raw) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, false)
	if x == nil {
		return
	}
	defer end()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || !ingest.SecretEqual(strings.TrimSpace(token), h.opts.Token) {
		unauthorized(x, "Bearer", "bearer token missing or wrong")
		return
	}
	if mt := mediaType(r); mt != "message/rfc822" {
		x.Reply(http.StatusUnsupportedMediaType, "Unsupported Media Type: want message/rfc822", "content-type "+r.Header.Get("Content-Type"))
		return
	}
	from, to, err := rawEnvelope(r.Header)
	if err != nil {
		x.Refuse("Malformed envelope", err.Error())
		return
	}
	msg, err := x.ReadMessage()
	x.LogSize()
	if err != nil {
		x.Fail(err)
		return
	}
	if msg.Size() == 0 {
		x.Refuse("Empty message", "")
		return
	}
	env := x.Envelope()
	env.EnvelopeFrom, env.EnvelopeTo = from, to
	deliverOne(x, ingest.Incoming{Writer: msg, Envelope: env}, envelopeLine(from, to, int(msg.Size())))
}

// rawEnvelope returns the envelope of the header fields: one sender (<>
// for none), the recipients of every X-Envelope-To, comma-separated.
func rawEnvelope(h http.Header) (from string, to []string, err error) {
	froms := h.Values(RawFromHeader)
	if len(froms) > 1 {
		return "", nil, fmt.Errorf("%s given %d times", RawFromHeader, len(froms))
	}
	if len(froms) == 1 {
		from = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(froms[0]), "<"), ">")
	}
	if !addressOK(from) {
		return "", nil, fmt.Errorf("%s too long", RawFromHeader)
	}
	for _, v := range h.Values(RawToHeader) {
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(a), "<"), ">")
			if a == "" {
				continue
			}
			if !addressOK(a) || len(to) >= maxRecipients {
				return "", nil, fmt.Errorf("%s: an address too long, or more than %d", RawToHeader, maxRecipients)
			}
			to = append(to, a)
		}
	}
	return from, to, nil
}
