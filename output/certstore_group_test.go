package output

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// With group commit, a sequence of Stores has the same outcome, files and
// history as without.
func TestCertStoreGroupCommitActions(t *testing.T) {
	addr := "bob@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 3, 0))
	// Group commit with unnamed temporary files (O_TMPFILE, where
	// supported: a replacement then links under a temporary name and
	// renames) and with named ones.
	for _, mode := range []struct{ group, named bool }{{false, false}, {true, false}, {true, true}} {
		group := mode.group
		dir := t.TempDir()
		store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: group})
		if err != nil {
			t.Fatal(err)
		}
		if group && !mode.named && runtime.GOOS == "linux" && !store.temps.unnamed {
			t.Logf("O_TMPFILE unsupported in %s: unnamed files not tested", dir)
		}
		if mode.named {
			store.temps = tempOptions{}
		}
		for i, st := range []struct {
			cert *x509.Certificate
			want verify.Action
		}{{older, verify.ActionStored}, {older, verify.ActionUnchanged}, {newer, verify.ActionStored}, {older, verify.ActionKeptExisting}} {
			res, err := store.Store(context.Background(), addr, st.cert)
			if err != nil || res.Action != st.want {
				t.Fatalf("group=%v step %d: %s, %v; want %s", group, i, res.Action, err, st.want)
			}
		}
		if cur, err := store.Load(addr); err != nil || !cur.Equal(newer) {
			t.Fatalf("group=%v: current certificate is not the newer one (%v)", group, err)
		}
		hist, err := os.ReadDir(filepath.Join(dir, "history", addr))
		if err != nil || len(hist) != 1 {
			t.Fatalf("group=%v: history = %v, %v", group, hist, err)
		}
		if data, err := os.ReadFile(filepath.Join(dir, "history", addr, hist[0].Name())); err != nil || !strings.Contains(string(data), "BEGIN CERTIFICATE") {
			t.Fatalf("group=%v: history file: %v", group, err)
		}
		assertNoTempFiles(t, dir)
	}
}

// Concurrent Stores are committed in groups, and every one is in place when
// its Store returns.
func TestCertStoreGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 64
	// Eight certificates for one address race with one per address.
	race := "race@example.com"
	raceCerts := make([]*x509.Certificate, 8)
	for i := range raceCerts {
		raceCerts[i] = selfSigned(t, race, t0.AddDate(0, 0, i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n+len(raceCerts))
	for i := range n {
		addr := fmt.Sprintf("user%02d@example.com", i)
		cert := selfSigned(t, addr, t0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := store.Store(context.Background(), addr, cert)
			if err == nil && res.Action != verify.ActionStored {
				err = fmt.Errorf("%s: action %s", addr, res.Action)
			}
			if err == nil {
				// Durable and in place when Store returns.
				var cur *x509.Certificate
				if cur, err = store.Load(addr); err == nil && !cur.Equal(cert) {
					err = fmt.Errorf("%s: the file holds another certificate", addr)
				}
			}
			errs <- err
		}()
	}
	for _, c := range raceCerts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.Store(context.Background(), race, c)
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
	cur, err := store.Load(race)
	if err != nil || !cur.Equal(raceCerts[len(raceCerts)-1]) {
		t.Errorf("the newest certificate did not win: %v", err)
	}
	addrs, err := store.Addresses()
	if err != nil || len(addrs) != n+1 {
		t.Errorf("%d addresses, want %d (%v)", len(addrs), n+1, err)
	}
	assertNoTempFiles(t, dir)
	groups, requests := store.group.Stats()
	if requests < n || groups >= requests {
		t.Errorf("%d requests in %d groups: no group commit", requests, groups)
	}
	t.Logf("%d requests in %d groups", requests, groups)
}

// A failed commit reports the error and leaves no temporary file.
func TestCertStoreGroupCommitFailure(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := "dir@example.com"
	// A folder where the certificate file should be: the rename fails.
	if err := os.Mkdir(filepath.Join(dir, addr+".crt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, addr+".crt", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, addr, time.Now())
	if _, err := store.Store(context.Background(), addr, cert); err == nil {
		t.Fatal("Store over a folder succeeded")
	}
	assertNoTempFiles(t, dir)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", path)
		}
		return nil
	})
}

// A store keeps its lock files open between Stores, and Close releases
// them.
func TestCertStoreKeepsLockFilesOpenUntilClose(t *testing.T) {
	s, err := OpenCertStoreOptions(t.TempDir(), CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := "open@example.com"
	cert := selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i, want := range []verify.Action{verify.ActionStored, verify.ActionUnchanged} {
		res, err := s.Store(context.Background(), addr, cert)
		if err != nil || res.Action != want {
			t.Fatalf("store %d: %v, %v; want %v", i, res.Action, err, want)
		}
	}
	if s.lockFiles[lockStripe(addr)] == nil {
		t.Fatal("lock file not kept open")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.lockFiles[lockStripe(addr)] != nil {
		t.Fatal("Close left a lock file open")
	}
}
