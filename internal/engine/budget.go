package engine

import "sync"

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
func inFlightBudget(maxSize int64) *byteBudget {
	return newByteBudget(InFlightBytes(maxSize))
}

// InFlightBytes is the most bytes of messages held in memory at once for
// messages of at most maxSize bytes (see inFlightBudget).
func InFlightBytes(maxSize int64) int64 {
	if maxSize <= 0 || maxSize > maxBytesInFlight/8 {
		return maxBytesInFlight
	}
	return 8 * maxSize
}

// byteBudget is a weighted semaphore over bytes: a message takes its size
// before it is read and gives it back once its verdict is known. Waiters
// are served in order, so that a large message is not passed over forever
// by small ones.
type byteBudget struct {
	limit int64

	mu      sync.Mutex
	held    int64
	waiters []budgetWaiter // in arrival order
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newByteBudget(limit int64) *byteBudget {
	return &byteBudget{limit: limit}
}

// acquire waits until n bytes fit in the budget and takes them; it
// returns what was taken, for release. More than the whole budget takes
// the whole budget: it waits until nothing else is held. The wait ignores
// contexts, as cpuSlots' does: what holds bytes is a message being
// verified, which ends.
func (b *byteBudget) acquire(n int64) int64 {
	n = min(max(n, 0), b.limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.held+n <= b.limit {
		b.held += n
		b.mu.Unlock()
		return n
	}
	w := budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	<-w.ready // release took the bytes for us
	return n
}

// release gives back n bytes that acquire took, and lets the waiters that
// now fit go, in order.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	for len(b.waiters) > 0 && b.held+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.held += w.n
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil // let a long queue's array go
	}
}

// budgetClaim is one message's share of a byteBudget: take is called with
// its size once its file is open (ingest.ReadOptions.Reserve), release once
// its verdict is known.
type budgetClaim struct {
	budget *byteBudget
	n      int64
}

// take takes size bytes of the budget, waiting for them. It is called
// once, before release.
func (c *budgetClaim) take(size int64) {
	c.n = c.budget.acquire(size)
}

// release gives the bytes back; a second call does nothing.
func (c *budgetClaim) release() {
	c.budget.release(c.n)
	c.n = 0
}
