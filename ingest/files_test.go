package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/verify"
)

func TestReadMessageFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name   string
		size   int
		reason verify.Reason // "" for no error
	}{
		{"empty", 0, ""},
		{"small", 100, ""},
		{"at the limit", 4096, ""},
		{"over the limit", 4097, verify.ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tc.name, " ", "-"), tc.size)
			raw, err := ReadMessageFile(path, 4096)
			if tc.reason != "" {
				if verify.ReasonOf(err) != tc.reason {
					t.Fatalf("err = %v, want %s", err, tc.reason)
				}
				// Identified by its bytes all the same.
				data, _ := os.ReadFile(path)
				if id, want := MessageIDOf(err), verify.MessageIDFor(&verify.Message{Raw: data}); id != want {
					t.Errorf("MessageIDOf = %q, want %q", id, want)
				}
				if want := fmt.Sprintf("message is %d bytes, the limit is 4096", tc.size); !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to say %q", err, want)
				}
				return
			}
			if err != nil || len(raw) != tc.size {
				t.Fatalf("read %d bytes, %v; want %d", len(raw), err, tc.size)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(dir, "missing")
		_, err := ReadMessageFile(path, 4096)
		var pe *fs.PathError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
			t.Fatalf("err = %v, want an open error wrapping fs.ErrNotExist", err)
		}
		if _, want := os.Open(path); err.Error() != want.Error() {
			t.Errorf("err = %q, want os.Open's %q", err, want)
		}
	})
	t.Run("huge", func(t *testing.T) {
		// A sparse file larger than what is read to identify it: read to
		// that bound only.
		path := filepath.Join(dir, "huge")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fsutil.MaxHashedBytes+4096); err != nil {
			t.Skip("no sparse file here:", err)
		}
		_, err := ReadMessageFile(path, 4096)
		if verify.ReasonOf(err) != verify.ReasonTooLarge || MessageIDOf(err) == "" ||
			!strings.Contains(err.Error(), fmt.Sprintf("message is over %d bytes", fsutil.MaxHashedBytes)) {
			t.Fatalf("err = %v (id %q), want message_too_large, identified, over %d bytes", err, MessageIDOf(err), fsutil.MaxHashedBytes)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no FIFOs")
		}
		path := filepath.Join(dir, "fifo")
		if err := mkfifo(path); err != nil {
			t.Skip("mkfifo:", err)
		}
		done := make(chan error, 1)
		go func() { _, err := ReadMessageFile(path, 4096); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("err = %v, want not a regular file", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("reading a FIFO without a writer did not return")
		}
	})
	t.Run("folder", func(t *testing.T) {
		if _, err := ReadMessageFile(dir, 4096); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v, want not a regular file", err)
		}
	})
}

