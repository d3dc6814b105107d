package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSpoolOldestNew(t *testing.T) {
	spool, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	newDir := filepath.Join(spool.Dir(), SubNew)
	put := func(name string, mtime time.Time) {
		t.Helper()
		path := filepath.Join(newDir, name)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}

	oldest, complete, err := spool.OldestNew(0)
	if err != nil || !oldest.IsZero() || !complete {
		t.Fatalf("empty new/: %v %v %v, want the zero time", oldest, complete, err)
	}
	recent := time.Now().Add(-time.Minute).Truncate(time.Second)
	// The Maildir name's time counts, not the file's.
	put("1700000000.M1P2Q3.mx", recent)
	put("1600000000.M1P2Q4.mx", recent)
	// A name without a time: its modification time.
	put("written-in-place", time.Unix(1650000000, 0))
	// Not messages.
	put(".1000000000.probe", recent)
	put("1500000000", recent) // no dot: not a Maildir name, so its mtime
	for _, tt := range []struct {
		limit    int
		complete bool
	}{{0, true}, {5, true}, {100, true}} {
		oldest, complete, err := spool.OldestNew(tt.limit)
		if err != nil || !oldest.Equal(time.Unix(1600000000, 0)) || complete != tt.complete {
			t.Errorf("limit %d: %v complete=%v %v, want %v complete=%v", tt.limit, oldest, complete, err,
				time.Unix(1600000000, 0), tt.complete)
		}
	}
	// A limit below the number of entries reads only that many.
	if _, complete, err := spool.OldestNew(2); err != nil || complete {
		t.Errorf("limit 2 of 5 entries: complete=%v %v", complete, err)
	}
}

func TestMaildirNameTime(t *testing.T) {
	for _, tt := range []struct {
		name string
		want int64 // 0: none
	}{
		{"1780308000.M1P42Q7.mx", 1780308000},
		{"1.x", 1},
		{"0.x", 0},
		{"1780308000", 0},
		{".1780308000.x", 0},
		{"abc.def", 0},
		{"99999999999999999999999.x", 0},
	} {
		got, ok := maildirNameTime(tt.name)
		if ok != (tt.want != 0) || ok && got.Unix() != tt.want {
			t.Errorf("maildirNameTime(%q) = %v, %v; want %d", tt.name, got, ok, tt.want)
		}
	}
}

// BenchmarkSpoolOldestNew lists a new/ of 10,000 Maildir-named messages, as
// a scrape of the metrics does (at most every 5 seconds).
func BenchmarkSpoolOldestNew(b *testing.B) {
	spool, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { spool.Close() })
	for i := range 10_000 {
		name := fmt.Sprintf("%d.M%dP1Q%d.bench", 1780308000+i%600, i, i)
		if err := os.WriteFile(filepath.Join(spool.Dir(), SubNew, name), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, complete, err := spool.OldestNew(0); err != nil || !complete {
			b.Fatal(complete, err)
		}
	}
}
