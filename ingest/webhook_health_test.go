package ingest_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// healthSink is a spool that always has room and whose deliveries fail at
// will: a full disk, which an empty probe file does not notice.
type healthSink struct {
	ingest.Sink
	mu   sync.Mutex
	fail bool
}

func (s *healthSink) Deliver(ctx context.Context, msgs ...ingest.Incoming) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, errors.New("write new/x: no space left on device")
	}
	return make([]string, len(msgs)), nil
}

func (s *healthSink) Room(context.Context, int64) error { return nil }

func (s *healthSink) setFail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// healthCheck asks h's /healthz and returns the status and message.
func healthCheck(t *testing.T, h *ingest.Webhook) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	routes(h).ServeHTTP(w, httptest.NewRequest("GET", ingest.WebhookHealthPath, nil))
	return w.Code, webhookAnswer(t, w)
}

// roomSink is a sink whose Room answers as the test says, and remembers
// the room it was asked for.
type roomSink struct {
	ingest.Sink
	room  func(size int64) error
	asked atomic.Int64
}

func (s *roomSink) Room(_ context.Context, size int64) error {
	s.asked.Store(size)
	return s.room(size)
}

// /healthz answers 200 only while the pipeline runs, the sink has room for
// one more request of the largest size, and the last delivery did not
// fail; each cause of a 503 is checked alone. (How the spool tells its
// room: TestSpoolRoom.)
func TestWebhookHealth(t *testing.T) {
	const maxRequest = 1 << 20
	roomy := func(int64) error { return nil }
	for _, tt := range []struct {
		name    string
		room    func(size int64) error
		alive   func() error
		status  int
		message string
		log     string
	}{
		{"healthy", roomy, func() error { return nil }, 200, "ok", ""},
		{"disk full", func(size int64) error { return &ingest.NoRoomError{Free: 0, Need: size} }, nil, 503, ingest.HealthMsgSpace,
			"0 bytes free, less than the largest request (1048576 bytes)"},
		{"less than a request free", func(size int64) error { return &ingest.NoRoomError{Free: uint64(size - 1), Need: size} }, nil, 503, ingest.HealthMsgSpace,
			"1048575 bytes free, less than the largest request (1048576 bytes)"},
		{"statfs fails", func(int64) error { return errors.New("free space: statfs: input/output error") }, nil, 503, ingest.HealthMsgWritable,
			"free space: statfs: input/output error"},
		{"not writable", func(int64) error { return errors.New("spool not writable: permission denied") }, nil, 503, ingest.HealthMsgWritable,
			"spool not writable: permission denied"},
		{"pipeline stopped", roomy, func() error { return errors.New("the pipeline is not running") }, 503, ingest.HealthMsgPipeline, ""},
		{"pipeline stalled", roomy, func() error { return errors.New("stalled") }, 503, ingest.HealthMsgPipeline, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &roomSink{room: tt.room}
			wh := newWebhookHarnessSink(t, ingest.WebhookOptions{MaxRequestBytes: maxRequest, PipelineAlive: tt.alive}, func(s ingest.Sink) ingest.Sink {
				sink.Sink = s
				return sink
			})
			status, msg := healthCheck(t, wh.h)
			if status != tt.status || msg != tt.message {
				t.Errorf("healthz: %d %q, want %d %q", status, msg, tt.status, tt.message)
			}
			if tt.status == 503 && !strings.Contains(wh.logText(), "health check: 503 "+tt.message) || !strings.Contains(wh.logText(), tt.log) {
				t.Errorf("log:\n%s", wh.logText())
			}
			if n := sink.asked.Load(); tt.alive == nil && n != maxRequest {
				t.Errorf("room asked for %d bytes, want the largest request's %d", n, maxRequest)
			}
		})
	}
}

