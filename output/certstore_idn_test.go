package output

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// An internationalised address is stored under its normalised form, NFC
// UTF-8 local part and A-label domain, byte for byte: two local parts that
// differ in case are two files, history included; a form that is not
// normalised is refused, and a file named so is not listed.
func TestCertStoreInternationalised(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if store.foldsCase {
		t.Skipf("%s ignores case", dir)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	jorg, Jorg := "jörg@xn--bcher-kva.example", "Jörg@xn--bcher-kva.example"
	for _, addr := range []string{jorg, Jorg, "李雷@xn--r8jz45g.jp"} {
		for i := range 2 { // the second replaces the first, which goes to the history
			res, err := store.Store(ctx, addr, selfSigned(t, "x@example.com", t0.AddDate(0, i, 0)))
			if err != nil || res.Action != verify.ActionStored || res.Path != filepath.Join(dir, addr+".crt") {
				t.Fatalf("%s: %+v, %v", addr, res, err)
			}
		}
		if h, err := store.History(addr); err != nil || len(h) != 1 {
			t.Errorf("%s: history %d, %v", addr, len(h), err)
		}
	}
	a, _ := store.Load(jorg)
	b, _ := store.Load(Jorg)
	if a == nil || b == nil || a.Equal(b) {
		t.Error("jörg@ and Jörg@ share a certificate")
	}

	// Files that are not a normalised address's: not listed, not read.
	for _, name := range []string{
		"jo\u0308rg@xn--bcher-kva.example.crt", // NFD
		"jörg@bücher.example.crt",              // U-label
		"jörg\u202e@xn--bcher-kva.example.crt", // bidi override
		"p\u0430ypal@example.com.crt",          // mixed scripts
		"j\xf6rg@example.com.crt",              // Latin-1
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := strings.TrimSuffix(name, ".crt")
		if _, err := store.Path(addr); !errors.Is(err, verify.ErrInvalidAddress) {
			t.Errorf("Path(%q): %v", addr, err)
		}
		if _, err := store.Load(addr); !errors.Is(err, verify.ErrInvalidAddress) {
			t.Errorf("Load(%q): %v", addr, err)
		}
	}
	got, err := store.Addresses()
	slices.Sort(got)
	if want := []string{Jorg, jorg, "李雷@xn--r8jz45g.jp"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Addresses %q, %v; want %q", got, err, want)
	}
}

// On a file system that ignores case, Jörg@ and jörg@ would be one file:
// an internationalised address is refused there (store_refused), an ASCII
// one, always lower case, is stored.
func TestCertStoreFoldsCase(t *testing.T) {
	store, err := OpenCertStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.foldsCase = true // what the probe finds on macOS, Windows or ext4's casefold
	cert := selfSigned(t, "x@example.com", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := store.Store(context.Background(), "jörg@xn--bcher-kva.example", cert); !errors.Is(err, verify.ReasonStoreRefused) {
		t.Errorf("UTF-8 address: %v, want store_refused", err)
	}
	if res, err := store.Store(context.Background(), "x@xn--bcher-kva.example", cert); err != nil || res.Action != verify.ActionStored {
		t.Errorf("ASCII address: %+v, %v", res, err)
	}
}
