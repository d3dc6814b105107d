package providers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// The handlers are tested against the spool they deliver into in service
// (package maildir's), with requests built as each provider builds them.

// testNow is the tests' clock.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testMessage is a signed-looking message whose bytes must arrive exactly:
// CRLF, a bare LF, trailing white space, 8-bit bytes that are not UTF-8.
var testMessage = []byte("From: Bob <bob@example.com>\r\nTo: certs@inbound.example.org\r\nSubject: caf\xe9 \"quoted\" \\ / \t\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n\tbh=abc=; b=def=\r\n\r\nbody line  \r\n\xff\xfe raw\nbare LF\r\n")

// utf8Message is testMessage for the providers that post JSON strings,
// which must be UTF-8.
var utf8Message = bytes.ReplaceAll(bytes.ReplaceAll(testMessage, []byte("\xe9"), []byte("é")), []byte("\xff\xfe"), []byte("\u2603"))

// harness is a spool, a mux with a handler on it, and the log.
type harness struct {
	t     *testing.T
	dir   string
	spool *maildir.Spool
	mux   *http.ServeMux
	log   *syncBuffer
	codes *codes
}

// handler is what every provider's handler is.
type handler interface {
	http.Handler
	Handle(*http.ServeMux)
}

// newHarness opens a spool and registers the handler build returns,
// delivering into wrap(spool) (the spool itself when wrap is nil).
func newHarness(t *testing.T, wrap func(ingest.Sink) ingest.Sink, build func(ingest.Sink, ingest.HTTPInputOptions) (handler, error)) *harness {
	t.Helper()
	dir := t.TempDir()
	spool, err := maildir.Open(dir, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	hs := &harness{t: t, dir: dir, spool: spool, mux: http.NewServeMux(), log: &syncBuffer{}, codes: &codes{}}
	var sink ingest.Sink = spool
	if wrap != nil {
		sink = wrap(spool)
	}
	h, err := build(sink, ingest.HTTPInputOptions{
		Logger:          slog.New(output.NewLogHandler(hs.log, slog.LevelDebug)),
		BlockPrefix:     true,
		Now:             func() time.Time { return testNow },
		ObserveResponse: hs.codes.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Handle(hs.mux)
	return hs
}

// do sends r through the mux, from a peer of the documentation range.
func (hs *harness) do(r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = "203.0.113.10:40000"
	w := httptest.NewRecorder()
	hs.mux.ServeHTTP(w, r)
	return w
}

// post builds a POST of body to path with the header fields.
func post(path, contentType string, body []byte, header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// spooled returns the messages in new/ and their contexts.
func (hs *harness) spooled() (raws [][]byte, envs []verify.Envelope) {
	hs.t.Helper()
	entries, err := os.ReadDir(filepath.Join(hs.dir, maildir.SubNew))
	if err != nil {
		hs.t.Fatal(err)
	}
	for _, e := range entries {
		m, _, err := hs.spool.LoadFile(e.Name(), ingest.ReadOptions{MaxSize: 1 << 30})
		if err != nil {
			hs.t.Fatal(err)
		}
		raws = append(raws, m.Raw)
		envs = append(envs, m.Envelope)
	}
	return raws, envs
}

// one checks that exactly one message was spooled, byte for byte want,
// and returns its context.
func (hs *harness) one(want []byte) verify.Envelope {
	hs.t.Helper()
	raws, envs := hs.spooled()
	if len(raws) != 1 {
		hs.t.Fatalf("%d messages spooled, want 1\nlog:\n%s", len(raws), hs.log)
	}
	if !bytes.Equal(raws[0], want) {
		hs.t.Errorf("the message changed:\n got %q\nwant %q", raws[0], want)
	}
	return envs[0]
}

// none checks that nothing of the request was left in the spool.
func (hs *harness) none() {
	hs.t.Helper()
	for _, sub := range []string{maildir.SubNew, maildir.SubTmp, maildir.SubMeta} {
		if entries, _ := os.ReadDir(filepath.Join(hs.dir, sub)); len(entries) != 0 {
			hs.t.Errorf("%s/ holds %d files", sub, len(entries))
		}
	}
}

// expect checks an answer's status, and that its message contains msg.
func expect(t *testing.T, w *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	if w.Code != status || !strings.Contains(w.Body.String(), msg) {
		t.Errorf("answer %d %s, want %d with %q", w.Code, strings.TrimSpace(w.Body.String()), status, msg)
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// codes records the statuses an input reports (ObserveResponse).
type codes struct {
	mu  sync.Mutex
	got []int
}

func (c *codes) add(status int) {
	c.mu.Lock()
	c.got = append(c.got, status)
	c.mu.Unlock()
}

func (c *codes) list() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.got...)
}

// failingSink fails its first n deliveries, as a full disk does.
type failingSink struct {
	ingest.Sink
	mu sync.Mutex
	n  int
}

func (s *failingSink) Deliver(ctx context.Context, msgs ...ingest.Incoming) ([]string, error) {
	s.mu.Lock()
	fail := s.n > 0
	s.n--
	s.mu.Unlock()
	if fail {
		for _, m := range msgs {
			if m.Writer != nil {
				m.Writer.Close()
			}
		}
		return nil, errors.New("write new/x: no space left on device")
	}
	return s.Sink.Deliver(ctx, msgs...)
}
