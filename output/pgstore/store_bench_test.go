package pgstore

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// benchCerts makes n certificates for n addresses.
func benchCerts(b *testing.B, n int) ([]string, []*x509.Certificate) {
	addrs := make([]string, n)
	certs := make([]*x509.Certificate, n)
	for i := range n {
		addrs[i] = fmt.Sprintf("bench%d@example.com", i)
		certs[i] = leaf(b, addrs[i], t0)
	}
	return addrs, certs
}

// benchStore stores a new certificate for a new address per operation,
// from 8 goroutines: the cost of a first message from each sender, where
// group commit matters.
func benchStore(b *testing.B, store verify.CertStore) {
	addrs, certs := benchCerts(b, b.N)
	var next atomic.Int64
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := store.StoreSet(context.Background(), addrs[i], verify.CertSet{Encryption: certs[i]}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// PostgreSQL with fsync on (its default), on this machine.
func BenchmarkStorePostgreSQL(b *testing.B) {
	srv := pgtest.Start(b, pgtest.Options{Durable: true})
	s := open(b, srv.URL())
	if _, _, err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchStore(b, s)
	groups, requests := s.group.Stats()
	b.ReportMetric(float64(requests)/float64(max(groups, 1)), "stores/commit")
}

// The folder store with group commit, as serve runs it, for comparison.
func BenchmarkStoreFolder(b *testing.B) {
	store, err := output.OpenCertStoreOptions(b.TempDir(), output.CertStoreOptions{GroupCommit: true})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	benchStore(b, store)
}
