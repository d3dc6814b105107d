package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// relayFixture is one relay message of a test payload.
type relayFixture struct {
	raw    []byte
	base64 bool
	from   string
	to     string
}

// relayPayload builds a request body the way SparkPost does, with the fields
// the webhook ignores too.
func relayPayload(t testing.TB, items ...relayFixture) []byte {
	t.Helper()
	var arr []any
	for i, it := range items {
		content := map[string]any{
			"headers":                []map[string]string{{"Subject": "signed"}, {"From": it.from}},
			"html":                   "<p>hello</p>",
			"text":                   "hello",
			"subject":                "signed",
			"to":                     []string{it.to},
			"email_rfc822_is_base64": it.base64,
		}
		if it.base64 {
			content["email_rfc822"] = base64.StdEncoding.EncodeToString(it.raw)
		} else {
			if !utf8.Valid(it.raw) {
				t.Fatal("relayPayload: a plain message must be UTF-8 (json.Marshal would change it)")
			}
			content["email_rfc822"] = string(it.raw)
		}
		arr = append(arr, map[string]any{"msys": map[string]any{"relay_message": map[string]any{
			"content":       content,
			"customer_id":   "1337",
			"friendly_from": "Bob <" + it.from + ">",
			"msg_from":      it.from,
			"protocol":      "smtp",
			"rcpt_to":       it.to,
			"webhook_id":    fmt.Sprintf("4f4c4b4f8%d", i),
		}}})
	}
	body, err := json.Marshal(arr)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

var relayTestMessage = []byte("From: Bob <bob@example.com>\r\nTo: certs@inbound.example.org\r\nSubject: caf\u00e9 \"quoted\" \\ / \t\r\n\r\nbody line\r\n\x01 control, \u2603 snowman\r\n")

type webhookHarness struct {
	t     *testing.T
	dir   string
	spool *maildir.Spool
	h     *ingest.Webhook
	log   *bytes.Buffer
	logMu *sync.Mutex
	mux   *http.ServeMux // h's routes, as serve's
}

// routes returns a mux with h's routes (Webhook.Handle), as serve's.
func routes(h *ingest.Webhook) *http.ServeMux {
	mux := http.NewServeMux()
	h.Handle(mux)
	return mux
}

func newWebhookHarness(t *testing.T, opts ingest.WebhookOptions) *webhookHarness {
	t.Helper()
	return newWebhookHarnessSink(t, opts, nil)
}

// newWebhookHarnessSink is newWebhookHarness with the webhook delivering
// into wrap(spool), unless wrap is nil.
func newWebhookHarnessSink(t *testing.T, opts ingest.WebhookOptions, wrap func(ingest.Sink) ingest.Sink) *webhookHarness {
	t.Helper()
	dir := t.TempDir()
	spool, err := maildir.Open(dir, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	buf := &bytes.Buffer{}
	mu := &sync.Mutex{}
	opts.Logger = slog.New(output.NewLogHandler(webhookLogWriter{mu, buf}, slog.LevelDebug))
	opts.BlockPrefix = true
	opts.Now = func() time.Time { return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) }
	var sink ingest.Sink = spool
	if wrap != nil {
		sink = wrap(spool)
	}
	h, err := ingest.NewWebhook(sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &webhookHarness{t: t, dir: dir, spool: spool, h: h, mux: routes(h), log: buf, logMu: mu}
}

type webhookLogWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l webhookLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (wh *webhookHarness) logText() string {
	wh.logMu.Lock()
	defer wh.logMu.Unlock()
	return wh.log.String()
}

// post sends body to the handler; header holds extra headers.
func (wh *webhookHarness) do(method, path, contentType string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.RemoteAddr = "203.0.113.10:40000"
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	wh.mux.ServeHTTP(w, r)
	return w
}

func (wh *webhookHarness) post(body []byte, header map[string]string) *httptest.ResponseRecorder {
	return wh.do(http.MethodPost, "/", "application/json", body, header)
}

// spooled returns the messages in new/ and their context, by name.
func (wh *webhookHarness) spooled() (names []string, raws [][]byte, envs []verify.Envelope) {
	wh.t.Helper()
	entries, err := os.ReadDir(filepath.Join(wh.dir, maildir.SubNew))
	if err != nil {
		wh.t.Fatal(err)
	}
	for _, e := range entries {
		m, err := load(wh.spool, e.Name(), 1<<30)
		if err != nil {
			wh.t.Fatal(err)
		}
		names = append(names, e.Name())
		raws = append(raws, m.Raw)
		envs = append(envs, m.Envelope)
	}
	return names, raws, envs
}

// assertNothingSpooled checks that no file of the request was left behind.
func (wh *webhookHarness) assertNothingSpooled() {
	wh.t.Helper()
	for _, sub := range []string{maildir.SubNew, maildir.SubTmp, maildir.SubMeta} {
		if entries, _ := os.ReadDir(filepath.Join(wh.dir, sub)); len(entries) != 0 {
			wh.t.Errorf("%s/ holds %d files", sub, len(entries))
		}
	}
}

func webhookAnswer(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("answer Content-Type %q", ct)
	}
	var body struct{ Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %q is not JSON: %v", w.Body.String(), err)
	}
	return body.Message
}

func TestWebhookSpoolsEveryMessageOfARequest(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{})
	binary := append(bytes.Clone(relayTestMessage), 0xff, 0xfe, '\r', '\n') // not UTF-8: base64 only
	body := relayPayload(t,
		relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"},
		relayFixture{raw: binary, base64: true, from: "carol@example.net", to: "certs@inbound.example.org"},
	)
	w := wh.post(body, nil)
	if w.Code != http.StatusOK || webhookAnswer(t, w) != "ok" {
		t.Fatalf("status %d %q, want 200 ok", w.Code, w.Body)
	}
	_, raws, envs := wh.spooled()
	if len(raws) != 2 {
		t.Fatalf("%d messages spooled, want 2", len(raws))
	}
	byFrom := map[string]int{}
	for i, env := range envs {
		byFrom[env.EnvelopeFrom] = i
	}
	for _, tt := range []struct {
		from, webhookID string
		raw             []byte
	}{{"bob@example.com", "4f4c4b4f80", relayTestMessage}, {"carol@example.net", "4f4c4b4f81", binary}} {
		i, ok := byFrom[tt.from]
		if !ok {
			t.Fatalf("no message from %s", tt.from)
		}
		if !bytes.Equal(raws[i], tt.raw) {
			t.Errorf("%s: the message changed:\n got %q\nwant %q", tt.from, raws[i], tt.raw)
		}
		env := envs[i]
		want := verify.Envelope{Source: "webhook", EnvelopeFrom: tt.from, EnvelopeTo: []string{"certs@inbound.example.org"},
			RemoteAddr: "203.0.113.10:40000", Received: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
			Extra: map[string]string{"customer_id": "1337", "webhook_id": tt.webhookID, "friendly_from": "Bob <" + tt.from + ">", "protocol": "smtp"}}
		if fmt.Sprint(env) != fmt.Sprint(want) {
			t.Errorf("%s: context\n got %+v\nwant %+v", tt.from, env, want)
		}
	}
}

