package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultInputMemory is the default MemoryBudget of the live inputs: the
// bytes of messages being received (SMTP DATA, webhook bodies) that all
// connections together may hold in memory. It fits the decoding of one
// webhook request of the default largest size (twice
// DefaultWebhookMaxRequestBytes: the body and the messages decoded from it)
// with room to spare, and thousands of messages of usual size (tens of KB).
// Beyond it, messages are written to the spool's tmp/ as they arrive.
//
// Without a budget, 100 connections each sending 24 MiB of an unfinished
// DATA held 2.4 GB: memory grew with what the clients chose to send.
const DefaultInputMemory = 128 << 20

// ErrBudgetTooSmall is Reserve's error for more bytes than the whole budget:
// they would never fit.
var ErrBudgetTooSmall = errors.New("more than the whole memory budget")

// MemoryBudget is a count of bytes the live inputs hold in memory for the
// messages they are receiving, shared by every connection of every input.
// An input reserves bytes before it holds them (TryReserve: at once or not
// at all, the caller writing to a file instead; Reserve: waiting its turn)
// and releases them when done. Waiters are served in order, and while one
// waits TryReserve fails: a large reservation (a webhook request to decode)
// is not passed over forever by small ones, which spill to files meanwhile.
//
// The budget counts bytes held, not the garbage that growing a buffer
// leaves to the collector: the process's memory may exceed it by the
// collector's slack (GOGC, GOMEMLIMIT).
type MemoryBudget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters []*memoryWaiter // in arrival order

	// bufs lends the small buffers messages start in (*[]byte of
	// capacity pooledBufferCap), so that the usual message of a few KB
	// allocates nothing.
	bufs sync.Pool
}

type memoryWaiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are taken for the waiter
}

// NewMemoryBudget returns a budget of size bytes (DefaultInputMemory when
// size ≤ 0).
func NewMemoryBudget(size int64) *MemoryBudget {
	if size <= 0 {
		size = DefaultInputMemory
	}
	return &MemoryBudget{size: size}
}

// Size returns the budget's bytes.
func (b *MemoryBudget) Size() int64 { return b.size }

// Used returns the bytes reserved now.
func (b *MemoryBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// TryReserve takes n bytes if they fit now and nobody waits for room, and
// reports whether it did.
func (b *MemoryBudget) TryReserve(n int64) bool {
	if n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used+n > b.size {
		return false
	}
	b.used += n
	return true
}

// Reserve takes n bytes, waiting its turn until they fit or ctx is done.
// More than the whole budget fails at once with ErrBudgetTooSmall.
func (b *MemoryBudget) Reserve(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if n > b.size {
		return fmt.Errorf("reserving %d bytes of a budget of %d: %w", n, b.size, ErrBudgetTooSmall)
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &memoryWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		// Granted while giving up: give the bytes back.
		b.releaseLocked(n)
	default:
		for i, o := range b.waiters {
			if o == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		// The first waiter gone, the next ones may fit now.
		b.wakeLocked()
	}
	return ctx.Err()
}

// Release gives back n bytes taken by TryReserve or Reserve.
func (b *MemoryBudget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(n)
}

func (b *MemoryBudget) releaseLocked(n int64) {
	b.used -= n
	if b.used < 0 {
		panic("ingest: memory budget released more than reserved")
	}
	b.wakeLocked()
}

// wakeLocked lets the waiters that now fit go, in order.
func (b *MemoryBudget) wakeLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.size {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil // let a long queue's array go
	}
}

// pooledBufferCap is the capacity of the buffers a MemoryBudget lends: a
// usual message (a signed mail of a few KB, a webhook request of one)
// fits, and idle ones cost little while the pool holds them.
const pooledBufferCap = 64 << 10

// getBuffer returns a buffer of capacity pooledBufferCap. Its bytes are
// not reserved: the caller reserves them.
func (b *MemoryBudget) getBuffer() *[]byte {
	if p, ok := b.bufs.Get().(*[]byte); ok {
		return p
	}
	buf := make([]byte, 0, pooledBufferCap)
	return &buf
}

// putBuffer gives back a buffer getBuffer returned, for reuse.
func (b *MemoryBudget) putBuffer(p *[]byte) {
	*p = (*p)[:0]
	b.bufs.Put(p)
}
