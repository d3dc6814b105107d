package providers

// Amazon SES receiving, with a receipt rule's SNS action and the encoding
// Base64: SES publishes the mail to an SNS topic
// (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-action-sns.html;
// mail of up to 150 KB, header included: larger mail bounces, and needs the
// S3 action, ses_s3.go), and SNS posts the notification to this endpoint as
// JSON: an SNS message (sns.go) whose Message is the SES notification, JSON
// too, {"notificationType":"Received","mail":{"source":...},"receipt":{
// "recipients":[...],"action":{"type":"SNS","encoding":"BASE64",...}},
// "content":"<the message, base64>"}
// (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html).
// Only the configured topics are taken; their subscription is confirmed by
// GETting its SubscribeURL. SNS retries a 5xx answer or none (by default 3
// times, 20 seconds apart: give the subscription a delivery policy with
// more); any other answer counts as delivered
// (https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html).

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// SES's fixed names.
const (
	// DefaultSESPath is where SNS posts by default.
	DefaultSESPath = "/ses"
	// SESSource is the Source of the messages SES delivers.
	SESSource = "ses"
)

// MaxSESRequestBytes caps an SNS request body: an SNS message is at most
// 256 KB (its Message escaped in it may take a little more), and SES
// publishes mail of up to 150 KB to SNS, base64-encoded.
const MaxSESRequestBytes = 1 << 20

// SESOptions configure an SES handler. The zero value of each field means
// its default; TopicARNs must be set.
type SESOptions struct {
	// Path is the URL path of the SNS subscription (default
	// DefaultSESPath).
	Path string
	// TopicARNs are the SNS topics whose messages are taken (and whose
	// subscription is confirmed); any other topic's get 403.
	TopicARNs []string
	// AllowHost tells whether a SigningCertURL or SubscribeURL may be
	// fetched from host (default: DefaultSNSHost matches it). Tests allow
	// their local HTTPS server.
	AllowHost func(host string) bool
	// Client fetches the signing certificates and confirms subscriptions
	// (default: http.DefaultClient's settings; redirects are never
	// followed).
	Client *http.Client
	// S3, when not nil, takes the notifications of the receipt rules' S3
	// action, fetching the mail from the buckets it allows (ses_s3.go).
	// Without it they get 400.
	S3 *SESS3Options
	// Input holds the limits, the memory budget, the log and the hooks
	// shared with the other HTTP inputs; Name, Source, Weight and Statuses
	// are the handler's own, and MaxRequestBytes is at most
	// MaxSESRequestBytes.
	Input ingest.HTTPInputOptions
}

// SES is the http.Handler of the SNS subscription of Amazon SES receipt
// rules' SNS action, and of their S3 action when enabled.
type SES struct {
	base
	opts     SESOptions
	verifier *snsVerifier
	s3       *sesS3 // nil: the S3 action is refused
}

