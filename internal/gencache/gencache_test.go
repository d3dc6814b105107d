package gencache

import (
	"strconv"
	"sync"
	"testing"
)

func TestGetPut(t *testing.T) {
	c := New[int](8, 1<<20)
	if _, ok := c.Get([]byte("a")); ok {
		t.Fatal("empty cache hit")
	}
	c.Put("a", 1, 10)
	c.Put("b", 2, 10)
	if v, ok := c.Get([]byte("a")); !ok || v != 1 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	c.Put("a", 3, 10)
	if v, _ := c.Get([]byte("a")); v != 3 {
		t.Fatalf("a replaced: %d, want 3", v)
	}
	if c.Len() != 2 || c.Bytes() != 20 {
		t.Fatalf("Len %d, Bytes %d; want 2, 20", c.Len(), c.Bytes())
	}
}

// Entries in use survive a stream of new keys; the rest go.
func TestKeepsWhatIsUsed(t *testing.T) {
	c := New[int](8, 1<<20) // generations of 4
	c.Put("known", 1, 1)
	for i := range 1000 {
		c.Put("new"+strconv.Itoa(i), i, 1)
		if _, ok := c.Get([]byte("known")); !ok {
			t.Fatalf("the entry in use was dropped after %d new ones", i+1)
		}
	}
	if _, ok := c.Get([]byte("new0")); ok {
		t.Error("an entry no one used outlived two generations")
	}
}

// However many keys come, the cache holds at most its bounds, in entries
// and in bytes.
func TestBounded(t *testing.T) {
	c := New[[]byte](100, 10_000)
	for i := range 100_000 {
		size := 1 + i%300
		c.Put(strconv.Itoa(i), make([]byte, size), size)
		if i%2 == 0 {
			c.Get([]byte(strconv.Itoa(i / 2)))
		}
		if c.Len() > 100 || c.Bytes() > 10_000 {
			t.Fatalf("after %d puts: %d entries, %d bytes; bounds 100, 10000", i+1, c.Len(), c.Bytes())
		}
	}
	// An entry larger than a generation's share is not kept.
	c.Put("huge", make([]byte, 6000), 6000)
	if _, ok := c.Get([]byte("huge")); ok {
		t.Error("an entry over half the bytes was kept")
	}
}

func TestClear(t *testing.T) {
	c := New[int](4, 1<<20)
	for i := range 5 {
		c.Put(strconv.Itoa(i), i, 1)
	}
	c.Clear()
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("after Clear: %d entries, %d bytes", c.Len(), c.Bytes())
	}
	if _, ok := c.Get([]byte("4")); ok {
		t.Error("hit after Clear")
	}
	c.Put("a", 1, 1)
	if v, ok := c.Get([]byte("a")); !ok || v != 1 {
		t.Error("nothing kept after Clear")
	}
}

func TestNilCache(t *testing.T) {
	var c *Cache[int]
	c.Clear()
	c.Put("a", 1, 1)
	if _, ok := c.Get([]byte("a")); ok || c.Len() != 0 || c.Bytes() != 0 {
		t.Error("a nil cache kept something")
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int](16, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := strconv.Itoa((g*7 + i) % 40)
				if v, ok := c.Get([]byte(k)); ok && strconv.Itoa(v) != k {
					t.Errorf("%s = %d", k, v)
					return
				}
				n, _ := strconv.Atoi(k)
				c.Put(k, n, 8)
			}
		}()
	}
	wg.Wait()
	if c.Len() > 16 {
		t.Errorf("%d entries, bound 16", c.Len())
	}
}

// A stream of new keys costs the same per key however long it runs:
// each Put is constant work (no walk over the entries kept).
func BenchmarkPutNew(b *testing.B) {
	c := New[int](4096, 32<<20)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = strconv.Itoa(i) + "-some-longer-key-as-a-certificate-would-be"
	}
	i := 0
	for b.Loop() {
		c.Put(keys[i%len(keys)], i, 256)
		i++
	}
}

func TestGetString(t *testing.T) {
	c := New[int](4, 1<<20) // generations of 2
	c.Put("a", 1, 1)
	c.Put("b", 2, 1)
	c.Put("c", 3, 1) // a and b now in the previous generation
	if v, ok := c.GetString("a"); !ok || v != 1 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	c.Put("d", 4, 1) // c and a (moved up) become the previous generation
	c.Put("e", 5, 1)
	if _, ok := c.GetString("a"); !ok {
		t.Error("a, in use, was dropped")
	}
	if _, ok := c.GetString("b"); ok {
		t.Error("b, unused for two generations, was kept")
	}
	var nilCache *Cache[int]
	if _, ok := nilCache.GetString("a"); ok {
		t.Error("nil cache hit")
	}
}

// A NewSeenTwice cache keeps a key from its second Put; keys Put once, in
// any number, neither fill it nor push out the keys that come back.
func TestSeenTwice(t *testing.T) {
	c := NewSeenTwice[int](8, 1<<20)
	c.Put("a", 1, 1)
	if _, ok := c.Get([]byte("a")); ok {
		t.Fatal("kept at the first Put")
	}
	c.Put("a", 2, 1)
	if v, ok := c.Get([]byte("a")); !ok || v != 2 {
		t.Fatalf("a = %d, %v after the second Put", v, ok)
	}
	for i := range 10_000 {
		c.Put("once"+strconv.Itoa(i), i, 1)
		if c.Len() != 1 {
			t.Fatalf("after %d keys Put once, %d entries", i+1, c.Len())
		}
		if c.seen.cur != nil && len(c.seen.cur) > seenTwiceFactor*8/2 {
			t.Fatalf("%d hashes remembered, bound %d", len(c.seen.cur), seenTwiceFactor*8/2)
		}
	}
	if _, ok := c.Get([]byte("a")); !ok {
		t.Error("the key that came back was pushed out by keys Put once")
	}
	c.Clear()
	c.Put("a", 3, 1)
	if _, ok := c.Get([]byte("a")); ok {
		t.Error("Clear did not forget the keys seen")
	}
}
