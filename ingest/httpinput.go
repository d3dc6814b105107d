package ingest

// What every HTTP input shares: the SparkPost webhook (webhook.go) and the
// other providers' inbound webhooks (package ingest/providers). An
// HTTPInput caps the requests handled at once, receives a body within its
// size, time and memory bounds, tells each request's story as one block of
// log lines, answers in JSON, counts its answers, and delivers the messages
// into the sink before the success answer, remembering a failed delivery
// for the health check.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// HTTPInputOptions configure an HTTPInput. The zero value of each field
// means its default; the limits' defaults are the SparkPost webhook's
// (DefaultWebhook*).
type HTTPInputOptions struct {
	// Name names the input in the log lines that are not in a request's
	// block (default "webhook").
	Name string
	// Source is the Source of the messages the input delivers
	// (verify.Envelope; default WebhookSource).
	Source string
	// MaxRequestBytes caps a request body (default 50 MiB).
	MaxRequestBytes int64
	// MaxMessageBytes is the pipeline's --max-size: a larger message is
	// still delivered (and reported message_too_large); the log notes it.
	MaxMessageBytes int64
	// MaxConcurrent caps the requests handled at once; more get 503 with
	// Retry-After (default 64).
	MaxConcurrent int
	// BodyTimeout, MinBodyRate and BodyGrace bound the time to receive a
	// body, as WebhookOptions' do.
	BodyTimeout time.Duration
	MinBodyRate int64
	BodyGrace   time.Duration
	// Budget is the memory the requests being received and decoded hold,
	// shared with the other inputs. It must hold Weight × MaxRequestBytes.
	// Default: a budget of DefaultInputMemory (or Weight × MaxRequestBytes,
	// if more) of the input's own.
	Budget *MemoryBudget
	// Weight is the budget's bytes a byte of body takes while its messages
	// are decoded from it (default 2: the body, and the messages, which
	// never take more bytes than the body). The input's own decoder sets
	// it.
	Weight int64
	// MemoryWait bounds the wait for room in Budget (default
	// DefaultWebhookMemoryWait).
	MemoryWait time.Duration
	// HeaderLimits are the pipeline's caps on a message's header section:
	// a message over them is delivered all the same; the log notes it.
	HeaderLimits verify.HeaderLimits
	// Logger receives a block of lines per request; nil discards them.
	Logger *slog.Logger
	// BlockPrefix prefixes the second and later lines of a block with
	// "| " (for the human-readable log format).
	BlockPrefix bool
	// Now is the clock of the messages' received time (default time.Now).
	Now func() time.Time
	// ObserveResponse, when set, is called with the status of every
	// answer, for metrics. It must be safe for concurrent use.
	ObserveResponse func(status int)
	// Health records the failed deliveries for the health check
	// (WebhookHealthPath). Inputs that deliver into the same sink share
	// one. Default: one of the input's own.
	Health *DeliveryHealth
	// Statuses are the answers to a request no later attempt can pass
	// (malformed, too large) and to a body too slow; the input's own
	// handler sets them to what makes its provider retry or give up.
	Statuses Statuses
}

// Statuses are an input's answers to requests it cannot take; zero fields
// are the SparkPost webhook's (400, 413, 408).
type Statuses struct {
	Malformed int // the request is wrong: retrying will not help
	TooLarge  int // over MaxRequestBytes, or too many messages
	Slow      int // the body did not arrive in time: worth a retry
}

// DeliveryHealth remembers whether the last delivery of the inputs that
// share it failed, for the health check. The zero value is ready to use;
// it is safe for concurrent use.
type DeliveryHealth struct {
	// failedAt is when the last delivery failed (Unix nanoseconds), or 0
	// when the last one succeeded.
	failedAt atomic.Int64
}

func (d *DeliveryHealth) failed(now time.Time) { d.failedAt.Store(max(now.UnixNano(), 1)) }
func (d *DeliveryHealth) succeeded()           { d.failedAt.Store(0) }

// check returns why the health check fails, or nil: a delivery failed less
// than webhookFailureHold ago and none succeeded since.
func (d *DeliveryHealth) check(now time.Time) error {
	if at := d.failedAt.Load(); at != 0 {
		if since := now.Sub(time.Unix(0, at)); since < webhookFailureHold {
			return fmt.Errorf("the last delivery failed %s ago, and none succeeded since", since.Round(time.Millisecond))
		}
	}
	return nil
}

// HTTPInput is the machinery of an HTTP input, shared by its requests. It
// is safe for concurrent use.
type HTTPInput struct {
	sink  Sink
	opts  HTTPInputOptions
	slots chan struct{}
	logMu sync.Mutex // keeps a request's block together
}

