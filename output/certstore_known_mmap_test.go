//go:build linux

package output

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// TestKnownIgnoresFilesOthersCanWrite: someone sharing the folder plants
// <address>.crt holding the sender's current certificate (padded to the
// length of an older one's PEM: pem.Decode ignores what follows), keeps a
// shared writable mapping of it, and once the store has read it swaps the
// older certificate in through the mapping. Linux sets a file's times only
// at the first write to a mapped page, so the file keeps the identity the
// store read (a review found the store then answering "unchanged" from
// memory while the older certificate stayed current). A file that another
// user owns, or that its group can write, is never remembered: every
// message is decided under the lock, which replaces the swapped file.
func TestKnownIgnoresFilesOthersCanWrite(t *testing.T) {
	for _, planted := range []struct {
		name string
		prep func(t *testing.T, f *os.File)
	}{
		{"group-writable", func(t *testing.T, f *os.File) {
			if err := f.Chmod(0o664); err != nil {
				t.Fatal(err)
			}
		}},
		{"another user's", func(t *testing.T, f *os.File) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the file to another user")
			}
			if err := f.Chown(65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(planted.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			addr := "planted@example.com"
			s, dir := openKnown(t, false)
			older := selfSigned(t, addr, t0)
			current := selfSigned(t, addr, t0.AddDate(0, 6, 0))
			oldPEM, curPEM := EncodeCertificatePEM(older), EncodeCertificatePEM(current)
			n := max(len(oldPEM), len(curPEM))
			pad := func(b []byte) []byte {
				for len(b) < n {
					b = append(b, '\n')
				}
				return b
			}
			f, err := os.OpenFile(filepath.Join(dir, addr+".crt"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(int64(n)); err != nil {
				t.Fatal(err)
			}
			m, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Munmap(m)
			copy(m, pad(curPEM)) // the first write to the page: the times are set now
			planted.prep(t, f)
			settle(s)
			res, err := s.StoreSet(context.Background(), addr, verify.CertSet{Encryption: current})
			if err != nil || res.Action != verify.ActionUnchanged {
				t.Fatalf("%+v, %v: want unchanged", res, err)
			}
			if isKnown(s, addr) {
				t.Fatal("a file others can write was remembered")
			}
			copy(m, pad(oldPEM)) // no page fault: the times stay
			res, err = s.StoreSet(context.Background(), addr, verify.CertSet{Encryption: current})
			if err != nil || res.Action != verify.ActionStored {
				t.Fatalf("after the swap: %+v, %v; want stored (the older certificate replaced)", res, err)
			}
			if c, err := s.Load(addr); err != nil || !sameCert(c, current) {
				t.Errorf("Load: %v, %v: the older certificate stayed current", c, err)
			}
		})
	}
}
