package ingest_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// A request is decoded only with twice its body reserved in the memory
// budget shared with the other inputs: without room it waits, up to
// MemoryWait, then gets 503 with Retry-After and nothing is spooled; once
// room comes within the wait, it is spooled. A body too large to hold while
// it arrives goes to a file of tmp/ first, and nothing is left there.
func TestWebhookMemoryBudget(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789abcdef\r\n"), 2*ingest.DefaultSpillBytes/18)
	large = append([]byte("From: bob@example.com\r\n\r\n"), large...)
	for _, tt := range []struct {
		name string
		raw  []byte
	}{
		{"small body", relayTestMessage},
		{"body larger than DefaultSpillBytes", large},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := relayPayload(t, relayFixture{raw: tt.raw, base64: true, from: "bob@example.com", to: "certs@inbound.example.org"})
			const maxRequest = 2 << 20
			budget := ingest.NewMemoryBudget(2 * maxRequest)
			wh := newWebhookHarness(t, ingest.WebhookOptions{Budget: budget, MaxRequestBytes: maxRequest, MemoryWait: 200 * time.Millisecond})
			// The other inputs hold all but a little of the budget.
			held := budget.Size() - 1000
			if !budget.TryReserve(held) {
				t.Fatal("cannot take the budget")
			}
			start := time.Now()
			w := wh.post(body, nil)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
				webhookAnswer(t, w) != "Too much mail being received at once; retry later" {
				t.Fatalf("status %d %s (Retry-After %q), want 503", w.Code, w.Body, w.Header().Get("Retry-After"))
			}
			if waited := time.Since(start); waited < 200*time.Millisecond {
				t.Errorf("answered after %v, before MemoryWait", waited)
			}
			wh.assertNothingSpooled()
			if !strings.Contains(wh.logText(), "| 503 Too much mail being received at once; retry later: no room in the memory budget") {
				t.Errorf("log:\n%s", wh.logText())
			}

			// Room comes while the request waits.
			go func() {
				time.Sleep(50 * time.Millisecond)
				budget.Release(held)
			}()
			wh.h.SetMemoryWait(time.Minute)
			if w := wh.post(body, nil); w.Code != http.StatusOK {
				t.Fatalf("status %d %s once room came, want 200", w.Code, w.Body)
			}
			if _, raws, _ := wh.spooled(); len(raws) != 1 || !bytes.Equal(raws[0], tt.raw) {
				t.Errorf("spooled %d messages", len(raws))
			}
			if budget.Used() != 0 {
				t.Errorf("%d bytes of the budget held after the requests", budget.Used())
			}
		})
	}
}

// content.headers, SparkPost's list of the header fields (one object each),
// is stepped over, never decoded into a table: a request listing 200,000
// costs about its body in memory, and the message's own header over the
// caps is noted in the request's log block (the pipeline reports it
// message_malformed).
func TestWebhookHeadersArrayNotDecoded(t *testing.T) {
	var msg strings.Builder
	msg.WriteString("From: bob@example.com\r\n")
	for i := range verify.DefaultMaxHeaderFields {
		fmt.Fprintf(&msg, "X-H%d: v\r\n", i)
	}
	msg.WriteString("\r\nbody\r\n")
	var headers strings.Builder
	for i := range 200_000 {
		if i > 0 {
			headers.WriteByte(',')
		}
		fmt.Fprintf(&headers, `{"X-H%d":"v"}`, i)
	}
	body := []byte(`[{"msys":{"relay_message":{"msg_from":"bob@example.com","rcpt_to":"certs@inbound.example.org","content":{"headers":[` +
		headers.String() + `],"email_rfc822":"` + strings.ReplaceAll(msg.String(), "\r\n", `\r\n`) + `"}}}}]`)
	wh := newWebhookHarness(t, ingest.WebhookOptions{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := wh.post(body, nil)
	runtime.ReadMemStats(&after)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*uint64(len(body))+8<<20 {
		t.Errorf("allocated %d MiB for a body of %d MiB", alloc>>20, len(body)>>20)
	}
	if _, raws, _ := wh.spooled(); len(raws) != 1 || string(raws[0]) != msg.String() {
		t.Fatalf("spooled %d messages", len(raws))
	}
	if !strings.Contains(wh.logText(), "(header has more than 10000 fields (the cap on header fields): it will be reported as message_malformed)") {
		t.Errorf("log:\n%.2000s", wh.logText())
	}
}

// The webhook decodes base64 in place, in the bytes it decodes from: the
// library must write no byte before it has read the input it replaces.
// Any length, with and without padding, with CRLF line breaks anywhere.
func TestBase64DecodeInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		raw := make([]byte, rng.IntN(400))
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		enc := []byte(base64.StdEncoding.EncodeToString(raw))
		for range rng.IntN(6) {
			i := rng.IntN(len(enc) + 1)
			enc = slices.Insert(enc, i, '\r', '\n')
		}
		want := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		wn, werr := base64.StdEncoding.Decode(want, enc)
		n, err := base64.StdEncoding.Decode(enc, enc)
		if (err == nil) != (werr == nil) || n != wn || !bytes.Equal(enc[:n], want[:wn]) {
			t.Fatalf("in place: %d bytes, %v; apart: %d bytes, %v", n, err, wn, werr)
		}
		if werr == nil && !bytes.Equal(want[:wn], raw) {
			t.Fatalf("decoded %x, want %x", want[:wn], raw)
		}
	}
}
