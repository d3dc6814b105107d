package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// blockingStore is a certificate store whose Store waits until release is
// closed, telling entered first.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) StoreSet(context.Context, string, verify.CertSet) (verify.StoreResult, error) {
	s.entered <- struct{}{}
	<-s.release
	return verify.StoreResult{Action: verify.ActionStored}, nil
}

// returnsWithin reports whether done is closed within d.
func returnsWithin(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// At most n messages hold a slot; a release lets the next one in, and a
// second release does nothing.
func TestCPUSlotsBound(t *testing.T) {
	slots := newCPUSlots(2)
	_, release1 := slots.acquire(context.Background())
	_, release2 := slots.acquire(context.Background())
	third := make(chan func(), 1)
	go func() {
		_, release := slots.acquire(context.Background())
		third <- release
	}()
	select {
	case <-third:
		t.Fatal("a third message got one of two slots")
	case <-time.After(50 * time.Millisecond):
	}
	release1()
	var release3 func()
	select {
	case release3 = <-third:
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot was not given to the waiting message")
	}
	release1() // again: nothing
	if n := len(slots.held); n != 2 {
		t.Errorf("%d slots held, want 2", n)
	}
	release2()
	release3()
	if n := len(slots.held); n != 0 {
		t.Errorf("%d slots still held", n)
	}
}

// A Store gives its caller's slot back while it waits, and takes one again
// before returning, waiting if need be.
func TestSlotStoreReleasesAndReacquires(t *testing.T) {
	slots := newCPUSlots(1)
	inner := &blockingStore{entered: make(chan struct{}), release: make(chan struct{})}
	store := slotStore{store: inner}
	ctx, release := slots.acquire(context.Background())
	stored := make(chan struct{})
	go func() {
		store.StoreSet(ctx, "a@example.com", verify.CertSet{})
		close(stored)
	}()
	<-inner.entered
	// The only slot is free while the store waits: another message takes it.
	other := make(chan func())
	go func() {
		_, r := slots.acquire(context.Background())
		other <- r
	}()
	var releaseOther func()
	select {
	case releaseOther = <-other:
	case <-time.After(5 * time.Second):
		t.Fatal("the slot was not given back during Store")
	}
	// The store is done, but Store returns only once it has a slot again.
	close(inner.release)
	if returnsWithin(stored, 50*time.Millisecond) {
		t.Fatal("Store returned without a slot")
	}
	releaseOther()
	if !returnsWithin(stored, 5*time.Second) {
		t.Fatal("Store did not take the freed slot")
	}
	if n := len(slots.held); n != 1 {
		t.Errorf("%d slots held after Store, want 1 (the caller's)", n)
	}
	release()
	if n := len(slots.held); n != 0 {
		t.Errorf("%d slots held after release", n)
	}
}

// A DKIM lookup gives the slot back the same way; two lookups of one
// message at once give it back once and take it again once.
func TestSlotLookupReleasesAndReacquires(t *testing.T) {
	slots := newCPUSlots(1)
	entered, proceed := make(chan struct{}), make(chan struct{})
	lookup := slotLookup(func(context.Context, string) ([]string, error) {
		entered <- struct{}{}
		<-proceed
		return []string{"v=DKIM1; p="}, nil
	})
	ctx, release := slots.acquire(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if txt, err := lookup(ctx, "sel._domainkey.example.com"); err != nil || len(txt) != 1 {
				t.Errorf("lookup = %v, %v", txt, err)
			}
		}()
	}
	<-entered
	<-entered
	if n := len(slots.held); n != 0 {
		t.Fatalf("%d slots held during the lookups, want 0", n)
	}
	close(proceed)
	wg.Wait()
	if n := len(slots.held); n != 1 {
		t.Fatalf("%d slots held after the lookups, want 1", n)
	}
	release()
	if n := len(slots.held); n != 0 {
		t.Errorf("%d slots held after release", n)
	}
}

// A caller without a slot (not a worker) goes straight through, and leaves
// the slots of others alone.
func TestSlotStoreWithoutSlot(t *testing.T) {
	slots := newCPUSlots(1)
	_, release := slots.acquire(context.Background())
	defer release()
	inner := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	close(inner.release)
	done := make(chan struct{})
	go func() {
		slotStore{store: inner}.StoreSet(context.Background(), "a@example.com", verify.CertSet{})
		close(done)
	}()
	if !returnsWithin(done, 5*time.Second) {
		t.Fatal("Store without a slot blocked")
	}
	if n := len(slots.held); n != 1 {
		t.Errorf("%d slots held, want 1", n)
	}
}
