//go:build linux

package output

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// openKnown opens a store in a new folder that remembers known senders;
// the folder's file system must allow it (a local one).
func openKnown(t *testing.T, group bool) (*CertStore, string) {
	t.Helper()
	s, dir := openMode(t, group, false)
	if s.known.margin == 0 {
		t.Fatalf("the store in %s remembers nothing: its file system is not one known to be local", dir)
	}
	return s, dir
}

// settle waits until the files written so far are older than the store's
// racy margin, so that a read of them is remembered.
func settle(s *CertStore) { time.Sleep(s.known.margin + 20*time.Millisecond) }

func isKnown(s *CertStore, addr string) bool {
	s.known.mu.Lock()
	defer s.known.mu.Unlock()
	_, ok := s.known.addrs[addr]
	return ok
}

// storeSet is StoreSet that fails the test on an error.
func storeSet(t *testing.T, s *CertStore, addr string, set verify.CertSet) verify.StoreResult {
	t.Helper()
	res, err := s.StoreSet(context.Background(), addr, set)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// withLockHeld runs f while another process holds the lock of addr's
// stripe, and fails the test if f waits for it.
func withLockHeld(t *testing.T, s *CertStore, addr string, f func()) {
	t.Helper()
	release, err := lockFile(s.lockPath(lockStripe(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waited for the lock another process holds")
	}
}

// sameSizeCert returns a certificate for addr valid from notBefore whose
// PEM file has the size of want's: an operator's replacement that a size
// alone would not tell apart.
func sameSizeCert(t *testing.T, addr string, notBefore time.Time, want *x509.Certificate) *x509.Certificate {
	t.Helper()
	for range 200 {
		c := selfSigned(t, addr, notBefore)
		if len(EncodeCertificatePEM(c)) == len(EncodeCertificatePEM(want)) {
			return c
		}
	}
	t.Fatal("no certificate of the same size")
	return nil
}

// A sender already known: the same certificate (or dual-key pair) again is
// unchanged, answered from memory with the files' identities, while
// another process holds the address's lock, with the result the lock's
// path gives.
func TestCertStoreKnownWithoutLock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			s, dir := openKnown(t, group)
			one, dual := "one@example.com", "dual@example.com"
			cert := selfSigned(t, one, t0)
			pair := verify.CertSet{Encryption: selfSigned(t, dual, t0), Signing: selfSigned(t, dual, t0.AddDate(0, 1, 0))}
			storeSet(t, s, one, verify.CertSet{Encryption: cert})
			storeSet(t, s, dual, pair)
			settle(s)
			wantOne := verify.StoreResult{Action: verify.ActionUnchanged, Path: filepath.Join(dir, one+".crt")}
			wantDual := verify.StoreResult{Action: verify.ActionUnchanged, Path: filepath.Join(dir, dual+".crt"), SignPath: filepath.Join(dir, dual+SignSuffix)}
			// Under the lock, once: remembered.
			if res := storeSet(t, s, one, verify.CertSet{Encryption: cert}); res != wantOne {
				t.Errorf("under the lock: %+v, want %+v", res, wantOne)
			}
			if res := storeSet(t, s, dual, pair); res != wantDual {
				t.Errorf("the pair under the lock: %+v, want %+v", res, wantDual)
			}
			if !isKnown(s, one) || !isKnown(s, dual) {
				t.Fatal("not remembered")
			}
			withLockHeld(t, s, one, func() {
				if res, err := s.StoreSet(context.Background(), one, verify.CertSet{Encryption: cert}); err != nil || res != wantOne {
					t.Errorf("from memory: %+v, %v, want %+v", res, err, wantOne)
				}
			})
			withLockHeld(t, s, dual, func() {
				if res, err := s.StoreSet(context.Background(), dual, pair); err != nil || res != wantDual {
					t.Errorf("the pair from memory: %+v, %v, want %+v", res, err, wantDual)
				}
			})
			// Another certificate, or the pair's encryption certificate
			// alone, is not what is remembered: decided under the lock.
			if res := storeSet(t, s, dual, verify.CertSet{Encryption: pair.Encryption}); res.Action != verify.ActionKeptExisting {
				t.Errorf("the pair's certificate alone: %s, want kept (its newer signing certificate stays)", res.Action)
			}
			newer := selfSigned(t, one, t0.AddDate(0, 2, 0))
			if res := storeSet(t, s, one, verify.CertSet{Encryption: newer}); res.Action != verify.ActionStored {
				t.Errorf("a newer certificate: %s, want stored", res.Action)
			}
			if isKnown(s, one) {
				t.Error("still remembered after its certificate was replaced")
			}
			if c := fileCert(t, dir, one+".crt"); !sameCert(c, newer) {
				t.Error("the newer certificate is not the current one")
			}
		})
	}
}

