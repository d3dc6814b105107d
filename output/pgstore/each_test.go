package pgstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
)

// Each streams the current certificates in bytewise address order, as the
// folder store's Each, with stored_at, and leaves out those stored before
// since; fn's error stops it.
func TestEach(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addrs := []string{"b@example.com", "a@example.com", "a-b@example.co", "a@example.co"}
	for i, addr := range addrs {
		if _, err := s.Store(ctx, addr, leaf(t, addr, t0.Add(time.Duration(i)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, "UPDATE certificates SET stored_at = now() - interval '2 days' WHERE address = 'b@example.com'"); err != nil {
		t.Fatal(err)
	}
	walk := func(since time.Time) []string {
		var got []string
		err := s.Each(ctx, since, func(c output.StoredCertificate, err error) error {
			if err != nil || c.Cert == nil || c.StoredAt.IsZero() || c.Cert.EmailAddresses[0] != c.Address {
				t.Errorf("%s: %v, stored at %v", c.Address, err, c.StoredAt)
			}
			got = append(got, c.Address)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{"a-b@example.co", "a@example.co", "a@example.com", "b@example.com"}
	if got := walk(time.Time{}); !slices.Equal(got, want) {
		t.Errorf("every certificate: %q, want %q", got, want)
	}
	if got := walk(time.Now().Add(-time.Hour)); !slices.Equal(got, want[:3]) {
		t.Errorf("stored in the last hour: %q, want %q", got, want[:3])
	}
	stop := errors.New("stop")
	if err := s.Each(ctx, time.Time{}, func(output.StoredCertificate, error) error { return stop }); err != stop {
		t.Errorf("fn's error: Each returned %v", err)
	}
}