// NewSES returns the SES handler delivering into sink.
func NewSES(sink ingest.Sink, opts SESOptions) (*SES, error) {
	if opts.Path == "" {
		opts.Path = DefaultSESPath
	}
	if len(opts.TopicARNs) == 0 {
		return nil, errors.New("ses: give the ARNs of the SNS topics to take")
	}
	for _, arn := range opts.TopicARNs {
		if f := strings.Split(arn, ":"); len(f) != 6 || f[0] != "arn" || f[3] == "" {
			return nil, fmt.Errorf("ses: %q is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", arn)
		}
	}
	// SNS messages are at most 256 KB: a larger body is not SNS's.
	if opts.Input.MaxRequestBytes <= 0 || opts.Input.MaxRequestBytes > MaxSESRequestBytes {
		opts.Input.MaxRequestBytes = MaxSESRequestBytes
	}
	if opts.AllowHost == nil {
		opts.AllowHost = DefaultSNSHost.MatchString
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	// The body holds Message (escaped), Message the notification, the
	// notification the content: three times the body at most. SNS takes
	// any 4xx as delivered, a 5xx as worth a retry.
	b, err := newBase(sink, SESSource, opts.Path, opts.Input, 3, ingest.Statuses{Slow: http.StatusServiceUnavailable})
	if err != nil {
		return nil, err
	}
	h := &SES{base: b, opts: opts, verifier: newSNSVerifier(opts.Client, opts.AllowHost, b.in.Options().Now)}
	if opts.S3 != nil {
		if h.s3, err = newSESS3(*opts.S3, opts.TopicARNs, opts.Input.MaxMessageBytes); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Handle registers the handler at its path on mux.
func (h *SES) Handle(mux *http.ServeMux) { mux.Handle(h.path, h) }

// sesNotification is the part of an SES receipt notification the handler
// keeps; mail.headers and mail.commonHeaders are derived from content and
// skipped without being built.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	Mail             struct {
		Source    string `json:"source"`
		MessageID string `json:"messageId"`
	} `json:"mail"`
	Receipt struct {
		Recipients []string `json:"recipients"`
		Action     struct {
			Type     string `json:"type"`
			Encoding string `json:"encoding"`
			sesS3Action
		} `json:"action"`
	} `json:"receipt"`
	Content ingest.JSONText `json:"content"`
}

// ServeHTTP takes SNS's posts.
func (h *SES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, end := h.begin(w, r, false)
	if x == nil {
		return
	}
	defer end()
	body, ok := readBody(x)
	if !ok {
		return
	}
	// SNS posts JSON as text/plain unless told otherwise: the type is not
	// checked.
	var m snsMessage
	if err := jsonv2.Unmarshal(body, &m, jsontext.AllowInvalidUTF8(true)); err != nil {
		x.Refuse("Malformed JSON in request body", err.Error())
		return
	}
	if t := r.Header.Get("X-Amz-Sns-Message-Type"); t != "" && t != m.Type {
		x.Refuse("Malformed SNS message", fmt.Sprintf("x-amz-sns-message-type %.40q, Type %.40q", t, m.Type))
		return
	}
	if !slices.Contains(h.opts.TopicARNs, m.TopicArn) {
		x.Reply(http.StatusForbidden, msgForbidden, fmt.Sprintf("topic %.200q is not one of the topics taken", m.TopicArn))
		return
	}
	switch m.Type {
	case snsNotification, snsSubscriptionConfirmation, snsUnsubscribeConfirmation:
	default:
		x.Refuse("Malformed SNS message", fmt.Sprintf("Type %.40q", m.Type))
		return
	}
	if err := h.verifier.verify(r.Context(), &m); err != nil {
		if errors.Is(err, errSNSTemporary) {
			x.Header().Set("Retry-After", "60")
			x.Reply(http.StatusServiceUnavailable, "Cannot check the signature now; retry later", err.Error())
			return
		}
		x.Reply(http.StatusForbidden, msgForbidden, err.Error())
		return
	}
	switch m.Type {
	case snsSubscriptionConfirmation:
		h.confirm(x, r, &m)
	case snsUnsubscribeConfirmation:
		logIgnored(x, "unsubscribed from topic "+m.TopicArn)
		x.Reply(http.StatusOK, msgOK, "")
	default:
		h.notification(r.Context(), x, &m)
	}
}

// confirm confirms the subscription to an accepted topic by GETting its
// SubscribeURL, on an SNS host too.
func (h *SES) confirm(x *ingest.Exchange, r *http.Request, m *snsMessage) {
	if _, err := h.verifier.checkURL(m.SubscribeURL); err != nil {
		x.Reply(http.StatusForbidden, msgForbidden, "SubscribeURL: "+err.Error())
		return
	}
	if _, err := h.verifier.get(r.Context(), m.SubscribeURL, snsMaxCertBytes); err != nil {
		x.Header().Set("Retry-After", "60")
		x.Reply(http.StatusServiceUnavailable, "Cannot confirm the subscription now; retry later", err.Error())
		return
	}
	x.Reply(http.StatusOK, msgOK, "confirmed the subscription to topic "+m.TopicArn)
}

// notification delivers the mail of an SES receipt notification.
func (h *SES) notification(ctx context.Context, x *ingest.Exchange, m *snsMessage) {
	var n sesNotification
	if err := jsonv2.Unmarshal(m.Message, &n, jsontext.AllowInvalidUTF8(true)); err != nil {
		// Not JSON: SNS's own notices to a new subscriber.
		logIgnored(x, fmt.Sprintf("notification %s is not an SES notification: ignored", m.MessageID))
		x.Respond(http.StatusOK, msgOK)
		return
	}
	if n.NotificationType != "Received" {
		// AMAZON_SES_SETUP_NOTIFICATION when a rule is created, or
		// sending events sent to the wrong topic.
		logIgnored(x, fmt.Sprintf("SES notification of type %.40q, not of a received mail: ignored", n.NotificationType))
		x.Respond(http.StatusOK, msgOK)
		return
	}
	if n.Receipt.Action.Type == "S3" && len(n.Content) == 0 {
		h.s3Notification(ctx, x, m, &n, &n.Receipt.Action.sesS3Action)
		return
	}
	if n.Receipt.Action.Type != "SNS" || len(n.Content) == 0 {
		x.Refuse("No mail in the notification: only the receipt rule's SNS and S3 actions carry it",
			fmt.Sprintf("action %.20q", n.Receipt.Action.Type))
		return
	}
	raw := []byte(n.Content)
	switch enc := strings.ToUpper(n.Receipt.Action.Encoding); enc {
	case "BASE64":
		// Decoded in place, as the SparkPost webhook's base64 is.
		k, err := base64.StdEncoding.Decode(raw, raw)
		if err != nil {
			x.Refuse("Malformed content", "not valid base64: "+err.Error())
			return
		}
		raw = raw[:k]
	case "UTF8", "UTF-8":
		x.Log(slog.LevelWarn, "the receipt rule's SNS action encodes the mail as UTF-8, which loses what is not UTF-8 (and with it signatures): choose Base64")
	default:
		x.Refuse("Malformed content", fmt.Sprintf("unknown encoding %.20q", enc))
		return
	}
	env, ok := h.envelope(x, m, &n)
	if !ok {
		return
	}
	deliverOne(x, ingest.Incoming{Raw: raw, Envelope: env}, envelopeLine(env.EnvelopeFrom, env.EnvelopeTo, len(raw)))
}

// envelope checks a notification's envelope and returns the message's
// context; on failure it answers and returns false.
func (h *SES) envelope(x *ingest.Exchange, m *snsMessage, n *sesNotification) (verify.Envelope, bool) {
	from, to := n.Mail.Source, n.Receipt.Recipients
	if !addressOK(from) || !addressOK(n.Mail.MessageID) || len(to) > maxRecipients || slices.ContainsFunc(to, func(a string) bool { return !addressOK(a) }) {
		x.Refuse("Malformed envelope", "an address too long, or too many recipients")
		return verify.Envelope{}, false
	}
	env := x.Envelope()
	env.EnvelopeFrom, env.EnvelopeTo = from, to
	env.Extra = map[string]string{"topic_arn": m.TopicArn}
	if n.Mail.MessageID != "" {
		env.Extra["message_id"] = n.Mail.MessageID
	}
	return env, true
}
