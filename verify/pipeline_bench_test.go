package verify_test

// Benchmarks of the whole pipeline (Verify), with a store that writes
// nothing and with the real certificate store, with and without the
// human-readable log, and of the outputs that follow a verdict (the
// certificate store, the report line). The stages one by one are in
// stages_bench_test.go.
//
//	go test -run '^$' -bench . -benchmem ./verify/
//
// The store benchmarks write to b.TempDir(): set TMPDIR to put it on the
// file system you want to measure.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// benchMessageCount is how many distinct messages (distinct addresses and
// signer certificates, one intermediate) the benchmarks cycle through.
const benchMessageCount = 64

var (
	benchOnce sync.Once
	benchMsgs [][]byte
	benchErr  error
)

// benchCorpus returns the fixture and benchMessageCount valid messages from
// testcorpus.BenchAddress(0...), generated once per test binary.
func benchCorpus(b *testing.B) (*testcorpus.Fixture, [][]byte) {
	b.Helper()
	f := testFixture(b)
	benchOnce.Do(func() {
		addrs := make([]string, benchMessageCount)
		for i := range addrs {
			addrs[i] = testcorpus.BenchAddress(i)
		}
		benchMsgs, benchErr = f.SignedMessages(addrs)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return f, benchMsgs
}

// nopStore accepts every certificate and writes nothing.
type nopStore struct{}

func (nopStore) StoreSet(_ context.Context, addr string, _ verify.CertSet) (verify.StoreResult, error) {
	return verify.StoreResult{Action: verify.ActionStored, Path: addr + ".crt", Bytes: 1334}, nil
}

// rotatingStore is an output.CertStore that moves to a fresh folder when an
// address comes again, so that every Store writes a new file
// (ActionStored), as in a scan of new addresses.
type rotatingStore struct {
	b     *testing.B
	opts  output.CertStoreOptions
	mu    sync.Mutex
	store *output.CertStore
	seen  map[string]bool // the addresses of the current folder
	dirs  int
}

func (s *rotatingStore) StoreSet(ctx context.Context, addr string, set verify.CertSet) (verify.StoreResult, error) {
	s.mu.Lock()
	if s.store == nil || s.seen[addr] {
		s.dirs++
		st, err := output.OpenCertStoreOptions(fmt.Sprintf("%s/%d", s.b.TempDir(), s.dirs), s.opts)
		if err != nil {
			s.mu.Unlock()
			return verify.StoreResult{}, err
		}
		s.store, s.seen = st, map[string]bool{}
	}
	s.seen[addr] = true
	st := s.store
	s.mu.Unlock()
	return st.StoreSet(ctx, addr, set)
}

func benchPipeline(b *testing.B, f *testcorpus.Fixture, store verify.CertStore, logTo io.Writer) *verify.Pipeline {
	b.Helper()
	opts := verify.Options{
		Roots:     f.TrustPool(),
		LookupTXT: lookupFromKeys(b, f),
		Now:       func() time.Time { return testcorpus.At },
		Store:     store,
	}
	if logTo != nil {
		opts.Logger = slog.New(output.NewLogHandler(logTo, slog.LevelInfo))
		opts.BlockPrefix = true
	}
	p, err := verify.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// lookupFromKeys answers DKIM lookups from the fixture's keys file, as scan
// --dkim-keys does.
func lookupFromKeys(b *testing.B, f *testcorpus.Fixture) verify.LookupTXTFunc {
	keys, err := verify.ParseDKIMKeys(bytes.NewReader(f.KeysFile()))
	if err != nil {
		b.Fatal(err)
	}
	return keys.LookupTXT
}

// BenchmarkPipeline is Verify on one accepted message at a time:
//
//   - nostore: a store that writes nothing, no log;
//   - nostore+log: the same with the human-readable log, written to
//     io.Discard (the cost of building and formatting it);
//   - certstore: the real output.CertStore (every message stores a new
//     file, synced), no log;
//   - certstore+log: what scan does per message, less reading the file and
//     the report line.
//
// The parallel variants run Verify on every core (-cpu sets how many); the
// certstore-group one with 32 goroutines per core and a group-commit store,
// as scan does.
//
// Each message comes from a sender seen for the first time: what the
// pipeline keeps of a sender (its certificate and chain) is dropped after
// every round of the messages (ForgetSenders). The known/ variants keep
// it, as for a sender already known: every message after the first round
// finds its sender's certificate and chain kept.
func BenchmarkPipeline(b *testing.B) {
	f, msgs := benchCorpus(b)
	certStore := func(b *testing.B) verify.CertStore { return &rotatingStore{b: b} }
	nostore := func(*testing.B) verify.CertStore { return nopStore{} }
	for _, tc := range []struct {
		name     string
		store    func(b *testing.B) verify.CertStore
		log      bool
		parallel int  // goroutines per core; 0: not parallel
		known    bool // senders already known
	}{
		{"nostore", nostore, false, 0, false},
		{"nostore+log", nostore, true, 0, false},
		{"certstore", certStore, false, 0, false},
		{"certstore+log", certStore, true, 0, false},
		{"nostore+log/parallel", nostore, true, 1, false},
		{"certstore+log/parallel", certStore, true, 1, false},
		{"certstore-group+log/parallel", func(b *testing.B) verify.CertStore {
			return &rotatingStore{b: b, opts: output.CertStoreOptions{GroupCommit: true}}
		}, true, 32, false},
		{"known/nostore", nostore, false, 0, true},
		{"known/nostore+log", nostore, true, 0, true},
		{"known/nostore+log/parallel", nostore, true, 1, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var logTo io.Writer
			if tc.log {
				logTo = io.Discard
			}
			p := benchPipeline(b, f, tc.store(b), logTo)
			ctx := context.Background()
			b.ReportAllocs()
			defer verify.MeasureCPU(b)()
			if tc.parallel > 0 {
				b.SetParallelism(tc.parallel)
				var next atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						if !tc.known && i%int64(len(msgs)) == 0 {
							verify.ForgetSenders(p)
						}
						res := p.Verify(ctx, &verify.Message{Raw: msgs[i%int64(len(msgs))], Path: "bench.eml", Envelope: verify.Envelope{Source: "scan"}})
						if !res.Accepted() {
							b.Fatal(res.Reason, res.Detail)
						}
					}
				})
				return
			}
			i := 0
			for b.Loop() {
				if !tc.known && i%len(msgs) == 0 {
					verify.ForgetSenders(p)
				}
				res := p.Verify(ctx, &verify.Message{Raw: msgs[i%len(msgs)], Path: "bench.eml", Envelope: verify.Envelope{Source: "scan"}})
				i++
				if !res.Accepted() {
					b.Fatal(res.Reason, res.Detail)
				}
			}
		})
	}
}

