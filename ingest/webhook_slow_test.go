package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// slowClient posts to srv over a raw connection: the headers declaring
// length bytes of body, then each chunk of body after its pause. It returns
// the answer's status and when it came, measured from the headers.
func slowClient(t *testing.T, srv *httptest.Server, length int, chunks [][]byte, pauses []time.Duration) (int, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", length)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, c := range chunks {
			select {
			case <-stop:
				return
			case <-time.After(pauses[i]):
			}
			if _, err := conn.Write(c); err != nil {
				return // cut off
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer after %v: %v", time.Since(start), err)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// A client that declares a large body and trickles it a byte at a time is
// cut off with 408 soon after the grace period, not when the declared
// length would have taken at the minimum rate, and its slot is free again.
func TestWebhookTricklingClient(t *testing.T) {
	const grace = 300 * time.Millisecond
	wh := newWebhookHarness(t, ingest.WebhookOptions{MinBodyRate: 1000, BodyGrace: grace, BodyTimeout: time.Minute, MaxConcurrent: 1})
	srv := httptest.NewServer(wh.h)
	defer srv.Close()

	// 10 MiB declared, 20 bytes/s sent (a byte every 50 ms): an array
	// opened, then white space, valid JSON as far as it goes.
	chunks := [][]byte{[]byte("[")}
	pauses := []time.Duration{0}
	for range 200 {
		chunks = append(chunks, []byte(" "))
		pauses = append(pauses, 50*time.Millisecond)
	}
	status, took := slowClient(t, srv, 10<<20, chunks, pauses)
	if status != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", status)
	}
	// Due at grace + 6 bytes/1000 B/s; the old deadline, from the declared
	// length, was the whole minute.
	if took < grace || took > 2*time.Second {
		t.Errorf("cut off after %v, want soon after %v", took, grace)
	}
	wh.assertNothingSpooled()

	body := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	status, _ = slowClient(t, srv, len(body), [][]byte{body}, []time.Duration{0})
	if status != http.StatusOK {
		t.Errorf("the next request, with the only slot: %d, want 200", status)
	}
}

// A slow but steady sender passes: it keeps above the minimum rate on
// average, even across a stall, and even when the whole body takes longer
// than grace plus its length at the minimum rate would allow at the start.
func TestWebhookSlowSteadyClient(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{MinBodyRate: 1000, BodyGrace: 300 * time.Millisecond, BodyTimeout: time.Minute})
	srv := httptest.NewServer(wh.h)
	defer srv.Close()
	var items []relayFixture
	for range 4 {
		items = append(items, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	}
	body := relayPayload(t, items...)
	// 100 bytes every 40 ms (2,500 B/s), a 200 ms wait before the first
	// and a 500 ms stall halfway.
	var chunks [][]byte
	var pauses []time.Duration
	for i := 0; i < len(body); i += 100 {
		chunks = append(chunks, body[i:min(i+100, len(body))])
		pauses = append(pauses, 40*time.Millisecond)
	}
	pauses[0] = 200 * time.Millisecond
	pauses[len(pauses)/2] = 500 * time.Millisecond
	status, took := slowClient(t, srv, len(body), chunks, pauses)
	if status != http.StatusOK {
		t.Fatalf("status %d after %v (%d bytes), want 200\n%s", status, took, len(body), wh.logText())
	}
	if names, _, _ := wh.spooled(); len(names) != 4 {
		t.Errorf("%d messages spooled, want 4", len(names))
	}
}

// slowSink is a spool that takes its time to deliver, and fails if the
// request's context is cancelled meanwhile.
type slowSink struct {
	ingest.Sink
	delay time.Duration
}

func (s slowSink) Deliver(ctx context.Context, msgs ...ingest.Incoming) ([]string, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.delay):
		return make([]string, len(msgs)), nil
	}
}

// Once the whole body is in, no read deadline is left on the connection: a
// delivery that takes longer than the body's deadline would have been
// cancelled by net/http's background read timing out.
func TestWebhookSlowDeliveryAfterBody(t *testing.T) {
	h, err := ingest.NewWebhook(slowSink{Sink: testSpool(t), delay: time.Second}, ingest.WebhookOptions{BodyGrace: 200 * time.Millisecond, BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	if status, took := slowClient(t, srv, len(body), [][]byte{body}, []time.Duration{0}); status != http.StatusOK {
		t.Errorf("status %d after %v, want 200", status, took)
	}
}
