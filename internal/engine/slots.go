package engine

import (
	"context"
	"sync"

	"github.com/certharvest/certharvest/verify"
)

// SlotWaiters is how many messages beyond --workers may be in progress
// while they wait for the disk (their certificate to become durable) or for
// DNS (a DKIM key), without a CPU slot: enough for the certificates stored
// at about the same time to share a group commit.
const SlotWaiters = 64

// cpuSlots bounds how many messages are verified at once, the CPU-bound
// work, without counting the ones that wait. A message takes a slot
// (acquire) for its verification; while it waits for the disk or the
// network (slotStore, slotLookup) it gives the slot to another message and
// takes one again afterwards. So the waits overlap the work, and the
// messages waiting to store a certificate wait together and share one
// group commit.
type cpuSlots struct {
	held chan struct{} // one value per slot taken
}

// newCPUSlots returns n slots.
func newCPUSlots(n int) *cpuSlots {
	return &cpuSlots{held: make(chan struct{}, n)}
}

// acquire waits for a slot and returns a context that carries it, for
// slotStore and slotLookup, and the function that gives it back. The wait
// ignores ctx: slots are held only while messages are verified, which ends.
func (s *cpuSlots) acquire(ctx context.Context) (context.Context, func()) {
	s.take()
	h := &slotHold{slots: s}
	return context.WithValue(ctx, slotHoldKey{}, h), h.done
}

func (s *cpuSlots) take() { s.held <- struct{}{} }
func (s *cpuSlots) give() { <-s.held }

// slotHoldKey is the context key of the *slotHold of a message.
type slotHoldKey struct{}

// slotHold is one message's slot. The message may wait for several things
// at once (two DKIM lookups, say): the slot is given back when the first
// wait starts and taken again when the last ends.
type slotHold struct {
	slots *cpuSlots
	mu    sync.Mutex
	waits int  // waits in progress
	ended bool // done was called
}

// wait gives the slot back for a wait, and returns the function that takes
// it again once the wait is over.
func (h *slotHold) wait() (resume func()) {
	h.mu.Lock()
	if h.waits == 0 && !h.ended {
		h.slots.give()
	}
	h.waits++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.waits--
		if h.waits == 0 && !h.ended {
			h.slots.take()
		}
	}
}

// done gives the slot back for good; later calls do nothing.
func (h *slotHold) done() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ended && h.waits == 0 {
		h.slots.give()
	}
	h.ended = true
}

// waitWithoutSlot gives back the slot ctx carries, if any, for a wait, and
// returns the function to call when the wait is over.
func waitWithoutSlot(ctx context.Context) (resume func()) {
	h, ok := ctx.Value(slotHoldKey{}).(*slotHold)
	if !ok {
		return func() {}
	}
	return h.wait()
}

// WithSlotWaits returns opts whose store, and DKIM lookup when dns is true,
// give their caller's CPU slot back while they wait. A lookup that answers
// from memory (--dkim-keys) is better left alone: it does not wait.
func WithSlotWaits(opts verify.Options, dns bool) verify.Options {
	if opts.Store != nil {
		opts.Store = slotStore{store: opts.Store}
	}
	if dns && opts.LookupTXT != nil {
		opts.LookupTXT = slotLookup(opts.LookupTXT)
	}
	return opts
}

// slotStore is a certificate store whose Store gives its caller's CPU slot
// back while it runs: it mostly waits for the disk (a group commit).
type slotStore struct {
	store verify.CertStore
}

func (s slotStore) StoreSet(ctx context.Context, addr string, set verify.CertSet) (verify.StoreResult, error) {
	defer waitWithoutSlot(ctx)()
	return s.store.StoreSet(ctx, addr, set)
}

// slotLookup returns a DKIM key lookup that gives its caller's CPU slot back
// while lookup runs (a DNS query).
func slotLookup(lookup verify.LookupTXTFunc) verify.LookupTXTFunc {
	return func(ctx context.Context, name string) ([]string, error) {
		defer waitWithoutSlot(ctx)()
		return lookup(ctx, name)
	}
}
