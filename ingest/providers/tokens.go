package providers

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenMemory remembers the signed tokens of the requests taken, each until
// its signature's timestamp leaves the window in which it is accepted, so
// that a request is taken once: a replay of a captured request, within the
// window, finds its token. It holds at most max tokens (a 16-byte hash and
// a time each, about 60 bytes with the map's overhead); when that many
// are still in their window, new requests wait. It is safe for concurrent
// use.
type tokenMemory struct {
	max int

	mu    sync.Mutex
	seen  map[tokenKey]int64 // token → end of its window (Unix nanoseconds)
	order []tokenEntry       // in the order claimed, to forget the expired
}

type tokenKey [16]byte

type tokenEntry struct {
	key tokenKey
	end int64
}

// claimResult is what claim found.
type claimResult int

const (
	claimed    claimResult = iota // new: now remembered
	replayed                      // seen before, still in its window
	memoryFull                    // too many tokens in their window
)

func newTokenMemory(max int) *tokenMemory {
	return &tokenMemory{max: max, seen: make(map[tokenKey]int64)}
}

func keyOf(token string) tokenKey {
	sum := sha256.Sum256([]byte(token))
	return tokenKey(sum[:16])
}

// claim remembers token until end, unless it is remembered already (a
// replay) or the memory is full of tokens whose window has not ended by
// now.
func (m *tokenMemory) claim(token string, end, now time.Time) claimResult {
	k := keyOf(token)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now.UnixNano())
	if _, ok := m.seen[k]; ok {
		return replayed
	}
	if len(m.seen) >= m.max {
		return memoryFull
	}
	m.seen[k] = end.UnixNano()
	m.order = append(m.order, tokenEntry{k, end.UnixNano()})
	return claimed
}

// forget lets token go: its request was not taken, and its retry must be.
func (m *tokenMemory) forget(token string) {
	k := keyOf(token)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, k)
	if len(m.order) > 2*m.max {
		m.compact()
	}
}

// expire forgets the tokens at the front of the order whose window ended.
// Windows end about in the order claimed (a timestamp plus a constant);
// a token whose window ends before an earlier one's waits for it, which
// only keeps it longer.
func (m *tokenMemory) expire(now int64) {
	i := 0
	for ; i < len(m.order) && m.order[i].end <= now; i++ {
		e := m.order[i]
		if end, ok := m.seen[e.key]; ok && end == e.end {
			delete(m.seen, e.key)
		}
	}
	if i > 0 {
		m.order = append(m.order[:0], m.order[i:]...)
	}
}

// compact drops the entries of forgotten tokens from the order.
func (m *tokenMemory) compact() {
	kept := m.order[:0]
	for _, e := range m.order {
		if end, ok := m.seen[e.key]; ok && end == e.end {
			kept = append(kept, e)
		}
	}
	m.order = kept
}

// len returns the tokens remembered.
func (m *tokenMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
