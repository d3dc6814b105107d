package ingest

// The SparkPost (Bird) inbound-relay webhook. SparkPost receives the mail of
// an inbound domain and POSTs it to an HTTP endpoint as a JSON array of relay
// messages (https://developers.sparkpost.com/api/relay-webhooks/):
//
//	[{"msys":{"relay_message":{
//	    "msg_from":"bob@example.com", "rcpt_to":"certs@inbound.example.org",
//	    "friendly_from":"Bob <bob@example.com>", "customer_id":"1337",
//	    "webhook_id":"4f4c4b4f8...", "protocol":"smtp",
//	    "content":{"email_rfc822":"...", "email_rfc822_is_base64":false,
//	               "headers":[...], "html":"...", "text":"...", "subject":"...", "to":[...]}}}}]
//
// The webhook writes every message of a request into the spool, durably and
// all or nothing, before it answers 200; any other answer makes SparkPost
// deliver the request again later. The answer never tells the sender what
// the pipeline will think of the certificate. The responses and the log
// block follow the service certharvest replaces (see docs/WEBHOOK.md).

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// The webhook's fixed names.
const (
	// WebhookTokenHeader carries the relay webhook's auth_token.
	WebhookTokenHeader = "X-MessageSystems-Webhook-Token"
	// WebhookHealthPath answers GET with 200 while a message could be
	// spooled and the pipeline runs (Webhook.Handle, serveHealth).
	WebhookHealthPath = "/healthz"
	// WebhookSource is the Source of the messages the webhook delivers.
	WebhookSource = "webhook"
)

// Webhook defaults.
const (
	DefaultWebhookMaxRequestBytes = 50 << 20
	DefaultWebhookMaxConcurrent   = 64
	DefaultWebhookMaxItems        = 1000
	DefaultWebhookBodyTimeout     = 2 * time.Minute
	// DefaultWebhookMinBodyRate, 16 KiB/s (128 kbit/s), is below a poor
	// mobile link (EDGE gives 100-200 kbit/s), far below the relay's
	// data-centre links, and still makes a client that wants to hold
	// every request slot send MaxConcurrent × 16 KiB/s (1 MiB/s for 64).
	DefaultWebhookMinBodyRate = 16 << 10
	// DefaultWebhookBodyGrace covers the start of a body (a few round
	// trips of TCP slow start, a 100-continue) even over a satellite
	// link's 600 ms; a client that sends nothing holds a slot that long.
	DefaultWebhookBodyGrace = 5 * time.Second
	// webhookMaxField caps each context field (msg_from, rcpt_to, ids):
	// they go into the report line and the log.
	webhookMaxField = 2048
	// webhookRetryAfter is the Retry-After of a 503, in seconds.
	webhookRetryAfter = "5"
	// DefaultWebhookMemoryWait bounds the wait of a received request for
	// room in the memory budget to decode it (twice its body): decoding
	// one of the largest takes a fraction of a second, so a few of them
	// ahead pass within it; beyond it the answer is 503 with Retry-After.
	DefaultWebhookMemoryWait = 10 * time.Second
	// webhookFailureHold is how long a failed delivery keeps /healthz at
	// 503 when no delivery has succeeded since. A load balancer that
	// takes the node out of service sends it nothing more, so no delivery
	// can succeed: after this, the probes decide alone.
	webhookFailureHold = 30 * time.Second
)

// The messages of the webhook's answers; the first two are the original
// service's, which its users may match on.
const (
	webhookMsgOK          = "ok"
	webhookMsgContentType = "Unknown Content-Type in request headers"
	webhookMsgToken       = "Invalid X-MessageSystems-Webhook-Token in request headers"
	webhookMsgBusy        = "Too many requests at once; retry later"
	webhookMsgSpool       = "Cannot store the messages now; retry later"
	webhookMsgSlow        = "Request body not received in time"
	webhookMsgMemory      = "Too much mail being received at once; retry later"
)

