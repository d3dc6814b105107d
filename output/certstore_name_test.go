package output

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// longestAddress returns an address of 251 octets, the longest that
// verify.NormalizeAddress accepts (<address>.crt is then 255 bytes, the
// file-name limit of common file systems).
func longestAddress(t *testing.T) string {
	t.Helper()
	addr := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 54) + ".com"
	if norm, err := verify.NormalizeAddress(addr); err != nil || norm != addr || len(addr) != 251 {
		t.Fatalf("%d octets: %v", len(addr), err)
	}
	if _, err := verify.NormalizeAddress("a" + addr); err == nil {
		t.Fatal("NormalizeAddress accepts 252 octets: the store's names may not fit")
	}
	return addr
}

// Every name the store creates fits NAME_MAX (255 bytes) for every address
// NormalizeAddress accepts: a 251-octet address is stored, then replaced by
// a newer certificate, the old one kept in the history. Temporary names
// were <address>.crt with a prefix and a suffix: ENAMETOOLONG, so such an
// address could be stored once and never replaced (store_failed, retried
// for a day). On the real file system, in each mode of writing.
func TestCertStoreLongestAddress(t *testing.T) {
	addr := longestAddress(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	for _, mode := range []struct {
		name         string
		group, named bool
	}{{"alone", false, true}, {"group, unnamed files", true, false}, {"group, named files", true, true}} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			store, err := OpenCertStoreOptions(dir, CertStoreOptions{GroupCommit: mode.group})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if mode.group && !mode.named && !store.temps.unnamed && runtime.GOOS == "linux" {
				t.Logf("O_TMPFILE unsupported in %s: named files instead", dir)
			}
			if mode.named {
				store.temps = tempOptions{}
			}
			for i, c := range []*x509.Certificate{older, newer} {
				res, err := store.Store(context.Background(), addr, c)
				if err != nil || res.Action != verify.ActionStored {
					t.Fatalf("store %d: %s, %v; want stored", i+1, res.Action, err)
				}
			}
			if cur, err := store.Load(addr); err != nil || !cur.Equal(newer) {
				t.Fatalf("current certificate: %v", err)
			}
			hist, err := store.History(addr)
			if err != nil || len(hist) != 1 || !hist[0].Equal(older) {
				t.Fatalf("history: %d certificates, %v; want the older one", len(hist), err)
			}
			assertNoTempFiles(t, dir)
			filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && len(d.Name()) > 255 {
					t.Errorf("name of %d bytes: %s", len(d.Name()), path)
				}
				return nil
			})
		})
	}
}