// Every change to a known sender's files, by another store (another
// process) or an operator, is seen: the store answers as under the lock.
func TestCertStoreKnownSeesChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addr := "alice@example.com"
	crt := addr + ".crt"
	type env struct {
		dir         string
		other       *CertStore // another process's store of the folder
		cert, later *x509.Certificate
	}
	// writeInPlace overwrites name in dir without replacing it (same
	// inode), as an editor or cp does.
	writeInPlace := func(t *testing.T, path string, data []byte) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		change  func(t *testing.T, e env)
		want    verify.Action
		wantErr error
	}{
		{"a newer certificate stored by another process", func(t *testing.T, e env) {
			storeSet(t, e.other, addr, verify.CertSet{Encryption: e.later})
		}, verify.ActionKeptExisting, nil},
		{"a signing certificate added by another process", func(t *testing.T, e env) {
			storeSet(t, e.other, addr, verify.CertSet{Encryption: e.cert, Signing: e.later})
		}, verify.ActionKeptExisting, nil},
		{"retired by another process", func(t *testing.T, e env) {
			if moved, err := e.other.Retire(context.Background(), addr, e.cert, Retirement{Reason: verify.ReasonCertRevoked}); err != nil || !moved {
				t.Fatal(moved, err)
			}
		}, verify.ActionKeptExisting, nil},
		{"edited in place by an operator, same size", func(t *testing.T, e env) {
			writeInPlace(t, filepath.Join(e.dir, crt), EncodeCertificatePEM(e.later))
		}, verify.ActionKeptExisting, nil},
		{"damaged in place, same size", func(t *testing.T, e env) {
			data := EncodeCertificatePEM(e.cert)
			data[40] ^= 1 // in the base64 of the signature's key
			writeInPlace(t, filepath.Join(e.dir, crt), data)
		}, verify.ActionStored, nil},
		{"replaced by a file of the same size", func(t *testing.T, e env) {
			tmp := filepath.Join(e.dir, "new")
			if err := os.WriteFile(tmp, EncodeCertificatePEM(e.later), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(e.dir, crt)); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionKeptExisting, nil},
		{"removed and created again, same size (ext4 reuses its inode number)", func(t *testing.T, e env) {
			if err := os.Remove(filepath.Join(e.dir, crt)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(e.dir, crt), EncodeCertificatePEM(e.later), 0o644); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionKeptExisting, nil},
		{"removed by an operator", func(t *testing.T, e env) {
			if err := os.Remove(filepath.Join(e.dir, crt)); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionStored, nil},
		{"replaced by a link to the same certificate", func(t *testing.T, e env) {
			target := filepath.Join(t.TempDir(), "same.crt")
			if err := os.WriteFile(target, EncodeCertificatePEM(e.cert), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(e.dir, crt))
			if err := os.Symlink(target, filepath.Join(e.dir, crt)); err != nil {
				t.Fatal(err)
			}
		}, "", verify.ReasonStoreRefused},
		{"a signing certificate added by an operator", func(t *testing.T, e env) {
			if err := os.WriteFile(filepath.Join(e.dir, addr+SignSuffix), EncodeCertificatePEM(e.later), 0o644); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionKeptExisting, nil},
		{"a link as the signing certificate", func(t *testing.T, e env) {
			if err := os.Symlink(filepath.Join(e.dir, crt), filepath.Join(e.dir, addr+SignSuffix)); err != nil {
				t.Fatal(err)
			}
		}, "", verify.ReasonStoreRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openKnown(t, true)
			other, err := OpenCertStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			cert := selfSigned(t, addr, t0)
			e := env{dir: dir, other: other, cert: cert, later: sameSizeCert(t, addr, t0.AddDate(0, 1, 0), cert)}
			storeSet(t, s, addr, verify.CertSet{Encryption: cert})
			settle(s)
			if res := storeSet(t, s, addr, verify.CertSet{Encryption: cert}); res.Action != verify.ActionUnchanged || !isKnown(s, addr) {
				t.Fatalf("%s, known %v: want unchanged and remembered", res.Action, isKnown(s, addr))
			}
			tt.change(t, e)
			res, err := s.StoreSet(context.Background(), addr, verify.CertSet{Encryption: cert})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("StoreSet: %+v, %v; want an error matching %v", res, err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Action != tt.want {
				t.Errorf("StoreSet: %s, %v; want %s", res.Action, err, tt.want)
			}
		})
	}
}

// A dual-key sender's pair, remembered: a change to its signing file is
// seen.
func TestCertStoreKnownPairSeesChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addr := "dual@example.com"
	signPath := func(dir string) string { return filepath.Join(dir, addr+SignSuffix) }
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, other *CertStore, pair verify.CertSet)
		want   verify.Action
	}{
		{"the signing file removed by an operator", func(t *testing.T, dir string, _ *CertStore, _ verify.CertSet) {
			if err := os.Remove(signPath(dir)); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionStored},
		{"a newer signing certificate stored by another process", func(t *testing.T, dir string, other *CertStore, pair verify.CertSet) {
			storeSet(t, other, addr, verify.CertSet{Encryption: pair.Encryption, Signing: selfSigned(t, addr, t0.AddDate(0, 2, 0))})
		}, verify.ActionKeptExisting},
		{"the signing certificate retired by another process", func(t *testing.T, dir string, other *CertStore, pair verify.CertSet) {
			if moved, err := other.Retire(context.Background(), addr, pair.Signing, Retirement{Reason: verify.ReasonCertRevoked}); err != nil || !moved {
				t.Fatal(moved, err)
			}
		}, verify.ActionKeptExisting},
		{"the signing file edited in place, same size", func(t *testing.T, dir string, _ *CertStore, pair verify.CertSet) {
			later := sameSizeCert(t, addr, t0.AddDate(0, 3, 0), pair.Signing)
			if err := os.WriteFile(signPath(dir), EncodeCertificatePEM(later), 0o644); err != nil {
				t.Fatal(err)
			}
		}, verify.ActionKeptExisting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openKnown(t, true)
			other, err := OpenCertStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			pair := verify.CertSet{Encryption: selfSigned(t, addr, t0), Signing: selfSigned(t, addr, t0.AddDate(0, 1, 0))}
			storeSet(t, s, addr, pair)
			settle(s)
			if res := storeSet(t, s, addr, pair); res.Action != verify.ActionUnchanged || !isKnown(s, addr) {
				t.Fatalf("%s, known %v: want unchanged and remembered", res.Action, isKnown(s, addr))
			}
			tt.change(t, dir, other, pair)
			if res := storeSet(t, s, addr, pair); res.Action != tt.want {
				t.Errorf("StoreSet: %s, want %s", res.Action, tt.want)
			}
		})
	}
}