// NewHTTPInput returns the machinery of an input delivering into sink.
func NewHTTPInput(sink Sink, opts HTTPInputOptions) (*HTTPInput, error) {
	if opts.Name == "" {
		opts.Name = "webhook"
	}
	if opts.Source == "" {
		opts.Source = WebhookSource
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultWebhookMaxRequestBytes
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
	if opts.Weight <= 0 {
		opts.Weight = 2
	}
	if opts.MemoryWait <= 0 {
		opts.MemoryWait = DefaultWebhookMemoryWait
	}
	if opts.Budget == nil {
		opts.Budget = NewMemoryBudget(max(DefaultInputMemory, opts.Weight*opts.MaxRequestBytes))
	}
	if opts.Budget.Size() < opts.Weight*opts.MaxRequestBytes {
		return nil, fmt.Errorf("%s: a memory budget of %d bytes cannot decode a request of %d: it needs %d times that",
			opts.Name, opts.Budget.Size(), opts.MaxRequestBytes, opts.Weight)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Health == nil {
		opts.Health = &DeliveryHealth{}
	}
	if opts.Statuses.Malformed == 0 {
		opts.Statuses.Malformed = http.StatusBadRequest
	}
	if opts.Statuses.TooLarge == 0 {
		opts.Statuses.TooLarge = http.StatusRequestEntityTooLarge
	}
	if opts.Statuses.Slow == 0 {
		opts.Statuses.Slow = http.StatusRequestTimeout
	}
	return &HTTPInput{sink: sink, opts: opts, slots: make(chan struct{}, opts.MaxConcurrent)}, nil
}

// Options returns the input's options, defaults filled in.
func (in *HTTPInput) Options() HTTPInputOptions { return in.opts }

// Enter takes one of the MaxConcurrent request slots, and returns the
// function that gives it back. When none is free it answers 503 with
// Retry-After (one log line, not a block: under overload every line costs)
// and returns false.
func (in *HTTPInput) Enter(w http.ResponseWriter, r *http.Request) (leave func(), ok bool) {
	select {
	case in.slots <- struct{}{}:
		return func() { <-in.slots }, true
	default:
		in.opts.Logger.Warn(in.opts.Name+" busy: 503 to "+r.RemoteAddr, "max_concurrent", in.opts.MaxConcurrent)
		w.Header().Set("Retry-After", webhookRetryAfter)
		in.respond(w, http.StatusServiceUnavailable, webhookMsgBusy)
		return nil, false
	}
}

// Exchange is one request being handled: its log block, its answer, the
// memory its body holds. It is used by one goroutine; End ends it.
type Exchange struct {
	in      *HTTPInput
	w       http.ResponseWriter
	r       *http.Request
	log     *webhookLog
	release []func()
	stage   *MessageWriter
	counter *webhookCounter
}

// Begin starts the request's log block ("Request from ..."). End writes it.
func (in *HTTPInput) Begin(w http.ResponseWriter, r *http.Request) *Exchange {
	return &Exchange{in: in, w: w, r: r, log: in.newLog(r)}
}

// End gives back the memory the request held and writes its log block.
func (x *Exchange) End() {
	for _, f := range x.release {
		f()
	}
	if x.stage != nil {
		x.stage.Close()
	}
	x.log.flush(x.r.Context())
}

// Log adds a line to the request's block.
func (x *Exchange) Log(level slog.Level, msg string, args ...any) { x.log.add(level, msg, args...) }

// Reply answers with status and {"message": msg} and logs it as the
// block's last line, with what detail adds to msg.
func (x *Exchange) Reply(status int, msg, detail string) { x.in.reply(x.w, x.log, status, msg, detail) }

// Respond answers without a log line.
func (x *Exchange) Respond(status int, msg string) { x.in.respond(x.w, status, msg) }

// Header returns the answer's header, to set before Reply.
func (x *Exchange) Header() http.Header { return x.w.Header() }

// Envelope returns the context every message of the request shares: the
// input's source, the peer's address, the time received.
func (x *Exchange) Envelope() verify.Envelope {
	return verify.Envelope{Source: x.in.opts.Source, RemoteAddr: x.r.RemoteAddr, Received: x.in.opts.Now()}
}

// errBodyTooLarge is ReadBody's error for a declared length over
// MaxRequestBytes.
var errBodyTooLarge = &http.MaxBytesError{}

// ReadBody receives the request body whole and returns it, in memory: held
// to MinBodyRate and BodyTimeout and capped at MaxRequestBytes as it
// arrives, in memory while the budget has room or else in a file of the
// sink's, then read back once Weight × its size is reserved in the budget
// (waiting up to MemoryWait). The bytes stay valid, and reserved, until
// End. Fail answers its errors.
func (x *Exchange) ReadBody() ([]byte, error) {
	in := x.in
	if x.r.ContentLength > in.opts.MaxRequestBytes {
		return nil, fmt.Errorf("declared length %d: %w", x.r.ContentLength, errBodyTooLarge)
	}
	x.counter = &webhookCounter{r: http.MaxBytesReader(x.w, in.paceBody(x.w, x.r.Body), in.opts.MaxRequestBytes)}
	x.stage = in.sink.NewWriter(MessageWriterOptions{Budget: in.opts.Budget, Weight: in.opts.Weight, Scratch: true})
	_, err := x.stage.ReadFrom(x.counter)
	if x.stage.Err() != nil {
		return nil, &spoolError{x.stage.Err()}
	}
	if err != nil {
		return nil, err
	}
	data, release, err := in.reserveStaged(x.r.Context(), x.stage)
	x.release = append(x.release, release)
	if err != nil && !errors.Is(err, errWebhookMemory) {
		err = &spoolError{err} // reading back the sink's file
	}
	return data, err
}

// LogSize adds the block's line "len(headers)=N,len(body)=N", as the
// SparkPost webhook's has.
func (x *Exchange) LogSize() {
	x.log.add(slog.LevelInfo, fmt.Sprintf("len(headers)=%d,len(body)=%d", headerCount(x.r), x.BodySize()))
}

// BodySize returns the bytes of the body received so far, or its
// declared length before it is read.
func (x *Exchange) BodySize() int64 {
	if x.counter == nil {
		return max(x.r.ContentLength, 0)
	}
	return x.counter.n
}

// ReadMessage receives the request body as one message to deliver, within
// the same bounds as ReadBody but with no decoding: it is the message
// (Incoming.Writer), held in memory while the budget has room, else
// written to a file of the sink's as it arrives, its header counted
// against HeaderLimits. Fail answers its errors.
func (x *Exchange) ReadMessage() (*MessageWriter, error) {
	in := x.in
	if x.r.ContentLength > in.opts.MaxRequestBytes {
		return nil, fmt.Errorf("declared length %d: %w", x.r.ContentLength, errBodyTooLarge)
	}
	x.counter = &webhookCounter{r: http.MaxBytesReader(x.w, in.paceBody(x.w, x.r.Body), in.opts.MaxRequestBytes)}
	limits := in.opts.HeaderLimits
	x.stage = in.sink.NewWriter(MessageWriterOptions{Budget: in.opts.Budget, Header: &limits})
	_, err := x.stage.ReadFrom(x.counter)
	if x.stage.Err() != nil {
		return nil, &spoolError{x.stage.Err()}
	}
	if err != nil {
		return nil, err
	}
	return x.stage, nil
}

// ReadMessageFrom receives a message the request only points to (an SES
// notification's S3 object) from r, as ReadMessage receives a body: into
// a writer of the sink's, within the memory budget or else in a file of
// the sink's, its header counted against HeaderLimits. The caller bounds
// r's size and time. The writer is discarded at End unless delivered. A
// failure of the sink is answered by Fail (503); r's own error is returned
// as it is, for the caller to answer.
func (x *Exchange) ReadMessageFrom(r io.Reader) (*MessageWriter, error) {
	limits := x.in.opts.HeaderLimits
	w := x.in.sink.NewWriter(MessageWriterOptions{Budget: x.in.opts.Budget, Header: &limits})
	x.release = append(x.release, w.Close)
	_, err := w.ReadFrom(r)
	if w.Err() != nil {
		return nil, &spoolError{w.Err()}
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

// spoolError is a failure of the sink to hold a body: its fault, not the
// sender's.
type spoolError struct{ err error }

func (e *spoolError) Error() string { return e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// Fail answers a request whose body could not be received or decoded:
// 503 with Retry-After when the sink or the memory budget cannot take it
// now, Statuses.TooLarge over the limits, Statuses.Slow for a body too
// slow, else Statuses.Malformed with the error, capitalised.
func (x *Exchange) Fail(err error) {
	in := x.in
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, new(*spoolError)):
		in.spoolFailed(x.w, x.r, x.log, err)
	case errors.Is(err, errWebhookMemory):
		x.w.Header().Set("Retry-After", webhookRetryAfter)
		x.log.add(slog.LevelWarn, fmt.Sprintf("503 %s: no room in the memory budget to decode it", webhookMsgMemory), "error", err)
		in.respond(x.w, http.StatusServiceUnavailable, webhookMsgMemory)
	case errors.As(err, &tooLarge):
		in.reply(x.w, x.log, in.opts.Statuses.TooLarge, in.tooLargeMsg(), "")
	case errors.Is(err, errWebhookTooMany) || errors.Is(err, ErrTooMany):
		in.reply(x.w, x.log, in.opts.Statuses.TooLarge, capitalise(err.Error()), "")
	case errors.As(err, &netErr) && netErr.Timeout():
		in.reply(x.w, x.log, in.opts.Statuses.Slow, webhookMsgSlow, err.Error())
	default:
		in.reply(x.w, x.log, in.opts.Statuses.Malformed, capitalise(err.Error()), "")
	}
}

// Refuse answers a request that no later attempt can pass with
// Statuses.Malformed.
func (x *Exchange) Refuse(msg, detail string) {
	x.in.reply(x.w, x.log, x.in.opts.Statuses.Malformed, msg, detail)
}

// ErrTooMany wraps the error of a request with more messages than its
// input takes: Fail answers it Statuses.TooLarge.
var ErrTooMany = errors.New("too many messages in one request")

// Deliver logs each message (its envelope, its size, whether the pipeline
// will refuse it, the id of its story), delivers them all into the sink
// with one Sink.Deliver, and reports whether it did. On failure it has
// answered 503 with Retry-After (nothing was kept); on success the caller
// answers. Each message is described by the line the caller gives.
func (x *Exchange) Deliver(msgs []Incoming, lines []string) bool {
	for i, m := range msgs {
		line := lines[i]
		size := int64(len(m.Raw))
		raw := m.Raw
		if m.Writer != nil {
			size, raw = m.Writer.Size(), m.Writer.Bytes()
		}
		switch {
		case x.in.opts.MaxMessageBytes > 0 && size > x.in.opts.MaxMessageBytes:
			line += " (over --max-size: it will be reported as message_too_large)"
		case m.Writer != nil && m.Writer.HeaderErr() != nil:
			line += " (" + capDetail(m.Writer.HeaderErr()) + ": it will be reported as message_malformed)"
		case m.Writer == nil:
			if herr := verify.CheckHeader(raw, x.in.opts.HeaderLimits); herr != nil {
				line += " (" + capDetail(herr) + ": it will be reported as message_malformed)"
			}
		}
		if raw != nil {
			// The pipeline logs the message's story under this id.
			x.log.add(slog.LevelInfo, line, "message", verify.MessageIDFor(&verify.Message{Raw: raw}))
		} else {
			x.log.add(slog.LevelInfo, line)
		}
	}
	names, err := x.in.sink.Deliver(x.r.Context(), msgs...)
	for _, m := range msgs {
		if m.Writer != nil && m.Writer == x.stage {
			x.stage = nil // Deliver closed it
		}
	}
	if err != nil {
		x.in.spoolFailed(x.w, x.r, x.log, err)
		return false
	}
	x.in.opts.Health.succeeded()
	x.log.add(slog.LevelInfo, fmt.Sprintf("spooled %d %s: %s", len(names), plural(len(names), "message"), strings.Join(names, " ")))
	return true
}

// spoolFailed answers a request whose messages the sink could not take
// (or whose body it could not hold) with 503 and Retry-After: nothing of it
// was kept, the provider delivers it again.
func (in *HTTPInput) spoolFailed(w http.ResponseWriter, r *http.Request, log *webhookLog, err error) {
	if r.Context().Err() == nil { // not a client gone away: the spool failed
		in.opts.Health.failed(in.opts.Now())
	}
	w.Header().Set("Retry-After", webhookRetryAfter)
	log.add(slog.LevelError, fmt.Sprintf("503 %s: nothing acknowledged", webhookMsgSpool), "error", err)
	in.respond(w, http.StatusServiceUnavailable, webhookMsgSpool)
}

// reserveStaged returns a body received whole into stage, from memory:
// there already when the budget had room (stage reserved Weight × its
// bytes), else read back from its file once Weight × its size is reserved,
// waiting up to MemoryWait for it (errWebhookMemory). release gives the
// reservation back; it is never nil.
func (in *HTTPInput) reserveStaged(ctx context.Context, stage *MessageWriter) (data []byte, release func(), err error) {
	release = func() {}
	data = stage.Bytes()
	if stage.Spilled() {
		need := in.opts.Weight * stage.Size()
		wait, cancel := context.WithTimeout(ctx, in.opts.MemoryWait)
		err := in.opts.Budget.Reserve(wait, need)
		cancel()
		if err != nil {
			return nil, release, fmt.Errorf("%w: %d bytes to decode a body of %d, of %d in all: %w",
				errWebhookMemory, need, stage.Size(), in.opts.Budget.Size(), err)
		}
		release = func() { in.opts.Budget.Release(need) }
		if data, err = stage.ReadAll(); err != nil {
			return nil, release, err
		}
	}
	return data, release, nil
}

func (in *HTTPInput) tooLargeMsg() string {
	return fmt.Sprintf("Request body larger than %d bytes", in.opts.MaxRequestBytes)
}

// capitalise returns s with its first letter in upper case, as an answer.
func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// SecretEqual reports whether got equals want, in time that depends on
// neither's length nor content: both are hashed first. An empty want
// matches nothing.
func SecretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1 && want != ""
}
