package revocation

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A status is fetched once per validity window, whatever the traffic:
// concurrent checks of a new certificate share one fetch, later ones
// within the window fetch nothing, and one after its nextUpdate fetches
// again.
func TestCacheHonoursNextUpdate(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	leaf := p.leaf(t, nil, nil)
	p.srv.Delay(200 * time.Millisecond) // so that the checks overlap
	var wg sync.WaitGroup
	results := make([]CertStatus, 50)
	for i := range results {
		wg.Go(func() { results[i] = c.Check(t.Context(), leaf, p.inter, at) })
	}
	wg.Wait()
	p.srv.Delay(0)
	for i, r := range results {
		if r.Status != Good {
			t.Fatalf("check %d: %+v", i, r)
		}
	}
	if n := p.srv.OCSPHits(); n != 1 {
		t.Fatalf("50 concurrent checks: %d OCSP requests, want 1", n)
	}

	// Within the window (which ends 7 days after thisUpdate, an hour
	// before at): from the cache.
	for _, when := range []time.Time{at, at.Add(time.Hour), at.Add(6 * 24 * time.Hour)} {
		if r := c.Check(t.Context(), leaf, p.inter, when); r.Status != Good || !r.Cached {
			t.Errorf("at %v: %+v, want good from the cache", when, r)
		}
	}
	if n := p.srv.OCSPHits(); n != 1 {
		t.Errorf("within the window: %d OCSP requests, want still 1", n)
	}

	// After nextUpdate: fetched again (the responder's clock moved too).
	later := at.Add(8 * 24 * time.Hour)
	p.clock.Store(&later)
	if r := c.Check(t.Context(), leaf, p.inter, later); r.Status != Good || r.Cached {
		t.Errorf("after nextUpdate: %+v, want good, fetched", r)
	}
	if n := p.srv.OCSPHits(); n != 2 {
		t.Errorf("after nextUpdate: %d OCSP requests, want 2", n)
	}
}

// An unknown status is not kept: the next check asks again.
func TestCacheKeepsNoUnknown(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, "", CheckerOptions{})
	leaf := p.leaf(t, nil, []string{})
	p.srv.Unknown(leaf.SerialNumber)
	for range 3 {
		if r := c.Check(t.Context(), leaf, p.inter, at); r.Status != Unknown {
			t.Fatalf("%+v", r)
		}
	}
	if n := p.srv.OCSPHits(); n != 3 {
		t.Errorf("%d OCSP requests, want 3", n)
	}
}

// The cache folder keeps statuses across Checkers (processes), revoked
// ones too, and the intermediates of the chains checked; a file that does
// not parse is a miss.
func TestCacheFolder(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	leaf, gone := p.leaf(t, nil, nil), p.leaf(t, nil, nil)
	p.srv.Revoke(gone.SerialNumber, at.Add(-time.Hour), 1)
	c := newChecker(t, dir, CheckerOptions{})
	if r := checkChain(c, p.chain(leaf), at); r.Status != Good {
		t.Fatal(r)
	}
	if r := checkChain(c, p.chain(gone), at); r.Status != Revoked {
		t.Fatal(r)
	}
	hits := p.srv.OCSPHits()
	c.Close()

	c = newChecker(t, dir, CheckerOptions{})
	if r := checkChain(c, p.chain(leaf), at); r.Status != Good || !r.Cached {
		t.Errorf("from the folder: %+v", r)
	}
	if r := checkChain(c, p.chain(gone), at); r.Status != Revoked || !r.Cached || r.Reason != 1 {
		t.Errorf("revoked, from the folder: %+v", r)
	}
	if n := p.srv.OCSPHits(); n != hits {
		t.Errorf("a second Checker on the folder fetched %d times", n-hits)
	}
	issuers := c.Issuers(leaf)
	if len(issuers) != 1 || !bytes.Equal(issuers[0].Raw, p.inter.Raw) {
		t.Errorf("Issuers(leaf) = %d certificates, want the intermediate", len(issuers))
	}
	if got := c.Issuers(p.root); len(got) != 0 {
		t.Errorf("Issuers(root): %d certificates, want none (the root is not kept)", len(got))
	}

	// Damaged files are misses, fetched again and replaced.
	files, _ := filepath.Glob(filepath.Join(dir, "s-*.json"))
	if len(files) != 3 {
		t.Fatalf("%d status files, want 3 (two leaves, the intermediate once)", len(files))
	}
	for _, f := range files {
		os.WriteFile(f, []byte("{not json"), 0o600)
	}
	c = newChecker(t, dir, CheckerOptions{})
	if r := checkChain(c, p.chain(leaf), at); r.Status != Good || r.Cached {
		t.Errorf("damaged file: %+v, want fetched", r)
	}
}

// No link in the cache folder is followed: a link where a status file
// goes is a miss, and is replaced by a file, its target untouched.
func TestCacheFolderLinks(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	leaf := p.leaf(t, nil, nil)
	c := newChecker(t, dir, CheckerOptions{})
	if r := c.Check(t.Context(), leaf, p.inter, at); r.Status != Good {
		t.Fatal(r)
	}
	name := filepath.Join(dir, "s-"+statusKey(p.inter, leaf.SerialNumber)+".json")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// The same status, elsewhere, linked from where it goes.
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	os.WriteFile(target, data, 0o600)
	os.Remove(name)
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
	c = newChecker(t, dir, CheckerOptions{})
	hits := p.srv.OCSPHits()
	if r := c.Check(t.Context(), leaf, p.inter, at); r.Status != Good || r.Cached {
		t.Errorf("through a link: %+v, want fetched", r)
	}
	if p.srv.OCSPHits() != hits+1 {
		t.Error("the link was followed: nothing fetched")
	}
	if fi, err := os.Lstat(name); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the link was not replaced by a file: %v %v", fi, err)
	}
	if after, _ := os.ReadFile(target); !bytes.Equal(after, data) {
		t.Error("the link's target was written")
	}
}

// The folder holds at most MaxCacheFiles statuses: beyond, what expired
// goes, and what is still valid stays in memory only.
func TestCacheFolderBounded(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	c := newChecker(t, dir, CheckerOptions{MaxCacheFiles: 3, MaxMemoryEntries: 2})
	for range 6 {
		if r := c.Check(t.Context(), p.leaf(t, nil, []string{}), p.inter, at); r.Status != Good {
			t.Fatal(r)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "s-*.json"))
	// The statuses of at (2026) are expired by the wall clock only if
	// the machine's clock is past their nextUpdate; either way, at most 3.
	if len(files) > 3 {
		t.Errorf("%d status files, want at most 3", len(files))
	}
	if n := len(c.mem.m); n > 2 {
		t.Errorf("%d statuses in memory, want at most 2", n)
	}
	for _, f := range files {
		if base := filepath.Base(f); !statusName.MatchString(strings.TrimSuffix(strings.TrimPrefix(base, "s-"), ".json")) {
			t.Errorf("file name %q", base)
		}
	}
}