// WalkMessages takes the .eml files of any folder and every file of a
// Maildir's cur/ and new/, never its tmp/, nor hidden files.
func TestWalkMessages(t *testing.T) {
	root := t.TempDir()
	files := map[string]bool{ // path under root: taken
		"a.eml":                  true,
		"b.txt":                  false,
		".hidden.eml":            false,
		"sub/c.EML":              true,
		"sub/.git/d.eml":         false,
		"Maildir/cur/1.mx:2,S":   true,
		"Maildir/cur/2.mx:2,S":   true,
		"Maildir/new/3.mx":       true,
		"Maildir/new/4.eml":      true,
		"Maildir/tmp/5.mx":       false,
		"Maildir/new/sub/6.mx":   false, // new/sub is no Maildir's new/
		"notmaildir/new/7.mx":    false, // no cur/ and tmp/ beside it
		"notmaildir/new/8.eml":   true,
		"notmaildir/cur/9.mx":    false,
		"notmaildir/other/10.mx": false,
	}
	var want []string
	for p, taken := range files {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if taken {
			want = append(want, path)
		}
	}
	os.MkdirAll(filepath.Join(root, "Maildir", "tmp"), 0o700)
	var got []string
	err := WalkMessages(context.Background(), []string{root}, func(path string) error {
		got = append(got, path)
		return nil
	}, func(path string, err error) { t.Errorf("%s: %v", path, err) })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// The walk names what it leaves out of a folder, and --all-files takes
// every regular file but hidden ones, a Maildir's tmp/ and links.
func TestWalkRulesSkippedAndAllFiles(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"a.eml", "notes.txt", "archive.mbox", ".hidden", "Maildir/cur/1.mx", "Maildir/tmp/2.mx", "Maildir/new/sub/3.mx"} {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "Maildir", "new"), 0o700)
	if err := os.Symlink(filepath.Join(root, "a.eml"), filepath.Join(root, "link.eml")); err != nil {
		t.Fatal(err)
	}
	walk := func(rules WalkRules) (taken []string, skipped map[string]SkipReason) {
		skipped = map[string]SkipReason{}
		rules.Skipped = func(path string, why SkipReason) {
			rel, _ := filepath.Rel(root, path)
			skipped[rel] = why
		}
		err := walkFiles(context.Background(), []string{root}, rules, func(path string) error {
			rel, _ := filepath.Rel(root, path)
			taken = append(taken, rel)
			return nil
		}, func(path string, err error) { t.Errorf("%s: %v", path, err) })
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(taken)
		return taken, skipped
	}
	taken, skipped := walk(WalkRules{})
	if want := []string{"Maildir/cur/1.mx", "a.eml"}; !slices.Equal(taken, want) {
		t.Errorf("taken %q, want %q", taken, want)
	}
	wantSkipped := map[string]SkipReason{"notes.txt": SkipNotMessage, "archive.mbox": SkipNotMessage,
		"Maildir/new/sub/3.mx": SkipNotMessage, "link.eml": SkipLink}
	if !maps.Equal(skipped, wantSkipped) {
		t.Errorf("skipped %v, want %v", skipped, wantSkipped)
	}
	taken, skipped = walk(WalkRules{AllFiles: true})
	if want := []string{"Maildir/cur/1.mx", "Maildir/new/sub/3.mx", "a.eml", "archive.mbox", "notes.txt"}; !slices.Equal(taken, want) {
		t.Errorf("--all-files: taken %q, want %q", taken, want)
	}
	if want := map[string]SkipReason{"link.eml": SkipLink}; !maps.Equal(skipped, want) {
		t.Errorf("--all-files: skipped %v, want %v", skipped, want)
	}
}

// BenchmarkWalkMessagesMaildir measures the walk of a Maildir's cur/ (scan
// of the archive), per message.
//
//	go test -run '^$' -bench WalkMessagesMaildir -benchmem -count 5 ./ingest/
func BenchmarkWalkMessagesMaildir(b *testing.B) {
	root := b.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	const n = 2000
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, "cur", fmt.Sprintf("%d.M%dP1Q%d.bench:2,S", 1780308000+i%600, i, i)), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		taken := 0
		err := WalkMessages(context.Background(), []string{root}, func(string) error {
			taken++
			return nil
		}, func(path string, err error) { b.Fatal(path, err) })
		if err != nil || taken != n {
			b.Fatal(taken, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

// Reserve is told the bytes about to be held before they are read, and not
// called for a file over the limit, which is never held.
func TestReadOptionsReserve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	var reserved []int64
	reserve := func(size int64) { reserved = append(reserved, size) }
	raw, err := ReadMessageFileWith(path, ReadOptions{MaxSize: 4096, Reserve: reserve})
	if err != nil || len(raw) != 1000 || !slices.Equal(reserved, []int64{1000}) {
		t.Fatalf("read %d bytes (%v), reserved %v; want 1000, [1000]", len(raw), err, reserved)
	}
	reserved = nil
	if _, err := ReadMessageFileWith(path, ReadOptions{MaxSize: 999, Reserve: reserve}); verify.ReasonOf(err) != verify.ReasonTooLarge || reserved != nil {
		t.Fatalf("over the limit: %v, reserved %v; want %s, nothing reserved", err, reserved, verify.ReasonTooLarge)
	}
}
