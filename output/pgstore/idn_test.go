package pgstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Internationalised addresses keep their normalised form in PostgreSQL as
// in the folder (NFC UTF-8 local part, A-label domain, byte for byte: jörg@
// and Jörg@ are two), in address order by bytes, as the folder lists them,
// and the export writes the folder store's file names.
func TestStoreInternationalised(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	addrs := []string{"Jörg@xn--bcher-kva.example", "anna@xn--bcher-kva.example", "jörg@xn--bcher-kva.example", "李雷@xn--r8jz45g.jp"}
	certs := map[string]bool{}
	for i, addr := range addrs {
		c := leaf(t, "x@example.com", t0.Add(time.Duration(i)*time.Hour))
		if res, err := s.Store(ctx, addr, c); err != nil || res.Action != verify.ActionStored {
			t.Fatalf("%s: %+v, %v", addr, res, err)
		}
		certs[string(c.Raw)] = true
	}
	for _, bad := range []string{"jörg@bücher.example", "jo\u0308rg@xn--bcher-kva.example"} {
		if _, err := s.Store(ctx, bad, leaf(t, "x@example.com", t0)); err == nil {
			t.Errorf("%q stored", bad)
		}
	}
	got, err := s.Addresses(ctx)
	if err != nil || !slices.Equal(got, []string{"Jörg@xn--bcher-kva.example", "anna@xn--bcher-kva.example", "jörg@xn--bcher-kva.example", "李雷@xn--r8jz45g.jp"}) {
		t.Errorf("Addresses %q, %v", got, err)
	}
	var each []string
	if err := s.Each(ctx, time.Time{}, func(c output.StoredCertificate, err error) error {
		each = append(each, c.Address)
		return err
	}); err != nil || !slices.IsSorted(each) || len(each) != len(addrs) {
		t.Errorf("Each %q, %v", each, err)
	}
	dir := t.TempDir()
	if st, err := s.Export(ctx, dir); err != nil || st.Written != len(addrs) {
		t.Fatalf("Export %+v, %v", st, err)
	}
	for _, addr := range addrs {
		if _, err := os.Stat(filepath.Join(dir, addr+".crt")); err != nil {
			t.Error(err)
		}
	}
	a, errA := s.Load(ctx, "jörg@xn--bcher-kva.example")
	b, errB := s.Load(ctx, "Jörg@xn--bcher-kva.example")
	if errA != nil || errB != nil || a.Equal(b) || !certs[string(a.Raw)] || !certs[string(b.Raw)] {
		t.Errorf("jörg@ and Jörg@: %v %v", errA, errB)
	}
}
