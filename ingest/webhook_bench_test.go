package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/verify"
)

func benchRelayPayload(b *testing.B) []byte {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "sample", "messages", "01-ok-rsa-detached.eml"))
	if err != nil {
		b.Fatal(err)
	}
	return relayPayload(b, relayFixture{raw: raw, base64: true, from: "rsa.detached@example.com", to: "certs@inbound.example.org"})
}

// BenchmarkWebhook measures the webhook alone, without the pipeline:
// single-message relay requests over loopback HTTP from 16 clients per CPU,
// each acknowledged once durably spooled. The spool is in a temporary
// folder, or in $WEBHOOK_BENCH_DIR (to compare file systems):
//
//	go test -run '^$' -bench 'Webhook$' -benchtime 5s -cpu 2 ./ingest/
func BenchmarkWebhook(b *testing.B) {
	body := benchRelayPayload(b)
	dir := os.Getenv("WEBHOOK_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	spool, err := maildir.Open(dir, maildir.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer spool.Close()
	h, err := ingest.NewWebhook(spool, ingest.WebhookOptions{MaxConcurrent: 1024})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkWebhookDecode measures decoding a single-message relay payload.
func BenchmarkWebhookDecode(b *testing.B) {
	body := benchRelayPayload(b)
	h, err := ingest.NewWebhook(nil, ingest.WebhookOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Decode(bytes.NewReader(body), verify.Envelope{}); err != nil {
			b.Fatal(err)
		}
	}
}
