package ingest_test

import (
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/ingest"
)

// codeCounter counts the codes an observer hook is called with.
type codeCounter struct {
	mu     sync.Mutex
	counts map[int]int
}

func (c *codeCounter) observe(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[int]int{}
	}
	c.counts[code]++
}

func (c *codeCounter) get() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Every answer of the webhook is observed once, with its status; the health
// check is not.
func TestWebhookObserveResponse(t *testing.T) {
	var got codeCounter
	wh := newWebhookHarness(t, ingest.WebhookOptions{Token: "tok", ObserveResponse: got.observe})
	body := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	for _, tt := range []struct {
		method, path, ct string
		header           map[string]string
		status           int
	}{
		{http.MethodPost, "/", "application/json", map[string]string{ingest.WebhookTokenHeader: "tok"}, 200},
		{http.MethodPost, "/", "application/json", map[string]string{ingest.WebhookTokenHeader: "bad"}, 400},
		{http.MethodPost, "/", "text/plain", nil, 400},
		{http.MethodGet, "/", "", nil, 405},
		{http.MethodPost, "/elsewhere", "application/json", nil, 404},
		{http.MethodGet, ingest.WebhookHealthPath, "", nil, 200},
	} {
		if w := wh.do(tt.method, tt.path, tt.ct, body, tt.header); w.Code != tt.status {
			t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
	}
	if want := map[int]int{200: 1, 400: 2, 405: 1, 404: 1}; !maps.Equal(got.get(), want) {
		t.Errorf("observed %v, want %v", got.get(), want)
	}
}

// The replies that settle a transaction are observed: 250 for a message
// queued, and the refusals, including a connection over the limit.
func TestSMTPObserveReply(t *testing.T) {
	var got codeCounter
	f := startSMTP(t, ingest.SMTPOptions{MaxConns: 1, ObserveReply: got.observe})
	c := f.dial(t)
	if _, err := smtpSend(c, "robin@example.com", []string{"harvest@inbound.example.org"}, []byte(smtpTestMessage)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("robin@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("victim@example.com", nil); err == nil {
		t.Fatal("relay accepted")
	}
	// c holds the only slot: another connection is refused.
	extra := smtpDialRaw(t, f.addr)
	if r := extra.reply(); !strings.HasPrefix(r, "421 ") {
		t.Fatalf("second connection: %q", r)
	}
	want := map[int]int{250: 1, 550: 1, 421: 1}
	smtpWaitFor(t, func() bool { return maps.Equal(got.get(), want) })
}
