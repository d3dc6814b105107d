package engine

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// Many claims of random sizes at once: the bytes held never exceed the
// budget, and every one gets through.
func TestBudgetClaimsBoundBytesHeld(t *testing.T) {
	const limit = 1000
	b := ingest.NewMemoryBudget(limit)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			c := budgetClaim{budget: b}
			c.take(int64(rand.IntN(400)) + int64(i%2))
			now := held.Add(c.n)
			for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			held.Add(-c.n)
			c.release()
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p == 0 {
		t.Errorf("peak %d bytes held, budget %d", p, limit)
	}
	if u := b.Used(); u != 0 {
		t.Errorf("after all released: %d held", u)
	}
}

// A message larger than the whole budget goes when nothing else is held,
// and alone; one waiting is not passed by later, smaller ones.
func TestBudgetClaimLargeMessage(t *testing.T) {
	b := ingest.NewMemoryBudget(100)
	small := budgetClaim{budget: b}
	small.take(10)
	large, later := budgetClaim{budget: b}, budgetClaim{budget: b}
	largeDone, laterDone := make(chan struct{}), make(chan struct{})
	go func() { large.take(1 << 30); close(largeDone) }()
	// Until the large one waits: TryReserve fails while anyone waits.
	for b.TryReserve(1) {
		b.Release(1)
		time.Sleep(time.Millisecond)
	}
	go func() { later.take(10); close(laterDone) }() // fits, but comes after
	select {
	case <-largeDone:
		t.Fatal("the large message went while another was held")
	case <-laterDone:
		t.Fatal("a later message passed the large one waiting")
	case <-time.After(50 * time.Millisecond):
	}
	small.release()
	<-largeDone
	if large.n != 100 {
		t.Errorf("the large message took %d bytes, want the whole budget, 100", large.n)
	}
	select {
	case <-laterDone:
		t.Fatal("a message went while the large one held the whole budget")
	case <-time.After(50 * time.Millisecond):
	}
	large.release()
	<-laterDone
	later.release()
	if u := b.Used(); u != 0 {
		t.Errorf("%d bytes held after all released", u)
	}
}

func TestInFlightBudget(t *testing.T) {
	for _, tt := range []struct{ maxSize, want int64 }{
		{1 << 20, 8 << 20},
		{verify.DefaultMaxSize, 8 * verify.DefaultMaxSize},
		{1 << 30, maxBytesInFlight},
		{0, maxBytesInFlight},
	} {
		if got := inFlightBudget(tt.maxSize).Size(); got != tt.want {
			t.Errorf("inFlightBudget(%d) = %d, want %d", tt.maxSize, got, tt.want)
		}
	}
}

// serve holds the bytes of at most eight messages at --max-size at once:
// with every message waiting for its certificate's store (which gives the
// CPU slot back), the others wait for the budget before they are read.
func TestEngineBoundsBytesInFlight(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	data := f.Cases()[0].Data
	store := &blockingStore{entered: make(chan struct{}, 64), release: make(chan struct{})}
	sf := serveOptions(1, 64, time.Hour, time.Minute)
	lookup := func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) }
	s, spool := newTestServerStore(t, f, lookup, store, sf)
	s.opts.MaxSize = int64(len(data)) // a budget of eight of these messages
	const n = 20
	var names []string
	for range n {
		got, err := spool.Deliver(context.Background(), ingest.Incoming{Raw: data, Envelope: verify.Envelope{Source: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, got...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.watcher.Run(ctx)
	done := make(chan struct{})
	go func() { s.process(context.Background()); close(done) }()

	deadline := time.After(20 * time.Second)
	for len(store.entered) < 8 {
		select {
		case <-deadline:
			t.Fatalf("%d messages in the store, want 8", len(store.entered))
		case <-time.After(5 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond) // time for a ninth to get there
	budget := inFlightBudget(s.opts.MaxSize).Size()
	if in := len(store.entered); int64(in*len(data)) > budget {
		t.Fatalf("%d messages of %d bytes held at once, more than the budget of %d bytes", in, len(data), budget)
	}
	close(store.release)
	waitArchived(t, spool, names, 30*time.Second)
	cancel()
	<-done
	s.report.Close()
	if recs := readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl")); len(recs) != n {
		t.Errorf("%d report lines, want %d", len(recs), n)
	}
	if _, err := os.Stat(filepath.Join(spool.Dir(), "new", names[0])); err == nil {
		t.Error("a message is still in new/")
	}
}
