package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// openInFlight opens the in-flight log of s as a new start of the service
// does. The *InFlight of the previous "run", when not closed, is left as a
// crash leaves it: what it wrote is in the file (the page cache), and no
// more.
func openInFlight(t *testing.T, s *Spool) (*InFlight, []Suspect) {
	t.Helper()
	l, suspects, err := s.OpenInFlight(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		if l.f != nil {
			l.f.Close()
		}
		l.mu.Unlock()
	})
	return l, suspects
}

// The in-flight log counts, for each message, the consecutive crashes it
// was in flight in: one more for each crash that finds it taken and not
// finished; a crash in which it was not in flight starts it again; a clean
// stop changes no count; a verification that ends clears it.
func TestInFlightCountsConsecutiveCrashes(t *testing.T) {
	s := testSpool(t)
	type run struct {
		taken, finished []string
		clean           bool
		want            []Suspect // at the start after this run
	}
	runs := []run{
		// a and b in flight at a crash, c finished.
		{taken: []string{"a", "b", "c"}, finished: []string{"c"}, want: []Suspect{{"a", 1}, {"b", 1}}},
		// Verified alone, a crashes again; b was not taken: it starts again.
		{taken: []string{"a"}, want: []Suspect{{"a", 2}}},
		// A clean stop before a was taken: its count stays.
		{clean: true, want: []Suspect{{"a", 2}}},
		// Taken again and crashing: the third crash.
		{taken: []string{"a", "d"}, want: []Suspect{{"a", 3}, {"d", 1}}},
		// Quarantined (finished); d verified and done; e in flight at a crash.
		{taken: []string{"a", "d", "e"}, finished: []string{"a", "d"}, want: []Suspect{{"e", 1}}},
		// A crash with nothing in flight: every count starts again.
		{want: nil},
		// A clean stop with nothing pending: nothing.
		{taken: []string{"f"}, finished: []string{"f"}, clean: true, want: nil},
	}
	l, suspects := openInFlight(t, s)
	if len(suspects) != 0 {
		t.Fatalf("a new spool has suspects %v", suspects)
	}
	for i, r := range runs {
		for _, n := range r.taken {
			l.Taken(n)
		}
		l.Finished(r.finished...)
		if r.clean {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		l, suspects = openInFlight(t, s)
		if len(suspects) == 0 {
			suspects = nil
		}
		if !reflect.DeepEqual(suspects, r.want) {
			t.Fatalf("after run %d: suspects %v, want %v", i+1, suspects, r.want)
		}
	}
}

// The names are written so that any file name reads back as itself, and a
// log damaged or written by hand yields only names of files in new/ (never
// a path out of it).
func TestInFlightLogNames(t *testing.T) {
	s := testSpool(t)
	l, _ := openInFlight(t, s)
	odd := []string{"with\nnewline", `"quoted"`, "plain.M1P2Q3.host", "tab\there", `back\slash`}
	for _, n := range odd {
		l.Taken(n)
	}
	_, suspects := openInFlight(t, s)
	var got []string
	for _, sus := range suspects {
		got = append(got, sus.Name)
	}
	for _, n := range odd {
		if !strings.Contains(strings.Join(got, "\x00"), n) {
			t.Errorf("%q did not read back: %q", n, got)
		}
	}

	path := filepath.Join(s.Dir(), InFlightLog)
	damaged := "crashes 2 ../../etc/passwd\ncrashes 2 a/b\n+..\n+.\n+\ncrashes x y\ncrashes -1 z\n+\"unterminated\n" +
		"crashes 2 ok1\n+ok2\n+cut-by-a-cra"
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	_, suspects = openInFlight(t, s)
	// ok1 was not in flight at that "crash": it starts again, as the
	// rule says; the last line, cut, is not read.
	want := []Suspect{{"ok2", 1}}
	if !reflect.DeepEqual(suspects, want) {
		t.Errorf("suspects of a damaged log: %v, want %v", suspects, want)
	}
}

// A link planted at the log, or at its temporary name (the spool is
// group-writable for the MTA), is never read nor written through: the log
// is made a regular file of its own, and the link's target is untouched.
func TestInFlightLogNotFollowed(t *testing.T) {
	for _, tt := range []struct {
		name, link string // link: where in the spool the link goes
		old        string // the log's content before, if any
		suspects   int
	}{
		{"log", InFlightLog, "", 0},
		// A log to rewrite at open, through the temporary name.
		{"temporary name", InFlightLog + ".tmp", "+old-suspect\n", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpool(t)
			secret := filepath.Join(t.TempDir(), "secret")
			const content = "+secret-line\ncrashes 2 other-secret\n"
			if err := os.WriteFile(secret, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(s.Dir(), InFlightLog)
			if tt.old != "" {
				os.WriteFile(path, []byte(tt.old), 0o600)
			}
			if err := os.Symlink(secret, filepath.Join(s.Dir(), tt.link)); err != nil {
				t.Fatal(err)
			}
			l, suspects := openInFlight(t, s)
			if len(suspects) != tt.suspects {
				t.Errorf("suspects %v, want %d (none read through a link)", suspects, tt.suspects)
			}
			l.Taken("m1")
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(secret); string(data) != content {
				t.Errorf("the link's target was written: %q", data)
			}
			if info, err := os.Lstat(path); err != nil || !info.Mode().IsRegular() {
				t.Errorf("the log is not a regular file of its own: %v, %v", info, err)
			}
		})
	}
}

// The log stays small however many messages pass: past maxInFlightLog it
// is rewritten with only the suspects not yet verified and the messages in
// flight, which a crash then still finds, under appends from many
// goroutines at once.
func TestInFlightLogBounded(t *testing.T) {
	s := testSpool(t)
	path := filepath.Join(s.Dir(), InFlightLog)
	os.WriteFile(path, []byte("+old-suspect\n"), 0o600) // a crash left it in flight
	l, suspects := openInFlight(t, s)
	if !reflect.DeepEqual(suspects, []Suspect{{"old-suspect", 1}}) {
		t.Fatalf("suspects %v", suspects)
	}
	l.Taken("stays-in-flight")
	const workers, each = 8, 4000 // about 3 MB of log lines in all
	var wg sync.WaitGroup
	maxSize := int64(0)
	var mu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("%d.M%06dP%dQ%d.mx.example.org", 1780308000+i, i, w, i)
				l.Taken(name)
				l.Finished(name)
				if i%256 == 0 {
					info, err := os.Stat(path)
					if err == nil {
						mu.Lock()
						maxSize = max(maxSize, info.Size())
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if limit := int64(maxInFlightLog + 64<<10); maxSize > limit {
		t.Errorf("the log reached %d bytes, want at most %d", maxSize, limit)
	}
	if maxSize == 0 {
		t.Fatal("the log was never seen")
	}
	// A crash now: the message in flight and the suspect not verified.
	_, suspects = openInFlight(t, s)
	want := []Suspect{{"stays-in-flight", 1}}
	if !reflect.DeepEqual(suspects, want) {
		t.Errorf("after the rewrites and a crash: suspects %v, want %v", suspects, want)
	}
}

// A compaction keeps the suspects of the last crash that were not verified
// since, with their counts.
func TestInFlightCompactionKeepsSuspects(t *testing.T) {
	s := testSpool(t)
	l, _ := openInFlight(t, s)
	l.Taken("p")
	l, _ = openInFlight(t, s) // crash: p 1
	l.Taken("p")
	l, _ = openInFlight(t, s) // crash: p 2
	name := strings.Repeat("x", 200)
	for range 2 * maxInFlightLog / len(name) { // twice the log's bound
		l.Taken(name)
		l.Finished(name)
	}
	if size := l.size.Load(); size > maxInFlightLog {
		t.Fatalf("the log holds %d bytes, not compacted", size)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, suspects := openInFlight(t, s)
	if want := []Suspect{{"p", 2}}; !reflect.DeepEqual(suspects, want) {
		t.Errorf("suspects %v, want %v", suspects, want)
	}
}

// A rewrite that fails (here its new file cannot be created) is not tried
// again at every batch, but once the log has grown by its bound again;
// meanwhile the log goes on recording.
func TestInFlightRewriteFailureBacksOff(t *testing.T) {
	s := testSpool(t)
	l, _ := openInFlight(t, s)
	path := filepath.Join(s.Dir(), InFlightLog)
	// In the rewrite's way: a folder that is not empty, which the rewrite
	// cannot remove as it removes a file or a link there.
	if err := os.MkdirAll(filepath.Join(path+".tmp", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("y", 200)
	grow := func() {
		for range maxInFlightLog / len(name) / 2 {
			l.Taken(name)
			l.Finished(name)
		}
	}
	grow()
	grow()
	if l.size.Load() <= maxInFlightLog || l.compact.Load() <= maxInFlightLog {
		t.Fatalf("size %d, next rewrite at %d: the failed rewrite was not seen", l.size.Load(), l.compact.Load())
	}
	l.Taken("in-flight")
	if err := os.RemoveAll(path + ".tmp"); err != nil {
		t.Fatal(err)
	}
	grow()
	grow()
	if l.size.Load() > maxInFlightLog {
		t.Errorf("size %d: not rewritten once the way was clear", l.size.Load())
	}
	if _, suspects := openInFlight(t, s); !reflect.DeepEqual(suspects, []Suspect{{"in-flight", 1}}) {
		t.Errorf("suspects %v, want in-flight", suspects)
	}
}

// BenchmarkInFlight is the in-flight log's cost per message: taken, then
// finished, two write(2)s, and its share of the log's rewrites.
func BenchmarkInFlight(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, _, err := s.OpenInFlight(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	name := "1780308000.M944436P659Q1.mx1.example.org"
	b.ReportAllocs()
	for b.Loop() {
		l.Taken(name)
		l.Finished(name)
	}
}

// Quarantine moves a message from new/ to quarantine/ with its context,
// and refuses a name that is not a file of new/.
func TestSpoolQuarantine(t *testing.T) {
	for _, xattr := range []bool{true, false} {
		t.Run(fmt.Sprintf("xattr=%v", xattr), func(t *testing.T) {
			s := testSpool(t)
			s.noXattr.Store(!xattr)
			raw := []byte("From: a@example.com\r\n\r\nbody\r\n")
			names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: raw, Envelope: verify.Envelope{Source: "smtp", Received: time.Now()}})
			if err != nil {
				t.Fatal(err)
			}
			path, err := s.Quarantine(names[0])
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(s.Dir(), SubQuarantine, names[0]); path != want {
				t.Errorf("path %s, want %s", path, want)
			}
			if data, err := os.ReadFile(path); err != nil || string(data) != string(raw) {
				t.Errorf("quarantined file: %q, %v", data, err)
			}
			if _, err := os.Stat(filepath.Join(s.Dir(), SubNew, names[0])); !os.IsNotExist(err) {
				t.Errorf("still in new/: %v", err)
			}
			if _, err := os.Stat(s.metaPath(names[0])); !os.IsNotExist(err) {
				t.Errorf("context file left in meta/: %v", err)
			}
		})
	}
	s := testSpool(t)
	for _, bad := range []string{"../x", "..", "", "a/b"} {
		if _, err := s.Quarantine(bad); err == nil {
			t.Errorf("Quarantine(%q) accepted", bad)
		}
	}
	// quarantine/ as a symbolic link to a folder outside the spool.
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(s.Dir(), SubQuarantine)); err != nil {
		t.Fatal(err)
	}
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: []byte("From: a@example.com\r\n\r\nx\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(names[0]); err == nil {
		t.Error("quarantined through a symbolic link")
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the message left the spool: %v", entries)
	}
}
