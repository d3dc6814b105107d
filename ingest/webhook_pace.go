package ingest

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// paceBody returns the request body held to MinBodyRate after BodyGrace,
// within BodyTimeout.
func (in *HTTPInput) paceBody(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	now := time.Now() // the real clock, not opts.Now: deadlines are real
	p := &bodyPacer{r: body, rc: http.NewResponseController(w), start: now,
		grace: in.opts.BodyGrace, rate: in.opts.MinBodyRate, end: now.Add(in.opts.BodyTimeout)}
	p.setDeadline(p.due())
	return p
}

// bodyPacer enforces a minimum average rate on a request body as it
// arrives: the connection's read deadline is the moment the bytes received
// so far fall below the rate (start + grace + n/rate, never past end), and
// moves on with every read. When the deadline passes, the read fails with
// a timeout, which the webhook answers with 408.
type bodyPacer struct {
	r          io.ReadCloser
	rc         *http.ResponseController
	start, end time.Time
	grace      time.Duration
	rate       int64 // bytes per second
	n          int64 // received so far
	deadline   time.Time
	off        bool // the connection cannot set deadlines
}

// paceStep is the least a deadline is moved by: a client sending a byte at
// a time does not cost a timer update per byte.
const paceStep = 50 * time.Millisecond

func (p *bodyPacer) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	switch {
	case err == io.EOF:
		// The whole body is in. No deadline while the messages are
		// spooled: net/http's background read (watching for the client
		// going away) would take one as the client gone and cancel the
		// request's context, and with it the delivery. The server's
		// WriteTimeout still bounds the exchange.
		p.setDeadline(time.Time{})
	case n > 0:
		if d := p.due(); d.Sub(p.deadline) >= paceStep || d.Equal(p.end) {
			p.setDeadline(d)
		}
	}
	return n, err
}

func (p *bodyPacer) Close() error { return p.r.Close() }

// due is when the body falls below the minimum rate if nothing more
// arrives.
func (p *bodyPacer) due() time.Time {
	credit := time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second))
	d := p.start.Add(p.grace + credit)
	if d.After(p.end) {
		return p.end
	}
	return d
}

func (p *bodyPacer) setDeadline(t time.Time) {
	if p.off || t.Equal(p.deadline) {
		return
	}
	// An error means the connection cannot set deadlines (a test
	// recorder): the server's ReadTimeout still applies.
	if err := p.rc.SetReadDeadline(t); err != nil {
		p.off = true
		return
	}
	p.deadline = t
}

// Decoding errors, mapped to statuses by webhookErrorStatus.
var (
	errWebhookMalformed = errors.New("malformed JSON in request body")
	errWebhookItem      = errors.New("bad relay message")
	errWebhookTooMany   = errors.New("too many relay messages in one request")
)
