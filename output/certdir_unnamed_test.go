//go:build linux

package output

import (
	"context"
	"crypto/x509"
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
)

// Every way a group commit makes an unnamed file (linked by its descriptor
// or through /proc; given its mode at creation or by a chmod) places a new
// certificate, a replacement (linked under a temporary name, renamed over
// the old) and a history copy (in a folder reached by its descriptor), each
// with mode 0644 and its content, and leaves no temporary file.
func TestCertStoreUnnamedWays(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addr := "ways@example.com"
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	for _, opts := range []tempOptions{
		{unnamed: true, linkByFD: true, modeKept: true},
		{unnamed: true, linkByFD: false, modeKept: false},
		{unnamed: true, linkByFD: true, modeKept: false},
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

// A umask that takes bits of 0644 away: the store sees it and gives its
// files their mode with a chmod.
func TestCertStoreUnnamedUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if umaskKeeps(0o644) {
		t.Fatal("umask 077 read as keeping 0644")
	}
	if !umaskKeeps(0o600) {
		t.Error("umask 077 read as not keeping 0600")
	}
	s, dir := openMode(t, true, false)
	if s.temps.modeKept {
		t.Fatal("the store would skip the chmod under umask 077")
	}
	addr := "umask@example.com"
	storeSet(t, s, addr, verify.CertSet{Encryption: selfSigned(t, addr, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if info, err := os.Stat(filepath.Join(dir, addr+".crt")); err != nil || info.Mode() != 0o644 {
		t.Errorf("mode %v, %v; want -rw-r--r-- whatever the umask", info.Mode(), err)
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
