package providers

// A Mailgun route whose action is forward() to a URL ending in "mime": for
// such a URL Mailgun posts the message as it is, in the field body-mime,
// with the envelope in recipient and sender, as
// application/x-www-form-urlencoded or, when the message has attachments,
// multipart/form-data
// (https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/receive-http).
// The fields timestamp, token and signature authenticate it: signature is
// the hex HMAC-SHA256 of timestamp followed by token with the HTTP webhook
// signing key
// (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks).
// Mailgun takes 200; 406 refuses the message for good; it retries any
// other answer for about 8 hours.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// Mailgun's fixed names.
const (
	// DefaultMailgunPath is where a route forwards by default: Mailgun
	// posts the raw message only to a URL ending in "mime".
	DefaultMailgunPath = "/mailgun/mime"
	// MailgunSource is the Source of the messages Mailgun delivers.
	MailgunSource = "mailgun"
)

// Mailgun defaults.
const (
	// DefaultMailgunMaxAge is how old a signed timestamp may be. Mailgun
	// retries a request it could not deliver for about 8 hours (10 and 15
	// minutes, then 30 minutes, 1, 2 and 4 hours apart), and a retry
	// carries the first attempt's signature (Hookdeck's Mailgun reference;
	// Mailgun's documentation does not say): a shorter window would refuse
	// for good a message certharvest asked to be retried (503). The
	// memory of tokens covers the whole window, so a replay is refused
	// however long it is.
	DefaultMailgunMaxAge = 8*time.Hour + 15*time.Minute
	// DefaultMailgunMaxTokens bounds the memory of tokens (about 60 bytes
	// each): 100,000 requests in the window, 3 a second for 8 hours.
	DefaultMailgunMaxTokens = 100_000
)

const msgMailgunParsed = `No "body-mime" field: the route's forward() URL must end in "mime"`

// MailgunOptions configure a Mailgun handler. The zero value of each field
// means its default; SigningKey must be set.
type MailgunOptions struct {
	// Path is the URL path the route forwards to (default
	// DefaultMailgunPath); it must end in "mime".
	Path string
	// SigningKey is the account's HTTP webhook signing key.
	SigningKey string
	// MaxAge is how far in the past a signed timestamp may be (default
	// DefaultMailgunMaxAge); one more than 5 minutes in the future is
	// refused too.
	MaxAge time.Duration
	// MaxTokens bounds the tokens remembered against replay (default
	// DefaultMailgunMaxTokens). When that many are within MaxAge, new
	// requests get 503 (Mailgun retries them).
	MaxTokens int
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own.
	Input ingest.HTTPInputOptions
}

// Mailgun is the http.Handler of a Mailgun route's forward() to a URL
// ending in "mime".
type Mailgun struct {
	base
	opts   MailgunOptions
	tokens *tokenMemory
}

// NewMailgun returns the Mailgun handler delivering into sink.
func NewMailgun(sink ingest.Sink, opts MailgunOptions) (*Mailgun, error) {
	if opts.Path == "" {
		opts.Path = DefaultMailgunPath
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMailgunMaxAge
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = DefaultMailgunMaxTokens
	}
	if opts.SigningKey == "" {
		return nil, errors.New("mailgun: the webhook signing key is required")
	}
	if !strings.HasSuffix(opts.Path, "mime") {
		return nil, fmt.Errorf("mailgun path %q: Mailgun posts the raw message only to a URL ending in \"mime\"", opts.Path)
	}
	// 406 is Mailgun's "do not retry": for what no retry can fix.
	b, err := newBase(sink, MailgunSource, opts.Path, opts.Input, 2, ingest.Statuses{
		Malformed: http.StatusNotAcceptable, TooLarge: http.StatusNotAcceptable, Slow: http.StatusServiceUnavailable})
	if err != nil {
		return nil, err
	}
	return &Mailgun{base: b, opts: opts, tokens: newTokenMemory(opts.MaxTokens)}, nil
}

// Handle registers the handler at its path on mux.
func (h *Mailgun) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// ServeHTTP takes the route's posts.
func (h *Mailgun) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, false)
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
	timestamp, token, signature := f.lastString("timestamp"), f.lastString("token"), f.lastString("signature")
	if !h.signed(timestamp, token, signature) {
		// Retried: the key may be fixed within Mailgun's retries.
		x.Reply(http.StatusUnauthorized, msgUnauthorized, "signature missing or wrong")
		return
	}
	sec, _ := strconv.ParseInt(timestamp, 10, 64)
	signedAt, now := time.Unix(sec, 0), h.in.Options().Now()
	if now.Sub(signedAt) > h.opts.MaxAge || signedAt.Sub(now) > maxClockSkew*time.Second {
		x.Refuse("Stale signature", fmt.Sprintf("signed at %s, outside the window of %s", signedAt.UTC().Format(time.RFC3339), h.opts.MaxAge))
		return
	}
	raw, ok := f.last("body-mime")
	if !ok || len(raw) == 0 {
		x.Refuse(msgMailgunParsed, "")
		return
	}
	from, to := f.lastString("sender"), f.lastString("recipient")
	if !addressOK(from) || !addressOK(to) {
		x.Refuse("Malformed envelope", "sender or recipient too long")
		return
	}
	switch h.tokens.claim(token, signedAt.Add(h.opts.MaxAge), now) {
	case replayed:
		x.Refuse("Replayed request", "token seen before")
		return
	case memoryFull:
		x.Header().Set("Retry-After", "60")
		x.Reply(http.StatusServiceUnavailable, "Too many requests remembered; retry later",
			fmt.Sprintf("%d tokens within the window of %s", h.opts.MaxTokens, h.opts.MaxAge))
		return
	}
	env := x.Envelope()
	env.EnvelopeFrom = from
	if to != "" {
		env.EnvelopeTo = []string{to}
	}
	if !deliverOne(x, ingest.Incoming{Raw: raw, Envelope: env}, envelopeLine(from, env.EnvelopeTo, len(raw))) {
		// Not taken: Mailgun retries it with the same token.
		h.tokens.forget(token)
	}
}

// signed reports whether signature is the hex HMAC-SHA256 of timestamp
// followed by token with the signing key, compared in constant time.
func (h *Mailgun) signed(timestamp, token, signature string) bool {
	if timestamp == "" || token == "" {
		return false
	}
	if _, err := strconv.ParseInt(timestamp, 10, 64); err != nil {
		return false
	}
	got, err := hex.DecodeString(signature)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(h.opts.SigningKey))
	mac.Write([]byte(timestamp))
	mac.Write([]byte(token))
	return hmac.Equal(got, mac.Sum(nil))
}
