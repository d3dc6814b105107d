package output

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
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
	if _, err := os.Stat(filepath.Join(dir, ".locks", addr+".lock")); err != nil {
		t.Error("no lock file:", err)
	}
	if addrs, _ := a.Addresses(); len(addrs) != 1 {
		t.Errorf("Addresses = %v", addrs)
	}
}

// The lock excludes another process: flock(1) cannot take it while a store
// holds it.
func TestLockAddressFileExcludesProcesses(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) not installed")
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockAddressFile(path)
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
