package engine

import (
	"context"

	"github.com/certharvest/certharvest/ingest"
)

// maxBytesInFlight is the most bytes of messages the engine holds in
// memory at once, whatever --max-size and --workers; see inFlightBudget.
const maxBytesInFlight = 256 << 20

// inFlightBudget returns the budget of message bytes held in memory at
// once: eight messages at --max-size, at most maxBytesInFlight.
//
// Without it, every reader (--workers, and up to SlotWaiters more) held a
// message read before its turn: (--workers + 64) x --max-size, 1.6 GiB of
// messages at the default 25 MiB (3.4 GB of RSS seen for 20 MB messages).
// Eight messages at the limit are some in verification and some read ahead,
// and at most 256 MiB, so the bound holds whatever --max-size and --workers
// say, while a message of usual size, tens of KB, never waits for the
// budget: thousands fit. A message larger than the budget is verified
// alone. (The bound is on the messages' bytes; verifying one allocates
// a few times its size in passing.)
func inFlightBudget(maxSize int64) *ingest.MemoryBudget {
	return ingest.NewMemoryBudget(InFlightBytes(maxSize))
}

// InFlightBytes is the most bytes of messages held in memory at once for
// messages of at most maxSize bytes (see inFlightBudget).
func InFlightBytes(maxSize int64) int64 {
	if maxSize <= 0 || maxSize > maxBytesInFlight/8 {
		return maxBytesInFlight
	}
	return 8 * maxSize
}

// budgetClaim is one message's share of the budget (the same weighted
// semaphore over bytes as the live inputs', ingest.MemoryBudget): take is
// called with its size once its file is open (queue.LoadOptions.Reserve),
// release once its verdict is known. Waiters are served in order, so that
// a large message is not passed over forever by small ones.
type budgetClaim struct {
	budget *ingest.MemoryBudget
	n      int64
}

// take takes size bytes of the budget, waiting for them; more than the
// whole budget takes the whole budget, waiting until nothing else is held.
// The wait ignores contexts, as cpuSlots' does: what holds bytes is a
// message being verified, which ends. It is called once, before release.
func (c *budgetClaim) take(size int64) {
	n := min(max(size, 0), c.budget.Size())
	// Reserve fails only for more than the whole budget, or when its
	// context ends: neither can happen here.
	if err := c.budget.Reserve(context.Background(), n); err == nil {
		c.n = n
	}
}

// release gives the bytes back; a second call does nothing.
func (c *budgetClaim) release() {
	c.budget.Release(c.n)
	c.n = 0
}