// Hand-written payloads: escapes encoding/json would not produce, bytes that
// are not UTF-8, base64 with line breaks, ids as numbers.
func TestWebhookPayloadForms(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want string
	}{
		{"escaped slash and unicode", `[{"msys":{"relay_message":{"content":{"email_rfc822":"From: a\/b \u00e9\ud83d\ude00\r\n\r\nx"}}}}]`, "From: a/b é😀\r\n\r\nx"},
		{"raw bytes kept", "[{\"msys\":{\"relay_message\":{\"content\":{\"email_rfc822\":\"From: \xff\xfe\\r\\n\\r\\nx\"}}}}]", "From: \xff\xfe\r\n\r\nx"},
		{"base64 with CRLF line breaks", `[{"msys":{"relay_message":{"content":{"email_rfc822":"RnJvbTog\r\nYUBiDQoN\nCng=","email_rfc822_is_base64":true}}}}]`, "From: a@b\r\n\r\nx"},
		{"is_base64 before the message", `[{"msys":{"relay_message":{"content":{"email_rfc822_is_base64":true,"email_rfc822":"eA=="},"customer_id":1337,"webhook_id":null}}}]`, "x"},
		{"whitespace around", " \n[ {\"msys\":{\"relay_message\":{\"content\":{\"email_rfc822\":\"x\"}}}} ]\n ", "x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh := newWebhookHarness(t, ingest.WebhookOptions{})
			w := wh.post([]byte(tt.body), nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d %s", w.Code, w.Body)
			}
			_, raws, _ := wh.spooled()
			if len(raws) != 1 || string(raws[0]) != tt.want {
				t.Fatalf("spooled %q, want %q", raws, tt.want)
			}
		})
	}
}

