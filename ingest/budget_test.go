package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMemoryBudget(t *testing.T) {
	b := NewMemoryBudget(100)
	if !b.TryReserve(60) || b.TryReserve(41) || !b.TryReserve(40) {
		t.Fatal("TryReserve does not fill the budget exactly")
	}
	if err := b.Reserve(context.Background(), 101); !errors.Is(err, ErrBudgetTooSmall) {
		t.Fatalf("Reserve beyond the budget: %v", err)
	}

	// A waiter is served first: TryReserve fails while it waits, even for
	// bytes that would fit beside it.
	got := make(chan error, 1)
	go func() { got <- b.Reserve(context.Background(), 50) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	b.Release(60)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if b.TryReserve(1) != true || b.Used() != 91 {
		t.Fatalf("used %d, want 91", b.Used())
	}

	// A waiter that gives up leaves the queue, and lets the next go.
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- b.Reserve(ctx, 90) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	second := make(chan error, 1)
	go func() { second <- b.Reserve(context.Background(), 5) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 2 })
	if b.TryReserve(1) {
		t.Error("TryReserve passed waiters")
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Reserve: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	b.Release(96)
	if b.Used() != 0 {
		t.Fatalf("used %d after releasing everything", b.Used())
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}
