package output

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Each gives every current certificate in address order with its file's
// time, leaves out what is older than since, and names an unreadable file
// without stopping.
func TestEach(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addrs := []string{"b@example.com", "a@example.com", "a-b@example.co", "a@example.co"}
	for _, addr := range addrs {
		if _, err := store.Store(ctx, addr, selfSigned(t, addr, t0)); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "b@example.com.crt"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken@example.com.crt"), []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		addr string
		ok   bool
	}
	walk := func(since time.Time) []seen {
		var got []seen
		err := FolderReader{store}.Each(ctx, since, func(c StoredCertificate, err error) error {
			if err == nil && (c.Cert == nil || c.StoredAt.IsZero() || !slices.Contains(c.Cert.EmailAddresses, c.Address)) {
				t.Errorf("%s: certificate %v, stored at %v", c.Address, c.Cert != nil, c.StoredAt)
			}
			got = append(got, seen{c.Address, err == nil})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []seen{{"a-b@example.co", true}, {"a@example.co", true}, {"a@example.com", true}, {"b@example.com", true}, {"broken@example.com", false}}
	if got := walk(time.Time{}); !slices.Equal(got, want) {
		t.Errorf("every certificate: %v, want %v", got, want)
	}
	want = slices.Delete(want, 3, 4)
	if got := walk(time.Now().Add(-time.Hour)); !slices.Equal(got, want) {
		t.Errorf("stored in the last hour: %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err = store.Each(ctx, time.Time{}, func(StoredCertificate, error) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: Each returned %v after %d calls", err, n)
	}
}
