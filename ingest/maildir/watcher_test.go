package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// consumer takes names from a watcher, "processes" them by moving them to
// cur/, and counts how often each was handed over.
type consumer struct {
	mu   sync.Mutex
	seen map[string]int
}

func consume(t *testing.T, w *Watcher, dir string) *consumer {
	c := &consumer{seen: map[string]int{}}
	go func() {
		for name := range w.Ready() {
			c.mu.Lock()
			c.seen[name]++
			c.mu.Unlock()
			if err := os.Rename(filepath.Join(dir, SubNew, name), filepath.Join(dir, SubCur, name+":2,S")); err != nil {
				t.Errorf("moving %s: %v", name, err)
			}
			w.Done(name)
		}
	}()
	return c
}

func (c *consumer) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.seen)
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("handed over %d distinct messages, want %d", len(c.seen), n)
}

func (c *consumer) checkOnce(t *testing.T, names []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if c.seen[n] != 1 {
			t.Errorf("%s handed over %d times, want once", n, c.seen[n])
		}
	}
	if len(c.seen) != len(names) {
		t.Errorf("%d distinct names handed over, want %d", len(c.seen), len(names))
	}
}

func newMaildir(t *testing.T) string {
	dir := t.TempDir()
	for _, sub := range []string{SubTmp, SubNew, SubCur} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	return dir
}

