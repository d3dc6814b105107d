// Package groupcommit makes concurrent callers share one commit: the
// first to arrive while no commit runs commits alone; those that arrive
// meanwhile wait, and the first of them then commits them all as one
// group, and so on. There is no goroutine of its own and no timer: a group
// is as large as the callers that arrived during the previous commit. The
// certificate folder (package output) shares its syncs this way, and the
// PostgreSQL store (output/pgstore) its transactions.
package groupcommit

import "sync"

// Group is a series of group commits of requests R. The zero value is
// ready to use; it is safe for concurrent use.
type Group[R any] struct {
	mu      sync.Mutex
	waiting []*waiter[R]
	busy    bool // a group is being committed
	// groups and requests count what was committed.
	groups, requests int
}

type waiter[R any] struct {
	req R
	// wake receives true when this waiter's goroutine is to commit the
	// waiting group, false when another committed it.
	wake chan bool
}

// Do returns once req has been committed, in a group, by commit: called by
// this goroutine, or by another's whose group held req. commit records
// each request's outcome in the request itself.
func (g *Group[R]) Do(req R, commit func(group []R)) {
	w := &waiter[R]{req: req, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, w)
	if g.busy {
		g.mu.Unlock()
		if lead := <-w.wake; !lead {
			return
		}
		g.mu.Lock()
	}
	g.busy = true
	group := g.waiting
	g.waiting = nil
	g.groups++
	g.requests += len(group)
	g.mu.Unlock()

	reqs := make([]R, len(group))
	for i, o := range group {
		reqs[i] = o.req
	}
	commit(reqs)

	g.mu.Lock()
	if len(g.waiting) > 0 {
		g.waiting[0].wake <- true
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, o := range group {
		if o != w {
			o.wake <- false
		}
	}
}

// Stats returns how many groups were committed, and how many requests
// they held.
func (g *Group[R]) Stats() (groups, requests int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups, g.requests
}
