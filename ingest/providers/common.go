package providers

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/certharvest/certharvest/ingest"
)

// Limits on what a provider's request carries besides the message.
const (
	// maxFormFields caps the fields of a form a provider posts: SendGrid's
	// has about 15, Mailgun's about 10, Mandrill's one.
	maxFormFields = 200
	// maxAddressBytes caps an envelope address; longer ones make the
	// request malformed (RFC 5321 §4.5.3.1.3: a path is at most 256
	// octets).
	maxAddressBytes = 1024
	// maxRecipients caps the envelope recipients of one message.
	maxRecipients = 1000
	// maxClockSkew is how far in the future a signed timestamp may be.
	maxClockSkew = 5 * 60
)

// The answers a handler gives besides the ingest.HTTPInput's.
const (
	msgOK           = "ok"
	msgUnauthorized = "Unauthorized"
	msgForbidden    = "Forbidden"
)

// base is what every provider's handler shares: its HTTP machinery, its
// path, its name.
type base struct {
	in   *ingest.HTTPInput
	path string
	name string
}

// newBase checks path and builds the handler's ingest.HTTPInput: named and
// its messages' source set to name, Weight and Statuses as its decoder
// needs.
func newBase(sink ingest.Sink, name, path string, opts ingest.HTTPInputOptions, weight int64, st ingest.Statuses) (base, error) {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || path == ingest.WebhookHealthPath {
		return base{}, fmt.Errorf("%s path %q: want an absolute path not ending in / other than %s", name, path, ingest.WebhookHealthPath)
	}
	opts.Name, opts.Source, opts.Weight, opts.Statuses = name, name, weight, st
	in, err := ingest.NewHTTPInput(sink, opts)
	if err != nil {
		return base{}, err
	}
	return base{in: in, path: path, name: name}, nil
}

// Path returns the URL path the handler takes.
func (b *base) Path() string { return b.path }

// begin starts handling a request: anything but POST (and HEAD when
// head is set, answered 200 at once) gets 405, logged; then a request slot
// is taken. It returns the request's exchange and the function that ends
// it, or nil when it has answered.
func (b *base) begin(w http.ResponseWriter, r *http.Request, head bool) (*ingest.Exchange, func()) {
	if r.Method != http.MethodPost {
		x := b.in.Begin(w, r)
		defer x.End()
		if head && r.Method == http.MethodHead {
			x.Reply(http.StatusOK, msgOK, "HEAD")
			return nil, nil
		}
		allow := http.MethodPost
		if head {
			allow += ", " + http.MethodHead
		}
		x.Header().Set("Allow", allow)
		x.Reply(http.StatusMethodNotAllowed, "Method Not Allowed", "method "+r.Method)
		return nil, nil
	}
	leave, ok := b.in.Enter(w, r)
	if !ok {
		return nil, nil
	}
	x := b.in.Begin(w, r)
	return x, func() { x.End(); leave() }
}

// readBody reads the request's body and logs its size; on failure it
// answers (ingest.Exchange.Fail) and returns false.
func readBody(x *ingest.Exchange) ([]byte, bool) {
	body, err := x.ReadBody()
	x.LogSize()
	if err != nil {
		x.Fail(err)
		return nil, false
	}
	return body, true
}

// parseFormOf parses a form body of r; on failure it answers and returns
// false.
func parseFormOf(x *ingest.Exchange, r *http.Request, body []byte) (form, bool) {
	f, err := parseForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		x.Fail(err)
		return nil, false
	}
	return f, true
}

// mediaType returns the request's media type, lower case, or "".
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// basicAuthOK reports whether the request carries the basic credentials
// userPass ("user:password"), compared in constant time.
func basicAuthOK(r *http.Request, userPass string) bool {
	user, pass, ok := r.BasicAuth()
	return ingest.SecretEqual(user+":"+pass, userPass) && ok
}

// unauthorized answers 401 with the challenge that makes a client send its
// credentials (Amazon SNS and others send them only when asked).
func unauthorized(x *ingest.Exchange, scheme, why string) {
	x.Header().Set("WWW-Authenticate", scheme+` realm="certharvest"`)
	x.Reply(http.StatusUnauthorized, msgUnauthorized, why)
}

// checkUserPass checks a "user:password" option.
func checkUserPass(name, userPass string) error {
	if userPass != "" && !strings.Contains(userPass, ":") {
		return fmt.Errorf("%s basic auth: want user:password", name)
	}
	return nil
}

// addressOK reports whether an envelope address is of a sane length and
// has no control characters.
func addressOK(a string) bool {
	if len(a) > maxAddressBytes {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < ' ' || a[i] == 0x7f {
			return false
		}
	}
	return true
}

// envelopeLine describes a message for the request's log block.
func envelopeLine(from string, to []string, size int) string {
	return fmt.Sprintf("envelope_from=%s,envelope_to=%s,len(message)=%d", from, strings.Join(to, " "), size)
}

// deliverOne delivers one message and answers 200 once it is spooled.
func deliverOne(x *ingest.Exchange, m ingest.Incoming, line string) bool {
	if !x.Deliver([]ingest.Incoming{m}, []string{line}) {
		return false
	}
	x.Respond(http.StatusOK, msgOK)
	return true
}

// logIgnored notes in the block what the request carried that is not a
// message to deliver.
func logIgnored(x *ingest.Exchange, what string) { x.Log(slog.LevelInfo, what) }

// bytesReader returns a reader of b from which a jsontext.Decoder reads in
// place, without a copy (it does so from a *bytes.Buffer).
func bytesReader(b []byte) io.Reader { return bytes.NewBuffer(b) }

// pluralWord returns one when n is 1, else many.
func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
