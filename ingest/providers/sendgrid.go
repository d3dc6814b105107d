package providers

// SendGrid (Twilio) Inbound Parse, with "POST the raw, full MIME message"
// ticked (send_raw): a multipart/form-data POST whose field email is the
// message and envelope its SMTP envelope as JSON, {"to":[...],"from":"..."}
// (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook).
// It is authenticated by the parse setting's signed-webhook security policy
// (ECDSA P-256 over SHA-256 of the timestamp header followed by the body,
// https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/securing-your-parse-webhooks),
// by basic credentials in the URL, or both. SendGrid retries an answer in
// the 5xx range for up to 3 days and takes any 2xx; a 4xx is not retried.

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// SendGrid's fixed names.
const (
	// DefaultSendGridPath is where SendGrid posts by default.
	DefaultSendGridPath = "/sendgrid"
	// SendGridSource is the Source of the messages SendGrid delivers.
	SendGridSource = "sendgrid"
	// SendGridSignatureHeader and SendGridTimestampHeader carry the
	// signed-webhook policy's signature (base64 of an ASN.1 ECDSA
	// signature) and its timestamp (Unix seconds).
	SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// DefaultSendGridMaxAge is how old a signature's timestamp may be: SendGrid
// retries for up to 3 days, and its documentation does not say whether a
// retry is signed anew; a captured request is refused after that.
const DefaultSendGridMaxAge = 73 * time.Hour

const msgSendGridParsed = `No "email" field: tick "POST the raw, full MIME message" in the Inbound Parse settings`

// SendGridOptions configure a SendGrid handler. The zero value of each
// field means its default; at least one of PublicKey and BasicAuth must be
// set.
type SendGridOptions struct {
	// Path is the URL path SendGrid posts to (default DefaultSendGridPath).
	Path string
	// PublicKey is the security policy's verification key, as SendGrid
	// gives it (base64 of the DER public key), or in PEM. When set, every
	// request must carry a valid signature.
	PublicKey string
	// BasicAuth is "user:password": when set, every request must carry
	// these basic credentials (the URL's https://user:password@host/...).
	BasicAuth string
	// MaxAge is how old a signature's timestamp may be (default
	// DefaultSendGridMaxAge).
	MaxAge time.Duration
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own.
	Input ingest.HTTPInputOptions
}

// SendGrid is the http.Handler of SendGrid's Inbound Parse webhook.
type SendGrid struct {
	base
	opts SendGridOptions
	key  *ecdsa.PublicKey
}

// NewSendGrid returns the SendGrid handler delivering into sink.
func NewSendGrid(sink ingest.Sink, opts SendGridOptions) (*SendGrid, error) {
	if opts.Path == "" {
		opts.Path = DefaultSendGridPath
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultSendGridMaxAge
	}
	if opts.PublicKey == "" && opts.BasicAuth == "" {
		return nil, errors.New("sendgrid: give the security policy's public key, basic auth, or both")
	}
	if err := checkUserPass("sendgrid", opts.BasicAuth); err != nil {
		return nil, err
	}
	h := &SendGrid{opts: opts}
	if opts.PublicKey != "" {
		key, err := ParseSendGridKey(opts.PublicKey)
		if err != nil {
			return nil, err
		}
		h.key = key
	}
	// SendGrid retries only 5xx: a slow body is worth a retry.
	b, err := newBase(sink, SendGridSource, opts.Path, opts.Input, 2, ingest.Statuses{Slow: http.StatusServiceUnavailable})
	if err != nil {
		return nil, err
	}
	h.base = b
	return h, nil
}

// ParseSendGridKey parses a signed-webhook verification key: base64 of a
// DER SubjectPublicKeyInfo (as SendGrid shows it), or the same in PEM. It
// must be an ECDSA P-256 key.
func ParseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("sendgrid public key: not PEM, and not base64: %w", err)
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid public key: %w", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok || key.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("sendgrid public key: want an ECDSA P-256 key, not %T", pub)
	}
	return key, nil
}

// Handle registers the handler at its path on mux.
func (h *SendGrid) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// ServeHTTP takes SendGrid's posts.
func (h *SendGrid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, false)
	if x == nil {
		return
	}
	defer end()
	if h.opts.BasicAuth != "" && !basicAuthOK(r, h.opts.BasicAuth) {
		unauthorized(x, "Basic", "basic credentials missing or wrong")
		return
	}
	sig, ts := r.Header.Get(SendGridSignatureHeader), r.Header.Get(SendGridTimestampHeader)
	if h.key != nil {
		if err := h.checkTimestamp(ts); err != nil {
			x.Reply(http.StatusForbidden, msgForbidden, err.Error())
			return
		}
	}
	body, ok := readBody(x)
	if !ok {
		return
	}
	if h.key != nil && !h.signed(body, sig, ts) {
		x.Reply(http.StatusForbidden, msgForbidden, "signature does not verify with the public key")
		return
	}
	f, ok := parseFormOf(x, r, body)
	if !ok {
		return
	}
	raw, ok := f.last("email")
	if !ok {
		detail := ""
		if _, parsed := f.last("headers"); parsed {
			detail = "the request has the parsed fields (headers, text, html)"
		}
		x.Refuse(msgSendGridParsed, detail)
		return
	}
	if len(raw) == 0 {
		x.Refuse("Empty \"email\" field", "")
		return
	}
	var envelope struct {
		To   []string `json:"to"`
		From string   `json:"from"`
	}
	if e, ok := f.last("envelope"); ok {
		if err := json.Unmarshal(e, &envelope); err != nil {
			x.Refuse("Malformed \"envelope\" field", err.Error())
			return
		}
	}
	if !addressOK(envelope.From) || len(envelope.To) > maxRecipients {
		x.Refuse("Malformed \"envelope\" field", "an address too long or too many recipients")
		return
	}
	for _, a := range envelope.To {
		if !addressOK(a) {
			x.Refuse("Malformed \"envelope\" field", "an address too long")
			return
		}
	}
	env := x.Envelope()
	env.EnvelopeFrom, env.EnvelopeTo = envelope.From, envelope.To
	deliverOne(x, ingest.Incoming{Raw: raw, Envelope: env}, envelopeLine(envelope.From, envelope.To, len(raw)))
}

// checkTimestamp checks the signature's timestamp, before the body is
// read: present, at most MaxAge old, at most a few minutes ahead.
func (h *SendGrid) checkTimestamp(ts string) error {
	if ts == "" {
		return errors.New(SendGridTimestampHeader + " missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %.30q is not a number", SendGridTimestampHeader, ts)
	}
	now := h.in.Options().Now().Unix()
	if now-sec > int64(h.opts.MaxAge/time.Second) || sec-now > maxClockSkew {
		return fmt.Errorf("signed at %s, outside the window of %s", time.Unix(sec, 0).UTC().Format(time.RFC3339), h.opts.MaxAge)
	}
	return nil
}

// signed reports whether sig (base64 of an ASN.1 ECDSA signature) signs
// SHA-256 of the timestamp followed by the body.
func (h *SendGrid) signed(body []byte, sig, ts string) bool {
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	sum := sha256.New()
	sum.Write([]byte(ts))
	sum.Write(body)
	return ecdsa.VerifyASN1(h.key, sum.Sum(nil), der)
}
