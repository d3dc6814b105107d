package groupcommit

import (
	"sync"
	"testing"
	"time"
)

type request struct {
	n         int
	committed bool
}

// Every request is committed exactly once, callers arriving during a commit
// share the next one, and no commit runs beside another.
func TestGroup(t *testing.T) {
	var g Group[*request]
	var (
		mu      sync.Mutex
		running bool
		seen    = map[int]int{}
	)
	commit := func(group []*request) {
		mu.Lock()
		if running {
			t.Error("two commits at once")
		}
		running = true
		mu.Unlock()
		time.Sleep(time.Millisecond) // callers arrive meanwhile
		mu.Lock()
		for _, r := range group {
			seen[r.n]++
			r.committed = true
		}
		running = false
		mu.Unlock()
	}
	const n = 200
	reqs := make([]*request, n)
	var wg sync.WaitGroup
	for i := range n {
		reqs[i] = &request{n: i}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Do(reqs[i], commit)
			if !reqs[i].committed {
				t.Errorf("request %d: Do returned before its commit", i)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("request %d committed %d times", i, seen[i])
		}
	}
	groups, requests := g.Stats()
	if requests != n || groups >= n {
		t.Errorf("%d requests in %d groups: want %d requests, fewer groups", requests, groups, n)
	}
}