// Every way an MTA delivers is seen, each message exactly once.
func TestMaildirWatcherDeliveryModes(t *testing.T) {
	dir := newMaildir(t)
	var names []string
	// Present before start.
	for i := range 5 {
		name := fmt.Sprintf("before.%d", i)
		os.WriteFile(filepath.Join(dir, SubNew, name), []byte("msg"), 0o600)
		names = append(names, name)
	}
	w := NewWatcher(dir, WatchOptions{Settle: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	c := consume(t, w, dir)
	time.Sleep(20 * time.Millisecond)

	// The Maildir way: written in tmp/, renamed into new/.
	for i := range 5 {
		name := fmt.Sprintf("renamed.%d", i)
		tmp := filepath.Join(dir, SubTmp, name)
		os.WriteFile(tmp, []byte("msg"), 0o600)
		os.Rename(tmp, filepath.Join(dir, SubNew, name))
		names = append(names, name)
	}
	// Hard link, then unlink (qmail's way).
	for i := range 3 {
		name := fmt.Sprintf("linked.%d", i)
		tmp := filepath.Join(dir, SubTmp, name)
		os.WriteFile(tmp, []byte("msg"), 0o600)
		os.Link(tmp, filepath.Join(dir, SubNew, name))
		os.Remove(tmp)
		names = append(names, name)
	}
	// Written straight into new/, slowly: must not be taken before it is
	// complete.
	slow := "direct.slow"
	names = append(names, slow)
	f, err := os.Create(filepath.Join(dir, SubNew, slow))
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		f.Write([]byte("part "))
		time.Sleep(20 * time.Millisecond)
		c.mu.Lock()
		early := c.seen[slow]
		c.mu.Unlock()
		if early > 0 {
			t.Fatal("a file still being written was handed over")
		}
	}
	f.Write([]byte("end"))
	f.Close()

	c.waitFor(t, len(names), 10*time.Second)
	time.Sleep(100 * time.Millisecond) // time for a duplicate to show up
	c.checkOnce(t, names)
	data, err := os.ReadFile(filepath.Join(dir, SubCur, slow+":2,S"))
	if err != nil || string(data) != "part part part part part part end" {
		t.Errorf("slow file = %q, %v", data, err)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Error(err)
	}
}

// Events lost to a queue overflow are made up by the rescan it triggers.
func TestMaildirWatcherOverflow(t *testing.T) {
	dir := newMaildir(t)
	w := NewWatcher(dir, WatchOptions{Settle: 10 * time.Millisecond, Rescan: time.Hour})
	events := make(chan fsnotify.Event)
	errs := make(chan error)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { w.run(ctx, events, errs); close(w.ready) }()
	c := consume(t, w, dir)

	var names []string
	for i := range 50 {
		name := fmt.Sprintf("lost.%d", i)
		os.WriteFile(filepath.Join(dir, SubNew, name), []byte("msg"), 0o600)
		names = append(names, name)
	}
	time.Sleep(30 * time.Millisecond)
	// No event was delivered for them; then the kernel says it dropped some.
	errs <- fsnotify.ErrEventOverflow
	c.waitFor(t, len(names), 5*time.Second)
	c.checkOnce(t, names)
}

// A burst far beyond one batch, with the real watcher: every message once.
func TestMaildirWatcherBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("burst test in -short mode")
	}
	dir := newMaildir(t)
	w := NewWatcher(dir, WatchOptions{Settle: 20 * time.Millisecond, Rescan: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	c := consume(t, w, dir)
	time.Sleep(20 * time.Millisecond)
	const n = 20000 // more than the 16,384 events the kernel queues by default
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("burst.%05d", i)
		tmp := filepath.Join(dir, SubTmp, names[i])
		if err := os.WriteFile(tmp, []byte("m"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(tmp, filepath.Join(dir, SubNew, names[i]))
	}
	c.waitFor(t, n, 60*time.Second)
	c.checkOnce(t, names)
}

func TestMaildirWatcherRetry(t *testing.T) {
	dir := newMaildir(t)
	w := NewWatcher(dir, WatchOptions{Settle: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	os.WriteFile(filepath.Join(dir, SubNew, "m1"), []byte("msg"), 0o600)
	var first time.Time
	select {
	case name := <-w.Ready():
		first = time.Now()
		w.RetryAt(name, first.Add(150*time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("not handed over")
	}
	select {
	case name := <-w.Ready():
		if name != "m1" || time.Since(first) < 140*time.Millisecond {
			t.Fatalf("retry of %s after %v", name, time.Since(first))
		}
		w.Done(name)
	case <-time.After(5 * time.Second):
		t.Fatal("not retried")
	}
	if w.Backlog() != 0 {
		t.Errorf("backlog %d after Done", w.Backlog())
	}
}

// A file seen being written in new/ waits WriteSettle after its last
// write, so that a writer's pause longer than Settle does not hand over half
// a message.
func TestMaildirWatcherWrittenWaitsLonger(t *testing.T) {
	dir := newMaildir(t)
	const settle, writeSettle = 20 * time.Millisecond, 600 * time.Millisecond
	w := NewWatcher(dir, WatchOptions{Settle: settle, WriteSettle: writeSettle})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	c := consume(t, w, dir)
	// A message the Maildir way first: once it is handed over, the watch
	// is in place (a file written before is only found by the listing).
	tmp := filepath.Join(dir, SubTmp, "renamed")
	os.WriteFile(tmp, []byte("msg"), 0o600)
	os.Rename(tmp, filepath.Join(dir, SubNew, "renamed"))
	c.waitFor(t, 1, 5*time.Second)

	f, err := os.Create(filepath.Join(dir, SubNew, "written"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("first half, "))
	time.Sleep(10 * settle) // the writer pauses, far longer than Settle
	c.mu.Lock()
	early := c.seen["written"]
	c.mu.Unlock()
	if early > 0 {
		t.Fatal("a file written in place was handed over during its writer's pause")
	}
	f.Write([]byte("second half"))
	f.Close()
	c.waitFor(t, 2, 5*time.Second)
	c.checkOnce(t, []string{"written", "renamed"})
	if data, _ := os.ReadFile(filepath.Join(dir, SubCur, "written:2,S")); string(data) != "first half, second half" {
		t.Errorf("written = %q", data)
	}
}

// A file the consumer found changed while it processed it (Unsettled) is
// handed over again once it has not been written for WriteSettle.
func TestMaildirWatcherUnsettled(t *testing.T) {
	dir := newMaildir(t)
	const writeSettle = 300 * time.Millisecond
	w := NewWatcher(dir, WatchOptions{Settle: 10 * time.Millisecond, WriteSettle: writeSettle})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	path := filepath.Join(dir, SubNew, "m1")
	tmp := filepath.Join(dir, SubTmp, "m1")
	os.WriteFile(tmp, []byte("half"), 0o600)
	os.Rename(tmp, path)
	select {
	case name := <-w.Ready():
		// Its writer goes on while it is processed.
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(" and the rest"))
		f.Close()
		w.Unsettled(name)
	case <-time.After(5 * time.Second):
		t.Fatal("not handed over")
	}
	written := time.Now()
	select {
	case name := <-w.Ready():
		if since := time.Since(written); name != "m1" || since < writeSettle-20*time.Millisecond {
			t.Fatalf("%s handed over again %v after its last write, want at least %v", name, since, writeSettle)
		}
		w.Done(name)
	case <-time.After(5 * time.Second):
		t.Fatal("not handed over again")
	}
	select {
	case name := <-w.Ready():
		t.Fatalf("%s handed over a third time", name)
	case <-time.After(2 * writeSettle):
	}
	if w.Backlog() != 0 {
		t.Errorf("backlog %d after Done", w.Backlog())
	}
}
