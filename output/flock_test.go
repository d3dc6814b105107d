package output

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// Two stores on one folder (as two processes would have) serialise the
// compare-and-replace of an address, and the newest certificate wins.
func TestCertStoreSharedFolder(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr := "shared@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	done := make(chan error, 2)
	go func() { _, err := a.Store(context.Background(), addr, newer); done <- err }()
	go func() { _, err := b.Store(context.Background(), addr, older); done <- err }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	cur, err := a.Load(addr)
	if err != nil || !cur.Equal(newer) {
		t.Fatalf("the older certificate won: %v", err)
	}
	if _, err := os.Stat(a.lockPath(lockStripe(addr))); err != nil {
		t.Error("no lock file:", err)
	}
	if addrs, _ := a.Addresses(); len(addrs) != 1 {
		t.Errorf("Addresses = %v", addrs)
	}
}

// sameStripe returns n distinct addresses that share one lock stripe.
func sameStripe(t *testing.T, n int) []string {
	t.Helper()
	byStripe := map[int][]string{}
	for i := 0; ; i++ {
		addr := fmt.Sprintf("user%d@example.com", i)
		s := lockStripe(addr)
		byStripe[s] = append(byStripe[s], addr)
		if len(byStripe[s]) == n {
			return byStripe[s]
		}
	}
}

// Addresses of one stripe share its lock: stores for them, from one store
// or from two sharing the folder (two processes), all succeed, each with
// its own certificate.
func TestCertStoreSharedStripe(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			dir := t.TempDir()
			opts := CertStoreOptions{GroupCommit: group}
			a, err := OpenCertStoreOptions(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := OpenCertStoreOptions(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			addrs := sameStripe(t, 4)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			certs := map[string]*x509.Certificate{}
			for _, addr := range addrs {
				certs[addr] = selfSigned(t, addr, t0)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(addrs))
			for i, addr := range addrs {
				store := a
				if i%2 == 1 {
					store = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := store.Store(context.Background(), addr, certs[addr])
					if err == nil && res.Action != verify.ActionStored {
						err = fmt.Errorf("%s: action %s", addr, res.Action)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			for _, addr := range addrs {
				if cur, err := a.Load(addr); err != nil || !cur.Equal(certs[addr]) {
					t.Errorf("%s: not its certificate (%v)", addr, err)
				}
			}
			locks, err := os.ReadDir(filepath.Join(dir, ".locks"))
			if err != nil || len(locks) != 1 || locks[0].Name() != fmt.Sprintf("%02x.lock", lockStripe(addrs[0])) {
				t.Errorf("lock files = %v, %v; want the stripe's only", locks, err)
			}
			assertNoTempFiles(t, dir)
		})
	}
}

// However many addresses are stored, there is at most one lock file per
// stripe, named after it.
func TestCertStoreLockFilesBounded(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2 * lockStripes
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stripes := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		addr := fmt.Sprintf("bounded%d@example.com", i)
		stripes[fmt.Sprintf("%02x.lock", lockStripe(addr))] = true
		cert := selfSigned(t, addr, t0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.Store(context.Background(), addr, cert)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	locks, err := os.ReadDir(filepath.Join(dir, ".locks"))
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) > lockStripes || len(locks) != len(stripes) {
		t.Errorf("%d lock files for %d addresses in %d stripes", len(locks), n, len(stripes))
	}
	name := regexp.MustCompile(`^[0-9a-f]{2}\.lock$`)
	for _, e := range locks {
		if !name.MatchString(e.Name()) || !stripes[e.Name()] {
			t.Errorf("unexpected lock file %s", e.Name())
		}
	}
	if addrs, err := store.Addresses(); err != nil || len(addrs) != n {
		t.Errorf("%d addresses stored, want %d (%v)", len(addrs), n, err)
	}
}

// A Store waits while another process holds its stripe's lock file, and
// goes on once it is released.
func TestCertStoreWaitsForStripeLockFile(t *testing.T) {
	if !haveFlock {
		t.Skip("no flock(2): one process per folder")
	}
	dir := t.TempDir()
	store, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	addrs := sameStripe(t, 2)
	// The other process holds the lock for addrs[0]; we store addrs[1].
	unlock, err := lockFile(store.lockPath(lockStripe(addrs[0])))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := store.Store(context.Background(), addrs[1], selfSigned(t, addrs[1], time.Now()))
		done <- err
	}()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Store did not wait for the stripe's lock (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Store still waiting after the lock was released")
	}
}

// The per-address lock files of earlier versions (<address>.lock) are
// ignored, even held: they neither block nor break a Store, and are left.
func TestCertStoreOldLockFiles(t *testing.T) {
	dir := t.TempDir()
	addr := "old@example.com"
	old := filepath.Join(dir, ".locks", addr+".lock")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(old)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := store.Store(context.Background(), addr, selfSigned(t, addr, time.Now()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Store blocked on an old per-address lock file")
	}
	if _, err := os.Stat(old); err != nil {
		t.Error("the old lock file was removed:", err)
	}
	if addrs, err := store.Addresses(); err != nil || len(addrs) != 1 || addrs[0] != addr {
		t.Errorf("Addresses = %v, %v", addrs, err)
	}
}

// The lock excludes another process: flock(1) cannot take it while a store
// holds it.
func TestLockFileExcludesProcesses(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) not installed")
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(flock, "--nonblock", path, "true").Run(); err == nil {
		t.Fatal("another process took the lock")
	}
	unlock()
	if err := exec.Command(flock, "--nonblock", path, "true").Run(); err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
}