// BenchmarkReferencePath is BenchmarkPipeline/nostore on the default path
// and on the reference path (Options.Reference): the price of an audit.
func BenchmarkReferencePath(b *testing.B) {
	f, msgs := benchCorpus(b)
	for _, reference := range []bool{false, true} {
		name := "default"
		if reference {
			name = "reference"
		}
		b.Run(name, func(b *testing.B) {
			p, err := verify.New(verify.Options{
				Roots:     f.TrustPool(),
				LookupTXT: lookupFromKeys(b, f),
				Now:       func() time.Time { return testcorpus.At },
				Store:     nopStore{},
				Reference: reference,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			defer verify.MeasureCPU(b)()
			i := 0
			for b.Loop() {
				if i%len(msgs) == 0 {
					verify.ForgetSenders(p) // senders seen for the first time
				}
				res := p.Verify(ctx, &verify.Message{Raw: msgs[i%len(msgs)], Path: "bench.eml", Envelope: verify.Envelope{Source: "scan"}})
				i++
				if !res.Accepted() {
					b.Fatal(res.Reason, res.Detail)
				}
			}
		})
	}
}

// BenchmarkStore is output.CertStore.Store of a new certificate (stage 8):
// a new file, written and synced; one at a time, then 64 at once with group
// commit.
func BenchmarkStore(b *testing.B) {
	f, msgs := benchCorpus(b)
	certs := make([]*x509.Certificate, len(msgs))
	addrs := make([]string, len(msgs))
	p := benchPipeline(b, f, nil, nil)
	for i, m := range msgs {
		res := p.Verify(context.Background(), &verify.Message{Raw: m})
		if !res.Accepted() {
			b.Fatal(res.Reason, res.Detail)
		}
		certs[i], addrs[i] = res.Cert, res.From
	}
	ctx := context.Background()
	b.Run("sync-each", func(b *testing.B) {
		store := &rotatingStore{b: b}
		b.ReportAllocs()
		defer verify.MeasureCPU(b)()
		i := 0
		for b.Loop() {
			res, err := store.StoreSet(ctx, addrs[i%len(addrs)], verify.CertSet{Encryption: certs[i%len(certs)]})
			i++
			if err != nil || res.Action != verify.ActionStored {
				b.Fatal(res.Action, err)
			}
		}
	})
	b.Run("group/parallel", func(b *testing.B) {
		store := &rotatingStore{b: b, opts: output.CertStoreOptions{GroupCommit: true}}
		b.ReportAllocs()
		b.SetParallelism(32)
		defer verify.MeasureCPU(b)()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				res, err := store.StoreSet(ctx, addrs[i%len(addrs)], verify.CertSet{Encryption: certs[i%len(certs)]})
				if err != nil || res.Action != verify.ActionStored {
					b.Error(res.Action, err)
					return
				}
			}
		})
	})
}

// BenchmarkReportLine is building and encoding the JSON report line of an
// accepted message.
func BenchmarkReportLine(b *testing.B) {
	f, msgs := benchCorpus(b)
	p := benchPipeline(b, f, nopStore{}, nil)
	m := &verify.Message{Raw: msgs[0], Path: "/var/mail/archive/bench-000000.eml", Envelope: verify.Envelope{Source: "scan"}}
	res := p.Verify(context.Background(), m)
	b.ReportAllocs()
	defer verify.MeasureCPU(b)()
	for b.Loop() {
		if _, err := json.Marshal(output.NewRecord(m, res)); err != nil {
			b.Fatal(err)
		}
	}
}
