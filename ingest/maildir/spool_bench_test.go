package maildir

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
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
//	go test -run '^$' -bench SpoolDeliver -benchtime 3s -cpu 2 ./ingest/maildir/
func BenchmarkSpoolDeliver(b *testing.B) {
	const deliverers = 32
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	raw := append([]byte("From: a@example.com\r\nTo: in@example.org\r\nSubject: bench\r\n\r\n"),
		bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"), 136)...)
	env := verify.Envelope{Source: "webhook", EnvelopeFrom: "a@example.com", EnvelopeTo: []string{"in@example.org"},
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
				if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: raw, Envelope: env}); err != nil {
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

// benchSpool returns a spool holding n messages of about 4.7 KB in new/,
// as an MTA (mta) or the spool's own inputs (Deliver, with their context)
// put them there, and their names.
func benchSpool(b *testing.B, n int, mta bool) (*Spool, []string) {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	raw := append([]byte("From: a@example.com\r\nTo: in@example.org\r\nSubject: bench\r\n\r\n"),
		bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"), 64)...)
	names := make([]string, n)
	for i := range names {
		if mta {
			names[i] = fmt.Sprintf("%d.M%dP1Q%d.bench", 1780308000+i%600, i, i)
			tmp := filepath.Join(s.Dir(), SubTmp, names[i])
			if err := os.WriteFile(tmp, raw, 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(s.Dir(), SubNew, names[i])); err != nil {
				b.Fatal(err)
			}
			continue
		}
		env := verify.Envelope{Source: "smtp", EnvelopeFrom: "a@example.com", EnvelopeTo: []string{"in@example.org"},
			RemoteAddr: "192.0.2.1:4567", Received: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
		got, err := s.Deliver(context.Background(), ingest.Incoming{Raw: raw, Envelope: env})
		if err != nil {
			b.Fatal(err)
		}
		names[i] = got[0]
	}
	return s, names
}

// BenchmarkSpoolLoad measures LoadFile of a message in new/ (serve's
// per-message read), delivered by an MTA (no context) or by the spool's inputs
// (the context in an extended attribute). The files are in the page cache.
//
//	go test -run '^$' -bench SpoolLoad -benchmem -count 5 ./ingest/maildir/
func BenchmarkSpoolLoad(b *testing.B) {
	for _, mta := range []bool{true, false} {
		b.Run(map[bool]string{true: "mta", false: "context"}[mta], func(b *testing.B) {
			s, names := benchSpool(b, 1000, mta)
			i := 0
			for b.Loop() {
				if _, _, err := s.LoadFile(names[i%len(names)], ingest.ReadOptions{MaxSize: 1 << 20}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSpoolArchive measures Archive (new/ to cur/, serve's per-message
// move) of messages an MTA delivered. The messages are moved back to new/
// between rounds, untimed.
//
//	go test -run '^$' -bench SpoolArchive -benchmem -count 5 ./ingest/maildir/
func BenchmarkSpoolArchive(b *testing.B) {
	s, names := benchSpool(b, 1000, true)
	i := 0
	for b.Loop() {
		if i == len(names) {
			b.StopTimer()
			for _, name := range names {
				if err := os.Rename(filepath.Join(s.Dir(), SubCur, name+":2,S"), filepath.Join(s.Dir(), SubNew, name)); err != nil {
					b.Fatal(err)
				}
			}
			i = 0
			b.StartTimer()
		}
		if err := s.Archive(names[i], true); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
