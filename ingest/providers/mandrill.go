package providers

// Mandrill (Mailchimp Transactional) inbound routes: a POST of one form
// field, mandrill_events, a JSON array of up to 1,000 events; an inbound
// event's msg.raw_msg is the message and msg.email the recipient
// (https://mailchimp.com/developer/transactional/docs/webhooks/). The
// header X-Mandrill-Signature authenticates it: base64 of the HMAC-SHA1,
// with the route's webhook key, of the exact webhook URL followed by each
// POST field's name and value in the names' sorted order
// (https://mailchimp.com/developer/transactional/guides/track-respond-activity-webhooks/).
// Mandrill checks a URL with a HEAD request when it is added, and retries
// a batch that does not get a 200.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Mandrill's fixed names.
const (
	// DefaultMandrillPath is where Mandrill posts by default.
	DefaultMandrillPath = "/mandrill"
	// MandrillSource is the Source of the messages Mandrill delivers.
	MandrillSource = "mandrill"
	// MandrillSignatureHeader carries the request's signature.
	MandrillSignatureHeader = "X-Mandrill-Signature"
)

// MandrillOptions configure a Mandrill handler. The zero value of each
// field means its default; WebhookKey and URL must be set.
type MandrillOptions struct {
	// Path is the URL path Mandrill posts to (default
	// DefaultMandrillPath).
	Path string
	// WebhookKey is the inbound route's webhook key.
	WebhookKey string
	// URL is the webhook URL exactly as given to Mandrill (scheme, host,
	// credentials if any, path, query): the signature covers it, and
	// behind a proxy the request does not tell it.
	URL string
	// MaxItems caps the events of one request (default
	// ingest.DefaultWebhookMaxItems, Mandrill's own limit).
	MaxItems int
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own.
	Input ingest.HTTPInputOptions
}

// Mandrill is the http.Handler of Mandrill's inbound webhook.
type Mandrill struct {
	base
	opts MandrillOptions
}

// NewMandrill returns the Mandrill handler delivering into sink.
func NewMandrill(sink ingest.Sink, opts MandrillOptions) (*Mandrill, error) {
	if opts.Path == "" {
		opts.Path = DefaultMandrillPath
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = ingest.DefaultWebhookMaxItems
	}
	if opts.WebhookKey == "" || opts.URL == "" {
		return nil, errors.New("mandrill: the route's webhook key and the webhook URL as given to Mandrill are required")
	}
	// The form's value is decoded in the body itself: the body, and the
	// messages decoded from it, twice the body at most.
	b, err := newBase(sink, MandrillSource, opts.Path, opts.Input, 2, ingest.Statuses{Slow: http.StatusServiceUnavailable})
	if err != nil {
		return nil, err
	}
	return &Mandrill{base: b, opts: opts}, nil
}

// Handle registers the handler at its path on mux.
func (h *Mandrill) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// mandrillEvent is the part of an event the handler keeps; the rest of
// msg (headers, text, html, attachments) is derived from raw_msg and
// skipped without being built.
type mandrillEvent struct {
	Event string `json:"event"`
	Msg   *struct {
		RawMsg ingest.JSONText `json:"raw_msg"`
		Email  string          `json:"email"`
	} `json:"msg"`
}

// ServeHTTP takes Mandrill's posts, and answers its HEAD check 200.
func (h *Mandrill) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, true)
	if x == nil {
		return
	}
	defer end()
	body, ok := readBody(x)
	if !ok {
		return
	}
	f, ok := parseFormOf(x, r, body)
	if !ok {
		return
	}
	events, ok := f.last("mandrill_events")
	if !h.signed(f, r.Header.Get(MandrillSignatureHeader)) {
		if ok && string(events) == "[]" {
			// Mandrill's test of a new URL, signed with a key of its own:
			// nothing to take.
			x.Reply(http.StatusOK, msgOK, "an empty batch, not signed with the key")
			return
		}
		x.Reply(http.StatusUnauthorized, msgUnauthorized, "signature missing or wrong (is the webhook URL exactly the one given to Mandrill?)")
		return
	}
	if !ok {
		x.Refuse(`No "mandrill_events" field`, "")
		return
	}
	msgs, lines, skipped, err := h.decode(events, x.Envelope())
	if err != nil {
		x.Fail(err)
		return
	}
	if skipped > 0 {
		logIgnored(x, fmt.Sprintf("%d %s not inbound: ignored", skipped, pluralWord(skipped, "event", "events")))
	}
	if len(msgs) == 0 {
		logIgnored(x, "no messages in the request")
		x.Respond(http.StatusOK, msgOK)
		return
	}
	if x.Deliver(msgs, lines) {
		x.Respond(http.StatusOK, msgOK)
	}
}

// signed reports whether sig is base64 of the HMAC-SHA1 of the URL and
// the form's fields, each name followed by its (last) value, in the names'
// sorted order.
func (h *Mandrill) signed(f form, sig string) bool {
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || sig == "" {
		return false
	}
	var names []string
	for _, field := range f {
		if !slices.Contains(names, field.name) {
			names = append(names, field.name)
		}
	}
	slices.Sort(names)
	mac := hmac.New(sha1.New, []byte(h.opts.WebhookKey))
	io.WriteString(mac, h.opts.URL)
	for _, name := range names {
		v, _ := f.last(name)
		io.WriteString(mac, name)
		mac.Write(v)
	}
	return hmac.Equal(got, mac.Sum(nil))
}

// decode reads the events one at a time and returns the inbound ones as
// messages, with their log lines, and how many others it skipped.
func (h *Mandrill) decode(events []byte, env0 verify.Envelope) (msgs []ingest.Incoming, lines []string, skipped int, err error) {
	dec := jsontext.NewDecoder(bytesReader(events), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, nil, 0, errors.New("malformed mandrill_events: want a JSON array")
	}
	for i := 0; dec.PeekKind() != ']'; i++ {
		if i >= h.opts.MaxItems {
			return nil, nil, 0, fmt.Errorf("%w: the limit is %d events", ingest.ErrTooMany, h.opts.MaxItems)
		}
		var e mandrillEvent
		if err := jsonv2.UnmarshalDecode(dec, &e); err != nil {
			return nil, nil, 0, fmt.Errorf("malformed mandrill_events: event %d: %w", i, err)
		}
		if e.Event != "inbound" || e.Msg == nil {
			skipped++
			continue
		}
		if len(e.Msg.RawMsg) == 0 {
			return nil, nil, 0, fmt.Errorf("bad inbound event %d: msg.raw_msg is missing or empty", i)
		}
		if !addressOK(e.Msg.Email) {
			return nil, nil, 0, fmt.Errorf("bad inbound event %d: msg.email too long", i)
		}
		env := env0
		if e.Msg.Email != "" {
			env.EnvelopeTo = []string{e.Msg.Email}
		}
		msgs = append(msgs, ingest.Incoming{Raw: e.Msg.RawMsg, Envelope: env})
		lines = append(lines, envelopeLine("", env.EnvelopeTo, len(e.Msg.RawMsg)))
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, nil, 0, fmt.Errorf("malformed mandrill_events: %w", err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, nil, 0, errors.New("malformed mandrill_events: data after the array")
	}
	return msgs, lines, skipped, nil
}