// WebhookOptions configure a Webhook. The zero value of each field means its
// default.
type WebhookOptions struct {
	// Path is the URL path the relay posts to (default "/"); it must not be
	// WebhookHealthPath.
	Path string
	// Token, when set, must equal the X-MessageSystems-Webhook-Token header
	// of every request (the relay webhook's auth_token).
	Token string
	// MaxRequestBytes caps a request body: 413 beyond (default 50 MiB).
	MaxRequestBytes int64
	// MaxMessageBytes is the pipeline's --max-size. A larger message is
	// still spooled (and reported as message_too_large): the relay would
	// retry any other answer forever. It only adds a note to the log.
	MaxMessageBytes int64
	// MaxItems caps the relay messages in one request: 413 beyond (default
	// 1,000; the relay sends far fewer). Every message of a request is
	// synced before the answer, so this also bounds a request's time.
	MaxItems int
	// MaxConcurrent caps the requests handled at once; more get 503 with
	// Retry-After (default 64). Each holds its decoded messages in memory.
	MaxConcurrent int
	// BodyTimeout caps the time to receive a request body (default 2
	// minutes). Within it, the body must keep arriving at MinBodyRate
	// bytes per second on average (default 16 KiB/s) after BodyGrace
	// (default 5 seconds): at any moment, at least MinBodyRate × (time
	// since the headers − BodyGrace) bytes must have arrived, or the
	// request is cut with 408. The read deadline moves on as bytes
	// arrive, so whatever length a client declares, one that trickles
	// holds a request slot for little more than BodyGrace.
	BodyTimeout time.Duration
	MinBodyRate int64
	BodyGrace   time.Duration
	// Logger receives a block of lines per request; nil discards them.
	Logger *slog.Logger
	// BlockPrefix prefixes the second and later lines of a request's block
	// with "| " (for the human-readable log format).
	BlockPrefix bool
	// Now is the clock of the messages' received time (default time.Now).
	Now func() time.Time
	// ObserveResponse, when set, is called with the status of every answer
	// the webhook gives (not those of the health check), for metrics. It
	// must be safe for concurrent use and return quickly.
	ObserveResponse func(status int)
	// Budget is the memory the requests being received and decoded hold,
	// shared with the other inputs (SMTP). A body is received into memory
	// while the budget has room for twice it (the body, and the messages
	// decoded from it) and it is at most DefaultSpillBytes, else into a
	// file of the sink's (Sink.NewWriter: the spool's tmp/); then, before
	// it is decoded, twice its size must be reserved: the request waits
	// for that up to MemoryWait, then gets 503 with Retry-After. It must
	// hold twice MaxRequestBytes.
	// Default: a budget of DefaultInputMemory (or twice MaxRequestBytes,
	// if more) of the webhook's own.
	Budget *MemoryBudget
	// MemoryWait bounds the wait for room in Budget (default
	// DefaultWebhookMemoryWait).
	MemoryWait time.Duration
	// HeaderLimits are the pipeline's caps on a message's header section
	// (zero fields: verify's defaults). A message over them is spooled all
	// the same (the pipeline reports it message_malformed); the request's
	// log block notes it.
	HeaderLimits verify.HeaderLimits
	// Health records failed deliveries for the health check; the other
	// HTTP inputs on the same listener share it (HTTPInputOptions.Health).
	// Default: the webhook's own.
	Health *DeliveryHealth
	// PipelineAlive, when set, tells whether the pipeline that processes
	// the spool is running and keeping up: nil, or why not (for the log).
	// The health check fails while it returns an error. It must be safe
	// for concurrent use and return quickly.
	PipelineAlive func() error
	// ReportWritable, when set, tells whether the pipeline could write its
	// report the last time it tried: nil, or why not (for the log). The
	// health check fails while it returns an error: the messages wait in
	// the spool meanwhile. It must be safe for concurrent use and return
	// quickly.
	ReportWritable func() error
	// StoreAvailable, when set, tells whether the certificate store (a
	// database on another host) answers: nil, or why not (for the log).
	// The health check fails while it returns an error, though the
	// webhook keeps spooling: the messages wait in the spool meanwhile. It
	// must be safe for concurrent use and return quickly.
	StoreAvailable func() error
}

// Webhook is the http.Handler of the SparkPost inbound-relay webhook. It is
// safe for concurrent use.
type Webhook struct {
	in       *HTTPInput
	sink     Sink
	opts     WebhookOptions
	tokenSum [sha256.Size]byte
}

