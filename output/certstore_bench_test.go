package output

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/cputime"
	"github.com/certharvest/certharvest/verify"
)

// BenchmarkCertStoreNew stores certificates for addresses seen for the
// first time, from 32 goroutines, with group commit, as scan and serve do:
// the cost of creating a certificate's file, durably: the CPU time per
// store (cpu-µs/op), the wall time being mostly syncs. The certificate is
// the same for every address (the store does not look inside it).
//
//	BENCH_DIR=/var/tmp/certharvest-bench go test -run '^$' -bench CertStoreNew -benchtime 5000x -cpu 2 ./output/
func BenchmarkCertStoreNew(b *testing.B) {
	cert := selfSigned(b, "bench@example.com", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := OpenCertStoreOptions(benchDir(b), CertStoreOptions{GroupCommit: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			addr := fmt.Sprintf("user%d@example.com", next.Add(1))
			if _, err := s.Store(context.Background(), addr, cert); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// benchDir returns a new folder for a benchmark's files: in $BENCH_DIR, and
// kept, when set (on ext4 without a journal, creating files next to
// thousands deleted in the last minutes is several times slower, and a
// benchmark that deletes its files would measure that in the next run);
// otherwise a temporary folder that the test removes.
func benchDir(b *testing.B) string {
	root := os.Getenv("BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, "certstore-")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("files kept in %s", dir)
	return dir
}

// BenchmarkCertStoreUnchanged stores, again and again, the certificate an
// address already has: what reprocessing an archive or a sender writing
// twice costs.
func BenchmarkCertStoreUnchanged(b *testing.B) {
	cert := selfSigned(b, "bench@example.com", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := OpenCertStoreOptions(b.TempDir(), CertStoreOptions{GroupCommit: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Store(ctx, "bench@example.com", cert); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Store(ctx, "bench@example.com", cert)
		if err != nil || res.Action != verify.ActionUnchanged {
			b.Fatal(res.Action, err)
		}
	}
}
