package ingest_test

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/cputime"
)

// Hostile webhook bodies get a clear answer in bounded time and memory, and
// leave nothing in the spool.
func TestWebhookHostileBodies(t *testing.T) {
	item := `{"msys":{"relay_message":{"msg_from":"a@example.com","content":{"email_rfc822":"From: a@example.com\r\n\r\nx\r\n"}}}}`
	items := func(n int) []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(item)
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	tests := []struct {
		name string
		body []byte
		code int
		say  string
	}{
		{"100,000 items", items(100000), http.StatusRequestEntityTooLarge, ""},
		{"a JSON nesting bomb", []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)), http.StatusBadRequest, "alformed"},
		{"a nesting bomb inside an item", []byte(`[{"msys":` + strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat("}", 100000) + `}]`), http.StatusBadRequest, "alformed"},
		{"a huge number of empty objects", []byte("[" + strings.Repeat("{},", 999) + "{}]"), http.StatusBadRequest, "item 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := newWebhookHarness(t, ingest.WebhookOptions{})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start, cpuStart := time.Now(), cputime.Process()
			w := wh.post(tt.body, nil)
			elapsed, cpu := time.Since(start), time.Duration(cputime.Process()-cpuStart)
			runtime.ReadMemStats(&after)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.say) {
				t.Fatalf("status %d %s, want %d saying %q", w.Code, w.Body, tt.code, tt.say)
			}
			// The process's CPU time: on a loaded machine the wall time
			// measures the neighbours (the wall time where there is none).
			if cpuStart == 0 {
				cpu = elapsed
			}
			if cpu > 10*time.Second {
				t.Errorf("took %v of CPU (%v wall)", cpu, elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 20*uint64(len(tt.body))+64<<20 {
				t.Errorf("allocated %d MiB for a %d KiB body", alloc>>20, len(tt.body)>>10)
			}
			wh.assertNothingSpooled()
			t.Logf("%d in %v (%v of CPU), %d KiB allocated", w.Code, elapsed, cpu, (after.TotalAlloc-before.TotalAlloc)>>10)
		})
	}
	// The limit itself is accepted.
	wh := newWebhookHarness(t, ingest.WebhookOptions{MaxItems: 3})
	if w := wh.post(items(3), nil); w.Code != http.StatusOK {
		t.Errorf("3 items with a limit of 3: status %d %s", w.Code, w.Body)
	}
	if w := wh.post(items(4), nil); w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "limit is 3") {
		t.Errorf("4 items with a limit of 3: status %d %s", w.Code, w.Body)
	}
}