// A file read in the tick it was last changed in is not remembered: a
// change in that same tick would keep its ctime. Such a change, made at
// once, is seen.
func TestCertStoreKnownRacy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addr := "racy@example.com"
	s, dir := openKnown(t, false)
	cert := selfSigned(t, addr, t0)
	later := sameSizeCert(t, addr, t0.AddDate(0, 1, 0), cert)
	storeSet(t, s, addr, verify.CertSet{Encryption: cert})
	if res := storeSet(t, s, addr, verify.CertSet{Encryption: cert}); res.Action != verify.ActionUnchanged {
		t.Fatalf("%s, want unchanged", res.Action)
	}
	if isKnown(s, addr) {
		t.Fatal("a file changed just before its read was remembered")
	}
	f, err := os.OpenFile(filepath.Join(dir, addr+".crt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(EncodeCertificatePEM(later)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if res := storeSet(t, s, addr, verify.CertSet{Encryption: cert}); res.Action != verify.ActionKeptExisting {
		t.Errorf("after an edit in place: %s, want kept (the newer certificate written)", res.Action)
	}

	// settled, by the numbers.
	seen := time.Unix(1000, 0)
	for _, tc := range []struct {
		ctime time.Time
		want  bool
	}{
		{seen.Add(-s.known.margin - time.Nanosecond), true},
		{seen.Add(-s.known.margin), false},
		{seen, false},
		{seen.Add(time.Hour), false}, // a ctime ahead of the clock
	} {
		if got := s.known.settled(ownFileID(tc.ctime), seen); got != tc.want {
			t.Errorf("settled(ctime %v before the read) = %v, want %v", seen.Sub(tc.ctime), got, tc.want)
		}
	}
	if s.known.settled(fileID{ctime: 0}, seen) {
		t.Error("a file that is not regular is settled")
	}
	old := seen.Add(-time.Hour)
	for what, id := range map[string]fileID{
		"another user's":    func() fileID { id := ownFileID(old); id.uid++; return id }(),
		"group-writable":    func() fileID { id := ownFileID(old); id.mode |= 0o020; return id }(),
		"others-writable":   func() fileID { id := ownFileID(old); id.mode |= 0o002; return id }(),
		"with another name": func() fileID { id := ownFileID(old); id.nlink = 2; return id }(),
	} {
		if s.known.settled(id, seen) {
			t.Errorf("a file %s is settled: it could be changed through a mapping", what)
		}
	}
}

// ownFileID is the identity of a regular file of mode 0644 that the
// process's user owns, last changed at ctime: one the store may remember.
func ownFileID(ctime time.Time) fileID {
	return fileID{valid: true, ctime: ctime.UnixNano(), uid: uint32(os.Geteuid()), mode: syscall.S_IFREG | 0o644, nlink: 1}
}

// The memory is bounded: past maxKnownAddresses, an address is forgotten
// for each one remembered.
func TestCertStoreKnownBounded(t *testing.T) {
	s, _ := openKnown(t, false)
	seen := time.Now()
	old := ownFileID(seen.Add(-time.Hour))
	raw := []byte("certificate")
	for i := range maxKnownAddresses + 100 {
		s.known.remember(fmt.Sprintf("user%d@example.com", i), knownFile{raw, old}, knownFile{}, seen)
	}
	if n := len(s.known.addrs); n != maxKnownAddresses {
		t.Errorf("%d addresses remembered, want %d", n, maxKnownAddresses)
	}
	last := fmt.Sprintf("user%d@example.com", maxKnownAddresses+99)
	if !isKnown(s, last) {
		t.Error("the last address is not remembered")
	}
	raw[0] = 'X' // the caller's bytes, changed after: not what is remembered
	if _, ok := s.known.lookup(last, &x509.Certificate{Raw: []byte("certificate")}, nil); !ok {
		t.Error("the remembered certificate is not a copy")
	}
}
