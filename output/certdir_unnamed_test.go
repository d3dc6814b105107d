//go:build linux

package output

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testfs"
	"github.com/certharvest/certharvest/verify"
	"golang.org/x/sys/unix"
)

// Every way a group commit makes an unnamed file (linked by its descriptor
// or through /proc) places a new
// certificate, a replacement (linked under a temporary name, renamed over
// the old) and a history copy (in a folder reached by its descriptor), each
// with mode 0644 and its content, and leaves no temporary file.
func TestCertStoreUnnamedWays(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addr := "ways@example.com"
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	for _, opts := range []tempOptions{
		{unnamed: true, linkByFD: true},
		{unnamed: true, linkByFD: false},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			s, dir := openMode(t, true, false)
			if !s.temps.unnamed {
				t.Fatalf("unnamed files unsupported in %s", dir)
			}
			if opts.linkByFD && !s.temps.linkByFD {
				t.Fatalf("linkat(AT_EMPTY_PATH) refused in %s", dir)
			}
			s.temps = opts
			for i, st := range []struct {
				cert *x509.Certificate
				want verify.Action
			}{{older, verify.ActionStored}, {newer, verify.ActionStored}} {
				if res := storeSet(t, s, addr, verify.CertSet{Encryption: st.cert, Capabilities: []string{"aes256-CBC"}}); res.Action != st.want {
					t.Fatalf("store %d: %s, want %s", i, res.Action, st.want)
				}
			}
			sum := Current{Cert: older}.sum()
			for name, want := range map[string][]byte{
				addr + ".crt":     EncodeCertificatePEM(newer),
				addr + CapsSuffix: []byte("aes256-CBC\n"),
				filepath.Join("history", addr, sum+".crt"): EncodeCertificatePEM(older),
			} {
				path := filepath.Join(dir, name)
				data, err := os.ReadFile(path)
				if err != nil || string(data) != string(want) {
					t.Errorf("%s: %q, %v; want %q", name, data, err, want)
				}
				if info, err := os.Stat(path); err != nil || info.Mode() != 0o644 {
					t.Errorf("%s: mode %v, %v; want -rw-r--r--", name, info.Mode(), err)
				}
			}
			assertNoTempFiles(t, dir)
		})
	}
}

// A umask that takes bits of 0644 away: the group commit's files still
// get 0644, as writeFileAtomicIn's do.
func TestCertStoreUnnamedUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	s, dir := openMode(t, true, false)
	addr := "umask@example.com"
	storeSet(t, s, addr, verify.CertSet{Encryption: selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if info, err := os.Stat(filepath.Join(dir, addr+".crt")); err != nil || info.Mode() != 0o644 {
		t.Errorf("mode %v, %v; want -rw-r--r-- whatever the umask", info.Mode(), err)
	}
}

// A default ACL on the folder, which the kernel applies instead of the
// umask (here group r, other nothing): the files still get 0644, with
// group commit or without (a review found the group commit's 0640 when it
// trusted the umask alone).
func TestCertStoreDefaultACLMode(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, group := range []bool{false, true} {
		dir := t.TempDir()
		// system.posix_acl_default, version 2: user::rw-, group::r--, other::---.
		acl := binary.LittleEndian.AppendUint32(nil, 2)
		for _, e := range []struct{ tag, perm uint16 }{{0x01, 6}, {0x04, 4}, {0x20, 0}} {
			acl = binary.LittleEndian.AppendUint16(acl, e.tag)
			acl = binary.LittleEndian.AppendUint16(acl, e.perm)
			acl = binary.LittleEndian.AppendUint32(acl, 0xffffffff)
		}
		if err := unix.Setxattr(dir, "system.posix_acl_default", acl, 0); err != nil {
			t.Skipf("no default ACL on %s: %v", dir, err)
		}
		s, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: group})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		addr := "acl@example.com"
		storeSet(t, s, addr, verify.CertSet{Encryption: selfSigned(t, addr, t0), Capabilities: []string{"aes256-CBC"}})
		for _, name := range []string{addr + ".crt", addr + CapsSuffix} {
			if info, err := os.Stat(filepath.Join(dir, name)); err != nil || info.Mode().Perm() != 0o644 {
				t.Errorf("group commit %v: %s: mode %v, %v; want -rw-r--r--", group, name, info.Mode(), err)
			}
		}
	}
}

// A full disk: a group commit of new certificates fails, each Store with
// an error, leaving neither a certificate file nor a temporary one; once
// there is room the same certificates are stored.
func TestCertStoreGroupDiskFull(t *testing.T) {
	small := testfs.MountTmpfs(t, "64k")
	dir := filepath.Join(small, "certs")
	s, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.temps.unnamed {
		t.Fatal("unnamed files unsupported on tmpfs")
	}
	filler := filepath.Join(small, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	certs := map[string]*x509.Certificate{}
	for i := range 4 {
		addr := fmt.Sprintf("full%d@example.com", i)
		certs[addr] = selfSigned(t, addr, t0)
	}
	errs := make(chan error, len(certs))
	for addr, cert := range certs {
		go func() {
			_, err := s.Store(context.Background(), addr, cert)
			errs <- err
		}()
	}
	for range certs {
		if err := <-errs; !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Store on a full disk: %v, want ENOSPC", err)
		}
	}
	for addr := range certs {
		if _, err := os.Lstat(filepath.Join(dir, addr+".crt")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s.crt after a failed store: %v", addr, err)
		}
	}
	assertNoTempFiles(t, dir)
	os.Remove(filler)
	for addr, cert := range certs {
		if res, err := s.Store(context.Background(), addr, cert); err != nil || res.Action != verify.ActionStored {
			t.Errorf("with room again: %v, %v; want stored", res.Action, err)
		}
		if c := fileCert(t, dir, addr+".crt"); !sameCert(c, cert) {
			t.Errorf("%s.crt is not the certificate stored", addr)
		}
	}
}
