// Package gencache is a map for caches that untrusted input fills: bounded
// in entries and in bytes, with an eviction that costs constant time per
// entry however the keys come.
//
// It keeps two generations. New entries go into the current one; when it
// holds half the entries or half the bytes allowed, it becomes the
// previous one and the previous one is dropped whole (one map let go, no
// walk over its entries). An entry found in the previous generation moves
// to the current one. So the entries in use stay, memory never exceeds the
// bounds, and a stream of endless new keys (a hostile sender minting a
// certificate per message) costs one insertion each and only pushes the
// other entries out: it can make the cache miss, never make it slow or
// large. Map iteration, whose cost after deletions is not bounded by the
// map's size, is never used.
package gencache

import (
	"hash/maphash"
	"sync"
)

// Cache maps string keys to values of type V. It is safe for concurrent
// use. A nil *Cache keeps nothing: Get misses, Put does nothing.
type Cache[V any] struct {
	// maxEntries and maxBytes bound one generation: half the limits New
	// was given.
	maxEntries, maxBytes int

	mu                 sync.RWMutex
	cur, old           map[string]entry[V]
	curBytes, oldBytes int

	// seen, when not nil, admits an entry at its key's second Put
	// (NewSeenTwice).
	seen *seenSet
}

// seenSet remembers the hashes of keys Put once, in two generations of at
// most max each.
type seenSet struct {
	seed     maphash.Seed
	max      int
	cur, old map[uint64]struct{}
}

// seenTwiceFactor is how many more keys a NewSeenTwice cache remembers
// having seen once than it keeps entries: a hash costs some 40 bytes where
// an entry costs kilobytes.
const seenTwiceFactor = 8

// admit reports whether key was Put before, and notes that it was.
func (s *seenSet) admit(key string) bool {
	h := maphash.String(s.seed, key)
	if _, ok := s.cur[h]; ok {
		return true
	}
	_, ok := s.old[h]
	if len(s.cur) >= s.max {
		s.old, s.cur = s.cur, nil
	}
	if s.cur == nil {
		s.cur = make(map[uint64]struct{})
	}
	s.cur[h] = struct{}{}
	return ok
}

type entry[V any] struct {
	value V
	size  int
}

// New returns a cache of at most maxEntries entries whose sizes (as Put is
// told them, keys included) add up to at most maxBytes.
func New[V any](maxEntries, maxBytes int) *Cache[V] {
	return &Cache[V]{maxEntries: max(maxEntries/2, 1), maxBytes: max(maxBytes/2, 1)}
}

// NewSeenTwice is New for a cache that keeps an entry only from the second
// time its key is Put: a key Put once costs a hash (a set of at most
// seenTwiceFactor × maxEntries of them, in two generations), not an entry.
// So a stream of keys that never come back (a certificate seen once: each
// of a scan's new senders, or a hostile sender's endless new ones) neither
// fills the cache nor pushes out the entries of keys that do come back.
// Hashes are seeded per cache: a collision, which only admits an entry at
// its first Put, cannot be aimed at.
func NewSeenTwice[V any](maxEntries, maxBytes int) *Cache[V] {
	c := New[V](maxEntries, maxBytes)
	c.seen = &seenSet{seed: maphash.MakeSeed(), max: max(seenTwiceFactor*maxEntries/2, 1)}
	return c
}

// Get returns the value kept for key, a key given as bytes so that a
// lookup allocates nothing.
func (c *Cache[V]) Get(key []byte) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.cur[string(key)]
	if !ok {
		if e, ok = c.old[string(key)]; ok {
			c.mu.RUnlock()
			return c.promote(string(key), e), true
		}
	}
	c.mu.RUnlock()
	return e.value, ok
}

// GetString is Get with a key given as a string.
func (c *Cache[V]) GetString(key string) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.old[key]; ok {
			c.mu.RUnlock()
			return c.promote(key, e), true
		}
	}
	c.mu.RUnlock()
	return e.value, ok
}

// promote moves e, found in the old generation, into the current one (it
// is still in use), unless another caller has just put it there (or a
// newer value), and returns the value now kept.
func (c *Cache[V]) promote(key string, e entry[V]) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.cur[key]; ok {
		return cur.value
	}
	c.putLocked(key, e)
	return e.value
}

// Put keeps value for key, replacing what was kept (from the key's second
// Put, for a NewSeenTwice cache). size is what the entry
// costs in memory, in bytes, key included (an estimate: the caller knows
// what its values hold); an entry over a generation's share of the bytes
// is not kept.
func (c *Cache[V]) Put(key string, value V, size int) {
	if c == nil || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	if c.seen == nil || c.seen.admit(key) {
		c.putLocked(key, entry[V]{value: value, size: size})
	}
	c.mu.Unlock()
}

func (c *Cache[V]) putLocked(key string, e entry[V]) {
	if old, ok := c.cur[key]; ok {
		c.curBytes -= old.size
		delete(c.cur, key)
	}
	if len(c.cur) >= c.maxEntries || c.curBytes+e.size > c.maxBytes {
		c.old, c.oldBytes = c.cur, c.curBytes
		c.cur, c.curBytes = nil, 0
	}
	if c.cur == nil {
		c.cur = make(map[string]entry[V])
	}
	c.cur[key] = e
	c.curBytes += e.size
}

// Clear drops every entry.
func (c *Cache[V]) Clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.cur, c.old, c.curBytes, c.oldBytes = nil, nil, 0, 0
	if c.seen != nil {
		c.seen.cur, c.seen.old = nil, nil
	}
	c.mu.Unlock()
}

// Len returns the number of entries kept, in both generations (an entry
// moved to the current one may still be counted in the previous one).
func (c *Cache[V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.old)
}

// Bytes returns the sizes of the entries kept, added up as Len counts
// them: at most the maxBytes given to New.
func (c *Cache[V]) Bytes() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.curBytes + c.oldBytes
}
