//go:build unix

package output

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/certharvest/certharvest/verify"
)

// secret is the content of a file outside the store that links planted in
// it point to.
var secret = []byte("-----BEGIN PRIVATE KEY-----\nnot for the history\n-----END PRIVATE KEY-----\n")

// writeSecret writes secret, mode 0600, outside the store.
func writeSecret(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkSecret checks that the secret is as it was and that no file in dir
// holds it.
func checkSecret(t *testing.T, path, dir string) {
	t.Helper()
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file changed: %v, %v", info, err)
	}
	if data, _ := os.ReadFile(path); !bytes.Equal(data, secret) {
		t.Errorf("secret file content changed: %q", data)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte("not for the history")) {
				t.Errorf("the secret was copied into %s", p)
			}
		}
		return nil
	})
}

// checkRefused checks that err is the store's refusal of a link.
func checkRefused(t *testing.T, err error, what string) {
	t.Helper()
	var nr *NotRegularError
	if !errors.Is(err, verify.ReasonStoreRefused) || !errors.As(err, &nr) || nr.Mode&fs.ModeSymlink == 0 {
		t.Errorf("%s: %v; want a refused symbolic link", what, err)
	}
}

// emptyDir checks that a folder outside the store holds nothing.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("%s holds %d entries (%v): written through a link", dir, len(entries), err)
	}
}

// storeModes are the ways the store writes: alone, and with group commit
// (unnamed files where supported, and named ones).
var storeModes = []struct {
	name         string
	group, named bool
}{{"alone", false, true}, {"group", true, false}, {"group named", true, true}}

func openStoreMode(t *testing.T, dir string, group, named bool) *CertStore {
	t.Helper()
	s, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: group})
	if err != nil {
		t.Fatal(err)
	}
	if named {
		s.temps = tempOptions{}
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Issue 13, item 6: <address>.crt as a link to a 0600 secret. The store
// read the secret and, as it was no certificate, kept it in the history
// with mode 0644. Now it reads nothing through the link, writes nothing,
// and leaves the link in place; Load refuses it too.
func TestCertStoreRefusesLinkedCertificate(t *testing.T) {
	const addr = "victim@example.com"
	cert := selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			key := writeSecret(t)
			dir := t.TempDir()
			store := openStoreMode(t, dir, mode.group, mode.named)
			link := filepath.Join(dir, addr+".crt")
			if err := os.Symlink(key, link); err != nil {
				t.Fatal(err)
			}
			_, err := store.Store(context.Background(), addr, cert)
			checkRefused(t, err, "Store")
			_, err = store.Load(addr)
			checkRefused(t, err, "Load")
			if info, err := os.Lstat(link); err != nil || info.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("the link was replaced: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "history")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("history created: %v", err)
			}
			checkSecret(t, key, dir)
			assertNoTempFiles(t, dir)
		})
	}
}

// Issue 13, item 6: history/ (or history/<address>/) as a link to another
// folder. The replaced certificate was written there. Now the store writes
// nothing, anywhere, and the current certificate stays.
func TestCertStoreRefusesLinkedHistory(t *testing.T) {
	const addr = "linked@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	for _, linked := range []string{"history", filepath.Join("history", addr)} {
		for _, mode := range storeModes {
			t.Run(linked+" "+mode.name, func(t *testing.T) {
				dir, elsewhere := t.TempDir(), t.TempDir()
				store := openStoreMode(t, dir, mode.group, mode.named)
				if _, err := store.Store(context.Background(), addr, older); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, linked)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(elsewhere, filepath.Join(dir, linked)); err != nil {
					t.Fatal(err)
				}
				_, err := store.Store(context.Background(), addr, newer)
				checkRefused(t, err, "Store")
				emptyDir(t, elsewhere)
				if cur, err := store.Load(addr); err != nil || !cur.Equal(older) {
					t.Errorf("the current certificate changed (%v)", err)
				}
				assertNoTempFiles(t, dir)
			})
		}
	}
}

// The history reader (show) follows no link either: not history/<address>/
// itself, nor a file in it.
func TestCertStoreHistoryIgnoresLinks(t *testing.T) {
	const addr = "reader@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	planted := selfSigned(t, addr, t0)
	elsewhere := t.TempDir()
	plantedFile := filepath.Join(elsewhere, "planted.crt")
	if err := os.WriteFile(plantedFile, EncodeCertificatePEM(planted), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	store := openStoreMode(t, dir, false, true)
	if err := os.MkdirAll(filepath.Join(dir, "history"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "history", addr)); err != nil {
		t.Fatal(err)
	}
	hist, err := store.History(addr)
	if len(hist) != 0 {
		t.Errorf("History read %d certificates through a linked folder", len(hist))
	}
	checkRefused(t, err, "History through a linked folder")

	// A real history folder with a link in it: the link is skipped, the
	// real file read.
	os.Remove(filepath.Join(dir, "history", addr))
	older, newer := selfSigned(t, addr, t0.AddDate(0, 1, 0)), selfSigned(t, addr, t0.AddDate(0, 2, 0))
	for _, c := range []*x509.Certificate{older, newer} {
		if _, err := store.Store(context.Background(), addr, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(plantedFile, filepath.Join(dir, "history", addr, "planted.crt")); err != nil {
		t.Fatal(err)
	}
	hist, err = store.History(addr)
	if err != nil || len(hist) != 1 || !hist[0].Equal(older) {
		t.Errorf("History = %d certificates, %v; want only the one replaced", len(hist), err)
	}
}

// .locks/ as a link to another folder, and a lock file as a link to a
// file: the lock files were created (O_CREAT) and opened through them.
func TestCertStoreRefusesLinkedLockFiles(t *testing.T) {
	const addr = "locks@example.com"
	cert := selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

	t.Run("folder", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		store := openStoreMode(t, dir, true, false)
		if err := os.Symlink(elsewhere, filepath.Join(dir, ".locks")); err != nil {
			t.Fatal(err)
		}
		_, err := store.Store(context.Background(), addr, cert)
		checkRefused(t, err, "Store")
		emptyDir(t, elsewhere)
		if _, err := os.Lstat(filepath.Join(dir, addr+".crt")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("certificate written without its lock: %v", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		key := writeSecret(t)
		dir := t.TempDir()
		store := openStoreMode(t, dir, true, false)
		if err := os.Mkdir(filepath.Join(dir, ".locks"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(key, store.lockPath(lockStripe(addr))); err != nil {
			t.Fatal(err)
		}
		_, err := store.Store(context.Background(), addr, cert)
		checkRefused(t, err, "Store")
		checkSecret(t, key, dir)
	})
}

// A FIFO where the certificate is: refused at once (opening it to read
// would wait for a writer), not read, not replaced.
func TestCertStoreRefusesFIFO(t *testing.T) {
	const addr = "fifo@example.com"
	dir := t.TempDir()
	store := openStoreMode(t, dir, true, false)
	if err := unix.Mkfifo(filepath.Join(dir, addr+".crt"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	done := make(chan error, 1)
	go func() {
		_, err := store.Store(context.Background(), addr, cert)
		done <- err
	}()
	select {
	case err := <-done:
		var nr *NotRegularError
		if !errors.Is(err, verify.ReasonStoreRefused) || !errors.As(err, &nr) || nr.Mode&fs.ModeNamedPipe == 0 {
			t.Fatalf("Store: %v; want a refused FIFO", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open, so that the test can end.
		if f, err := os.OpenFile(filepath.Join(dir, addr+".crt"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Store hangs on a FIFO")
	}
	if info, err := os.Lstat(filepath.Join(dir, addr+".crt")); err != nil || info.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v", err)
	}
}