// NewWebhook returns the webhook handler delivering into sink.
func NewWebhook(sink Sink, opts WebhookOptions) (*Webhook, error) {
	if opts.Path == "" {
		opts.Path = "/"
	}
	if !strings.HasPrefix(opts.Path, "/") || opts.Path == WebhookHealthPath {
		return nil, fmt.Errorf("webhook path %q: want an absolute path other than %s", opts.Path, WebhookHealthPath)
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultWebhookMaxRequestBytes
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = DefaultWebhookMaxItems
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultWebhookMaxConcurrent
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultWebhookBodyTimeout
	}
	if opts.MinBodyRate <= 0 {
		opts.MinBodyRate = DefaultWebhookMinBodyRate
	}
	if opts.BodyGrace <= 0 {
		opts.BodyGrace = DefaultWebhookBodyGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MemoryWait <= 0 {
		opts.MemoryWait = DefaultWebhookMemoryWait
	}
	if opts.Budget == nil {
		opts.Budget = NewMemoryBudget(max(DefaultInputMemory, 2*opts.MaxRequestBytes))
	}
	if opts.Budget.Size() < 2*opts.MaxRequestBytes {
		return nil, fmt.Errorf("webhook: a memory budget of %d bytes cannot decode a request of %d: it needs twice that",
			opts.Budget.Size(), opts.MaxRequestBytes)
	}
	in, err := NewHTTPInput(sink, HTTPInputOptions{
		Name:            "webhook",
		Source:          WebhookSource,
		MaxRequestBytes: opts.MaxRequestBytes,
		MaxMessageBytes: opts.MaxMessageBytes,
		MaxConcurrent:   opts.MaxConcurrent,
		BodyTimeout:     opts.BodyTimeout,
		MinBodyRate:     opts.MinBodyRate,
		BodyGrace:       opts.BodyGrace,
		Budget:          opts.Budget,
		Weight:          2,
		MemoryWait:      opts.MemoryWait,
		HeaderLimits:    opts.HeaderLimits,
		Logger:          opts.Logger,
		BlockPrefix:     opts.BlockPrefix,
		Now:             opts.Now,
		ObserveResponse: opts.ObserveResponse,
		Health:          opts.Health,
	})
	if err != nil {
		return nil, err
	}
	return &Webhook{
		in:       in,
		sink:     sink,
		opts:     opts,
		tokenSum: sha256.Sum256([]byte(opts.Token)),
	}, nil
}

// Handle registers the webhook on mux: the relay's posts at its path, the
// health check at WebhookHealthPath, and every path no other handler
// takes, which the webhook answers 404 in its own words (JSON, logged).
func (h *Webhook) Handle(mux *http.ServeMux) {
	mux.HandleFunc(WebhookHealthPath, h.serveHealth)
	mux.Handle("/", h)
	if h.opts.Path != "/" {
		mux.Handle(h.opts.Path, h)
	}
}

// ServeHTTP takes the relay's posts at the webhook's path (Handle), and
// answers any other path 404.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.opts.Path || r.Method != http.MethodPost {
		log := h.in.newLog(r)
		defer log.flush(r.Context())
		if r.URL.Path != h.opts.Path {
			h.in.reply(w, log, http.StatusNotFound, "Not Found", "")
			return
		}
		w.Header().Set("Allow", http.MethodPost)
		h.in.reply(w, log, http.StatusMethodNotAllowed, "Method Not Allowed", "method "+r.Method)
		return
	}
	leave, ok := h.in.Enter(w, r)
	if !ok {
		return
	}
	defer leave()
	h.serveRelay(w, r)
}