// A failed delivery (a full disk that the probe file does not notice)
// keeps /healthz at 503 until a delivery succeeds, or for
// webhookFailureHold at most, so that a load balancer which stopped
// sending requests lets the node back once its probes pass.
func TestWebhookHealthAfterFailedDelivery(t *testing.T) {
	spool := &healthSink{Sink: testSpool(t), fail: true}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	h, err := ingest.NewWebhook(spool, ingest.WebhookOptions{Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	advance := func(d time.Duration) {
		clock.Lock()
		now = now.Add(d)
		clock.Unlock()
	}
	body := relayPayload(t, relayFixture{raw: relayTestMessage, from: "bob@example.com", to: "certs@inbound.example.org"})
	post := func() int {
		r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if status, msg := healthCheck(t, h); status != 200 {
		t.Fatalf("before any delivery: %d %q", status, msg)
	}
	if code := post(); code != 503 {
		t.Fatalf("failing delivery: %d, want 503", code)
	}
	if status, msg := healthCheck(t, h); status != 503 || msg != ingest.HealthMsgDelivery {
		t.Errorf("after a failed delivery: %d %q, want 503 %q", status, msg, ingest.HealthMsgDelivery)
	}
	advance(ingest.WebhookFailureHold - time.Second)
	if status, _ := healthCheck(t, h); status != 503 {
		t.Errorf("just before the hold ends: %d, want 503", status)
	}
	spool.setFail(false)
	if code := post(); code != 200 {
		t.Fatalf("delivery: %d", code)
	}
	if status, msg := healthCheck(t, h); status != 200 {
		t.Errorf("after a delivery succeeded: %d %q, want 200", status, msg)
	}

	spool.setFail(true)
	post()
	if status, _ := healthCheck(t, h); status != 503 {
		t.Errorf("after another failed delivery: %d, want 503", status)
	}
	advance(ingest.WebhookFailureHold)
	if status, msg := healthCheck(t, h); status != 200 {
		t.Errorf("after the hold, no delivery since: %d %q, want 200 (the probes decide)", status, msg)
	}
}

// By default the health check measures the free space of a *Spool's file
// system (statfs on Linux), which no file system has for a request of
// 2^62 bytes.
func TestWebhookHealthSpoolFreeSpace(t *testing.T) {
	wh := newWebhookHarness(t, ingest.WebhookOptions{MaxRequestBytes: 1 << 62})
	free, err := wh.spool.FreeSpace()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("FreeSpace on %s: %d, %v; want ErrUnsupported", runtime.GOOS, free, err)
		}
		t.Skip("free space is measured on Linux alone")
	}
	if err != nil || free == 0 {
		t.Fatalf("FreeSpace: %d, %v", free, err)
	}
	if status, msg := healthCheck(t, wh.h); status != 503 || msg != ingest.HealthMsgSpace {
		t.Errorf("healthz: %d %q, want 503 %q", status, msg, ingest.HealthMsgSpace)
	}
	ok := newWebhookHarness(t, ingest.WebhookOptions{})
	if status, msg := healthCheck(t, ok.h); status != 200 {
		t.Errorf("healthz with the default 50 MiB margin: %d %q (free %d)", status, msg, free)
	}
}

// /healthz answers 503 "report not writable" while the pipeline cannot
// write its report (a full disk under it), before any other cause: such a
// report also holds up the pipeline, and is the cause.
func TestWebhookHealthReportNotWritable(t *testing.T) {
	var reportErr error
	wh := newWebhookHarness(t, ingest.WebhookOptions{
		PipelineAlive:  func() error { return errors.New("stalled") },
		ReportWritable: func() error { return reportErr },
	})
	reportErr = errors.New("writing report: no space left on device")
	if status, msg := healthCheck(t, wh.h); status != 503 || msg != ingest.HealthMsgReport {
		t.Errorf("healthz: %d %q, want 503 %q", status, msg, ingest.HealthMsgReport)
	}
	if !strings.Contains(wh.logText(), "health check: 503 report not writable") ||
		!strings.Contains(wh.logText(), "no space left on device") {
		t.Errorf("log:\n%s", wh.logText())
	}
	reportErr = nil
	if status, msg := healthCheck(t, wh.h); status != 503 || msg != ingest.HealthMsgPipeline {
		t.Errorf("healthz with the report writable again: %d %q, want 503 %q", status, msg, ingest.HealthMsgPipeline)
	}
}

// /healthz answers 503 "store unavailable" while the certificate store
// does not answer, before the report's cause (the store's outage also
// holds up the verdict rows); 200 once it answers again.
func TestWebhookHealthStoreUnavailable(t *testing.T) {
	var storeErr error
	wh := newWebhookHarness(t, ingest.WebhookOptions{
		StoreAvailable: func() error { return storeErr },
		ReportWritable: func() error { return storeErr },
	})
	storeErr = errors.New("PostgreSQL at db:5432/certharvest is unreachable: connection refused")
	if status, msg := healthCheck(t, wh.h); status != 503 || msg != ingest.HealthMsgStore {
		t.Errorf("healthz: %d %q, want 503 %q", status, msg, ingest.HealthMsgStore)
	}
	if !strings.Contains(wh.logText(), "health check: 503 store unavailable") ||
		!strings.Contains(wh.logText(), "connection refused") {
		t.Errorf("log:\n%s", wh.logText())
	}
	storeErr = nil
	if status, msg := healthCheck(t, wh.h); status != 200 {
		t.Errorf("healthz with the store back: %d %q, want 200", status, msg)
	}
}