func TestWebhookResponses(t *testing.T) {
	good := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	const token = "s3cret-token"
	for _, tt := range []struct {
		name        string
		opts        ingest.WebhookOptions
		method      string
		path        string
		contentType string
		header      map[string]string
		body        string
		wantStatus  int
		wantMessage string // a prefix
		wantAllow   string
		spooled     int
	}{
		{name: "ok", body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "empty array", body: `[]`, wantStatus: 200, wantMessage: "ok"},
		{name: "charset parameter", contentType: "application/json; charset=utf-8", body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "content type case", contentType: "Application/JSON", body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "other content type", contentType: "text/plain", body: string(good), wantStatus: 400, wantMessage: "Unknown Content-Type in request headers"},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: string(good), wantStatus: 400, wantMessage: "Unknown Content-Type in request headers"},
		{name: "no content type", contentType: "-", body: string(good), wantStatus: 400, wantMessage: "Unknown Content-Type in request headers"},
		{name: "token right", opts: ingest.WebhookOptions{Token: token}, header: map[string]string{ingest.WebhookTokenHeader: token}, body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "token missing", opts: ingest.WebhookOptions{Token: token}, body: string(good), wantStatus: 400, wantMessage: "Invalid X-MessageSystems-Webhook-Token in request headers"},
		{name: "token wrong", opts: ingest.WebhookOptions{Token: token}, header: map[string]string{ingest.WebhookTokenHeader: "s3cret-tokeN"}, body: string(good), wantStatus: 400, wantMessage: "Invalid X-MessageSystems-Webhook-Token in request headers"},
		{name: "token prefix", opts: ingest.WebhookOptions{Token: token}, header: map[string]string{ingest.WebhookTokenHeader: "s3cret"}, body: string(good), wantStatus: 400, wantMessage: "Invalid X-MessageSystems-Webhook-Token in request headers"},
		{name: "token empty", opts: ingest.WebhookOptions{Token: token}, header: map[string]string{ingest.WebhookTokenHeader: ""}, body: string(good), wantStatus: 400, wantMessage: "Invalid X-MessageSystems-Webhook-Token in request headers"},
		{name: "token header case", opts: ingest.WebhookOptions{Token: token}, header: map[string]string{"x-messagesystems-webhook-token": token}, body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "bad content type before token", opts: ingest.WebhookOptions{Token: token}, contentType: "text/html", body: string(good), wantStatus: 400, wantMessage: "Unknown Content-Type"},
		{name: "malformed JSON", body: `[{"msys":`, wantStatus: 400, wantMessage: "Malformed JSON in request body"},
		{name: "empty body", body: ``, wantStatus: 400, wantMessage: "Malformed JSON in request body"},
		{name: "not an array", body: `{"msys":{}}`, wantStatus: 400, wantMessage: "Malformed JSON in request body: want an array"},
		{name: "item not an object", body: `[42]`, wantStatus: 400, wantMessage: "Malformed JSON in request body: item 0"},
		{name: "data after the array", body: `[] []`, wantStatus: 400, wantMessage: "Malformed JSON in request body"},
		{name: "missing comma", body: string(good[:len(good)-1]) + string(good[1:]), wantStatus: 400, wantMessage: "Malformed JSON in request body"},
		{name: "no relay_message", body: `[{"msys":{}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: no msys.relay_message"},
		{name: "no email_rfc822", body: `[{"msys":{"relay_message":{"msg_from":"a@b","content":{"text":"x"}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: content.email_rfc822"},
		{name: "empty email_rfc822", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":""}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: content.email_rfc822"},
		{name: "null email_rfc822", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":null}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: content.email_rfc822"},
		{name: "email_rfc822 not a string", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":["x"]}}}}]`, wantStatus: 400, wantMessage: "Malformed JSON in request body: item 0"},
		{name: "bad base64", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":"not base64!","email_rfc822_is_base64":true}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: content.email_rfc822 is not valid base64"},
		{name: "empty after base64", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":"\r\n","email_rfc822_is_base64":true}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: content.email_rfc822"},
		{name: "member named twice", body: `[{"msys":{"relay_message":{"content":{"email_rfc822":"eA==","email_rfc822":"eQ==","email_rfc822_is_base64":true}}}}]`, wantStatus: 400, wantMessage: "Malformed JSON in request body: item 0"},
		{name: "member names in another case", body: `[{"MSYS":{"Relay_Message":{"Content":{"EMAIL_RFC822":"x"}}}}]`, wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "over-long msg_from", body: `[{"msys":{"relay_message":{"msg_from":"` + strings.Repeat("a", 3000) + `","content":{"email_rfc822":"x"}}}}]`, wantStatus: 400, wantMessage: "Bad relay message: item 0: msg_from is longer"},
		{name: "too large by Content-Length", opts: ingest.WebhookOptions{MaxRequestBytes: 100}, body: string(good), wantStatus: 413, wantMessage: "Request body larger than 100 bytes"},
		{name: "too large, chunked", opts: ingest.WebhookOptions{MaxRequestBytes: 100}, header: map[string]string{"chunked": "1"}, body: string(good), wantStatus: 413, wantMessage: "Request body larger than 100 bytes"},
		{name: "GET", method: "GET", body: ``, wantStatus: 405, wantMessage: "Method Not Allowed", wantAllow: "POST"},
		{name: "PUT", method: "PUT", body: string(good), wantStatus: 405, wantMessage: "Method Not Allowed", wantAllow: "POST"},
		{name: "other path", path: "/other", body: string(good), wantStatus: 404, wantMessage: "Not Found"},
		{name: "configured path", opts: ingest.WebhookOptions{Path: "/relay/x1"}, path: "/relay/x1", body: string(good), wantStatus: 200, wantMessage: "ok", spooled: 1},
		{name: "root when a path is configured", opts: ingest.WebhookOptions{Path: "/relay/x1"}, body: string(good), wantStatus: 404, wantMessage: "Not Found"},
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200, wantMessage: "ok"},
		{name: "healthz HEAD", method: "HEAD", path: "/healthz", wantStatus: 200},
		{name: "healthz POST", path: "/healthz", body: string(good), wantStatus: 405, wantMessage: "Method Not Allowed", wantAllow: "GET, HEAD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh := newWebhookHarness(t, tt.opts)
			method, path, ct := webhookOr(tt.method, "POST"), webhookOr(tt.path, "/"), webhookOr(tt.contentType, "application/json")
			if ct == "-" {
				ct = ""
			}
			r := httptest.NewRequest(method, path, strings.NewReader(tt.body))
			r.RemoteAddr = "203.0.113.10:40000"
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			for k, v := range tt.header {
				if k == "chunked" {
					r.ContentLength = -1
					continue
				}
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			wh.mux.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			if method != "HEAD" {
				if msg := webhookAnswer(t, w); !strings.HasPrefix(msg, tt.wantMessage) {
					t.Errorf("message %q, want %q…", msg, tt.wantMessage)
				}
			}
			if got := w.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			if tt.spooled == 0 {
				wh.assertNothingSpooled()
			} else if names, _, _ := wh.spooled(); len(names) != tt.spooled {
				t.Errorf("%d messages spooled, want %d", len(names), tt.spooled)
			}
			if strings.Contains(wh.logText(), token) {
				t.Error("the log shows the token")
			}
		})
	}
}

func webhookOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// One bad item refuses the whole request: nothing of it is spooled.
func TestWebhookAllOrNothing(t *testing.T) {
	good := relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"}
	goodJSON := relayPayload(t, good, good)
	items := string(goodJSON[1 : len(goodJSON)-1]) // two good items
	for _, bad := range []string{
		`{"msys":{"relay_message":{"msg_from":"x@example.com","content":{"text":"no message"}}}}`,
		`{"msys":{"relay_message":{"content":{"email_rfc822":"@@@","email_rfc822_is_base64":true}}}}`,
		`{"msys":{"relay_message":{"content":{"email_rfc822":""}}}}`,
		`{"msys":{"relay_message":{"content":{"email_rfc822":"x"`, // cut short
	} {
		for _, body := range []string{"[" + items + "," + bad + "]", "[" + bad + "," + items + "]"} {
			wh := newWebhookHarness(t, ingest.WebhookOptions{})
			w := wh.post([]byte(body), nil)
			if w.Code != http.StatusBadRequest {
				t.Errorf("%.60s…: status %d, want 400", bad, w.Code)
			}
			wh.assertNothingSpooled()
		}
	}
}

// When the spool cannot be written the request is not acknowledged (503,
// so the relay retries) and nothing of it stays in new/.
func TestWebhookSpoolNotWritable(t *testing.T) {
	body := relayPayload(t,
		relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"},
		relayFixture{raw: relayTestMessage, base64: true, from: "carol@example.net", to: "certs@inbound.example.org"})
	// A message larger than DefaultSpillBytes goes through tmp/ (its own
	// file); the usual ones only where there are no extended attributes.
	large := relayPayload(t, relayFixture{raw: append(bytes.Repeat([]byte("X-Pad: 0123456789abcdef\r\n"), ingest.DefaultSpillBytes/24), relayTestMessage...),
		base64: true, from: "bob@example.com", to: "certs@inbound.example.org"})
	for _, tt := range []struct {
		name   string
		body   []byte
		damage func(dir string)
	}{
		{"tmp is a file", large, func(dir string) {
			os.RemoveAll(filepath.Join(dir, maildir.SubTmp))
			os.WriteFile(filepath.Join(dir, maildir.SubTmp), nil, 0o600)
		}},
		{"new is a file", body, func(dir string) {
			os.RemoveAll(filepath.Join(dir, maildir.SubNew))
			os.WriteFile(filepath.Join(dir, maildir.SubNew), nil, 0o600)
		}},
		{"the spool is gone", body, func(dir string) { os.RemoveAll(dir) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh := newWebhookHarness(t, ingest.WebhookOptions{})
			tt.damage(wh.dir)
			w := wh.post(tt.body, nil)
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d %s, want 503", w.Code, w.Body)
			}
			if webhookAnswer(t, w) == "ok" || w.Header().Get("Retry-After") == "" {
				t.Errorf("answer %q, Retry-After %q", w.Body, w.Header().Get("Retry-After"))
			}
			if entries, err := os.ReadDir(filepath.Join(wh.dir, maildir.SubNew)); err == nil && len(entries) > 0 {
				t.Errorf("%d messages in new/ after a refused request", len(entries))
			}
			if !strings.Contains(wh.logText(), "| 503 Cannot store the messages now; retry later: nothing acknowledged") {
				t.Errorf("log:\n%s", wh.logText())
			}
			if tt.name == "tmp is a file" || tt.name == "the spool is gone" {
				w := wh.do("GET", "/healthz", "", nil, nil)
				if w.Code != http.StatusServiceUnavailable {
					t.Errorf("healthz: status %d, want 503", w.Code)
				}
			}
		})
	}
}

// blockingSink is a spool that holds every delivery until release is
// closed.
type blockingSink struct {
	ingest.Sink
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSink) Deliver(ctx context.Context, msgs ...ingest.Incoming) ([]string, error) {
	b.entered <- struct{}{}
	<-b.release
	return make([]string, len(msgs)), nil
}

// Beyond MaxConcurrent requests in flight, the webhook answers 503 with
// Retry-After at once.
func TestWebhookConcurrencyCap(t *testing.T) {
	spool := &blockingSink{Sink: testSpool(t), entered: make(chan struct{}, 2), release: make(chan struct{})}
	h, err := ingest.NewWebhook(spool, ingest.WebhookOptions{MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	body := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	post := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = post().Code }()
	}
	<-spool.entered
	<-spool.entered
	w := post()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("third request: status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	health := httptest.NewRecorder()
	routes(h).ServeHTTP(health, httptest.NewRequest("GET", "/healthz", nil))
	if health.Code != http.StatusOK {
		t.Errorf("healthz while busy: %d", health.Code)
	}
	close(spool.release)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("the first two: %v, want 200s", codes)
	}
	if w := post(); w.Code != http.StatusOK {
		t.Errorf("after the burst: %d", w.Code)
	}
}

// A client that sends its body too slowly is cut off and holds no slot.
func TestWebhookSlowClient(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{BodyTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(wh.h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"msys\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut off after %v", d)
	}
	wh.assertNothingSpooled()
}

// The log tells a request's story as one block, like the original service.
func TestWebhookLogBlock(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{Token: "hunter2", MaxMessageBytes: 100})
	body := relayPayload(t,
		relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"},
		relayFixture{raw: []byte("x"), base64: true, from: "carol@example.net", to: "certs@inbound.example.org"})
	w := wh.post(body, map[string]string{ingest.WebhookTokenHeader: "hunter2", "X-Forwarded-For": "198.51.100.7"})
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	wh.post(body, map[string]string{ingest.WebhookTokenHeader: "hunter3"})
	log := wh.logText()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`INFO  \[(req-[0-9a-f]{8})\] Request from 203\.0\.113\.10,scheme=http,path=/,forwarded_for=198\.51\.100\.7$`),
		regexp.MustCompile(`INFO  \[req-[0-9a-f]{8}\] \| len\(headers\)=\d+,len\(body\)=` + fmt.Sprint(len(body)) + `$`),
		regexp.MustCompile(`INFO  \[req-[0-9a-f]{8}\] \| msg_from=bob@example\.com,rcpt_to=certs@inbound\.example\.org,len\(email_rfc822\)=` + fmt.Sprint(len(relayTestMessage)) + ` \(over --max-size: it will be reported as message_too_large\) message=[0-9a-f]{12}$`),
		regexp.MustCompile(`INFO  \[req-[0-9a-f]{8}\] \| msg_from=carol@example\.net,rcpt_to=certs@inbound\.example\.org,len\(email_rfc822\)=1 message=2d711642b726$`),
		regexp.MustCompile(`INFO  \[req-[0-9a-f]{8}\] \| spooled 2 messages: \S+ \S+$`),
		regexp.MustCompile(`INFO  \[(req-[0-9a-f]{8})\] Request from 203\.0\.113\.10,scheme=http,path=/$`),
		regexp.MustCompile(`WARN  \[req-[0-9a-f]{8}\] \| 400 Invalid X-MessageSystems-Webhook-Token in request headers: token does not match$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), log)
	}
	var ids []string
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d: %q\n  want %s", i, lines[i], re)
		}
		if m := regexp.MustCompile(`\[(req-[0-9a-f]+)\]`).FindStringSubmatch(lines[i]); m != nil {
			ids = append(ids, m[1])
		}
	}
	if len(ids) == len(want) && (len(slices.Compact(slices.Clone(ids[:5]))) != 1 || ids[5] == ids[0] || ids[5] != ids[6]) {
		t.Errorf("request ids %v: want one per request", ids)
	}
	if strings.Contains(log, "hunter") {
		t.Error("the log shows a token")
	}
}

func TestNewWebhookPath(t *testing.T) {
	for _, p := range []string{"/healthz", "relay"} {
		if _, err := ingest.NewWebhook(&blockingSink{}, ingest.WebhookOptions{Path: p}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

// An error's log line says its detail once: the answer is often the error
// itself, capitalised; a detail that adds something is kept.
func TestWebhookLogSaysDetailOnce(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{MaxItems: 1})
	two := relayPayload(t,
		relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"},
		relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	for _, tt := range []struct {
		name        string
		contentType string
		body        string
		want        string // the block's last line, after "| ", starts so
		once        string // and says this once, in any case
	}{
		{"malformed JSON", "application/json", `[{"msys":`,
			`400 Malformed JSON in request body: item 0: jsontext: unexpected EOF`, "malformed JSON"},
		{"not an array", "application/json", `{}`,
			`400 Malformed JSON in request body: want an array of relay messages`, "malformed JSON"},
		{"bad item", "application/json", `[{"msys":{}}]`,
			`400 Bad relay message: item 0: no msys.relay_message`, "bad relay message"},
		{"too many items", "application/json", string(two),
			`413 Too many relay messages in one request: the limit is 1`, "too many relay messages"},
		{"content type", "text/plain", `[]`,
			`400 Unknown Content-Type in request headers: content-type "text/plain"`, "text/plain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh.logMu.Lock()
			wh.log.Reset()
			wh.logMu.Unlock()
			wh.do("POST", "/", tt.contentType, []byte(tt.body), nil)
			lines := strings.Split(strings.TrimSpace(wh.logText()), "\n")
			last := lines[len(lines)-1]
			_, got, _ := strings.Cut(last, "| ")
			if !strings.HasPrefix(got, tt.want) || strings.Count(strings.ToLower(got), strings.ToLower(tt.once)) != 1 {
				t.Errorf("last line %q\n want %q... saying %q once", last, tt.want, tt.once)
			}
		})
	}
}