// serveRelay takes one relay POST: checks, decodes every message, spools
// them all with one delivery, and answers.
func (h *Webhook) serveRelay(w http.ResponseWriter, r *http.Request) {
	log := h.in.newLog(r)
	defer log.flush(r.Context())

	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		h.in.reply(w, log, http.StatusBadRequest, webhookMsgContentType, "content-type "+strconv.Quote(ct))
		return
	}
	if h.opts.Token != "" {
		got, ok := r.Header[http.CanonicalHeaderKey(WebhookTokenHeader)]
		// Hashes have the same length whatever the header's: the
		// comparison leaks neither the token nor its length.
		// Neither token is ever logged.
		var gotSum [sha256.Size]byte
		if ok {
			gotSum = sha256.Sum256([]byte(got[0]))
		}
		if subtle.ConstantTimeCompare(gotSum[:], h.tokenSum[:]) != 1 || !ok {
			why := "token header missing"
			if ok {
				why = "token does not match"
			}
			h.in.reply(w, log, http.StatusBadRequest, webhookMsgToken, why)
			return
		}
	}
	if r.ContentLength > h.opts.MaxRequestBytes {
		log.add(slog.LevelInfo, fmt.Sprintf("len(headers)=%d,len(body)=%d", headerCount(r), r.ContentLength))
		h.in.reply(w, log, http.StatusRequestEntityTooLarge, h.in.tooLargeMsg(), "")
		return
	}
	paced := h.in.paceBody(w, r.Body)
	body := &webhookCounter{r: http.MaxBytesReader(w, paced, h.opts.MaxRequestBytes)}
	env := verify.Envelope{Source: WebhookSource, RemoteAddr: r.RemoteAddr, Received: h.opts.Now()}
	// The body is received whole before it is decoded, held in memory
	// within the budget or written to a file: a slow sender holds no more
	// than DefaultSpillBytes of memory, and no reservation for its
	// decoding while it trickles.
	stage := h.sink.NewWriter(MessageWriterOptions{Budget: h.opts.Budget, Weight: 2, Scratch: true})
	defer stage.Close()
	_, err := stage.ReadFrom(body)
	if stage.Err() != nil {
		h.in.spoolFailed(w, r, log, stage.Err())
		return
	}
	var msgs []Incoming
	if err == nil {
		// Twice the body is reserved to decode it: the body, and the
		// messages decoded from it, which never take more bytes than the
		// strings that hold them (unquoted, then base64-decoded in place).
		data, release, rerr := h.in.reserveStaged(r.Context(), stage)
		defer release()
		if err = rerr; err == nil {
			// From a bytes.Buffer, the JSON decoder reads in place: no copy.
			msgs, err = h.decode(bytes.NewBuffer(data), env)
		}
	}
	log.add(slog.LevelInfo, fmt.Sprintf("len(headers)=%d,len(body)=%d", headerCount(r), body.n))
	for _, m := range msgs {
		line := fmt.Sprintf("msg_from=%s,rcpt_to=%s,len(email_rfc822)=%d", m.Envelope.EnvelopeFrom,
			strings.Join(m.Envelope.EnvelopeTo, " "), len(m.Raw))
		if h.opts.MaxMessageBytes > 0 && int64(len(m.Raw)) > h.opts.MaxMessageBytes {
			line += " (over --max-size: it will be reported as message_too_large)"
		} else if herr := verify.CheckHeader(m.Raw, h.opts.HeaderLimits); herr != nil {
			line += " (" + capDetail(herr) + ": it will be reported as message_malformed)"
		}
		// The pipeline logs the message's story under this id.
		log.add(slog.LevelInfo, line, "message", verify.MessageIDFor(&verify.Message{Raw: m.Raw}))
	}
	if errors.Is(err, errWebhookMemory) {
		w.Header().Set("Retry-After", webhookRetryAfter)
		log.add(slog.LevelWarn, fmt.Sprintf("503 %s: no room in the memory budget to decode it", webhookMsgMemory), "error", err)
		h.in.respond(w, http.StatusServiceUnavailable, webhookMsgMemory)
		return
	}
	if err != nil {
		if body.err != nil {
			// The body could not be read whole: the reader's own error
			// tells why (too large, too slow, cut short).
			err = fmt.Errorf("%w (%w)", body.err, errWebhookMalformed)
		}
		status, msg := webhookErrorStatus(err)
		if status == http.StatusRequestEntityTooLarge && !errors.Is(err, errWebhookTooMany) {
			msg = h.in.tooLargeMsg()
		}
		h.in.reply(w, log, status, msg, err.Error())
		return
	}
	if len(msgs) == 0 {
		log.add(slog.LevelInfo, "no messages in the request")
		h.in.respond(w, http.StatusOK, webhookMsgOK)
		return
	}

	names, err := h.sink.Deliver(r.Context(), msgs...)
	if err != nil {
		h.in.spoolFailed(w, r, log, err)
		return
	}
	h.in.opts.Health.succeeded()
	log.add(slog.LevelInfo, fmt.Sprintf("spooled %d %s: %s", len(names), plural(len(names), "message"), strings.Join(names, " ")))
	h.in.respond(w, http.StatusOK, webhookMsgOK)
}

// errWebhookMemory is reserveStaged's error when the memory budget has no
// room for the decoding within MemoryWait.
var errWebhookMemory = errors.New("no room in the memory budget")

// webhookCounter counts the bytes read through it (len(body) in the log)
// and keeps the first read error other than io.EOF.
type webhookCounter struct {
	r   io.Reader
	n   int64
	err error
}

func (c *webhookCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
