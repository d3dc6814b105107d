package ingest

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkSpoolDeliver measures the spool alone: 32 goroutines each
// delivering one 10 KB message at a time, each call returning once its
// message is durable. msgs/s is the acknowledged rate, p99-ms the 99th
// percentile of a call's latency. The spool is in b.TempDir(): set TMPDIR to
// measure another file system.
//
// b.Loop runs the function once, so the spool is created and removed once:
// on ext4 without a journal, creating files shortly after many were deleted
// nearby costs much more CPU (the inode allocator skips recently freed
// inodes one by one for about 30 s), and a benchmark that follows a large
// removal mostly measures that.
//
//	go test -run '^$' -bench SpoolDeliver -benchtime 3s -cpu 2 ./ingest/
func BenchmarkSpoolDeliver(b *testing.B) {
	const deliverers = 32
	s, err := OpenSpool(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	raw := append([]byte("From: a@example.com\r\nTo: in@example.org\r\nSubject: bench\r\n\r\n"),
		bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"), 136)...)
	env := Envelope{Source: "webhook", EnvelopeFrom: "a@example.com", EnvelopeTo: []string{"in@example.org"},
		RemoteAddr: "192.0.2.1:4567", Received: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Extra: map[string]string{"msys.relay_message.msg_from": "a@example.com"}}
	b.SetBytes(int64(len(raw)))
	var (
		work      = make(chan struct{})
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	for range deliverers {
		wg.Go(func() {
			var mine []time.Duration
			for range work {
				t := time.Now()
				if _, err := s.Deliver(context.Background(), Incoming{Raw: raw, Envelope: env}); err != nil {
					b.Error(err)
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		work <- struct{}{} // taken once a deliverer is free
		n++
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	if len(latencies) > 0 {
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)*99/100])/float64(time.Millisecond), "p99-ms")
	}
}
