package output

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A folder read through CertReader answers as the folder store does.
func TestFolderReader(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	addr := "dora@example.com"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := selfSigned(t, addr, t0), selfSigned(t, addr, t0.AddDate(0, 1, 0))
	if _, err := store.Store(ctx, addr, older); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Store(ctx, addr, newer); err != nil {
		t.Fatal(err)
	}
	var r CertReader = FolderReader{store}
	if addrs, err := r.Addresses(ctx); err != nil || !slices.Equal(addrs, []string{addr}) {
		t.Errorf("Addresses = %q, %v", addrs, err)
	}
	if c, err := r.Load(ctx, addr); err != nil || !c.Equal(newer) {
		t.Errorf("Load: %v", err)
	}
	if h, err := r.History(ctx, addr); err != nil || len(h) != 1 || !h[0].Equal(older) {
		t.Errorf("History: %d, %v", len(h), err)
	}
	if p, err := r.Path(addr); err != nil || p != filepath.Join(dir, addr+".crt") {
		t.Errorf("Path = %q, %v", p, err)
	}
	if _, err := r.Load(ctx, "nobody@example.com"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of an unknown address: %v", err)
	}
}
