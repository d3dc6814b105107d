package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/verify"
)

const oneMbox = "From a@example.org Mon Jun  1 00:00:00 2026\nSubject: 1\n\nx\n\nFrom b@example.org Mon Jun  1 00:00:00 2026\nSubject: 2\n\ny\n"

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

func writeFiles(t testing.TB, root string, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var kindNames = map[fileKind]string{kindMessage: "message", kindGzip: "gzip", kindMbox: "mbox", kindGzipMbox: "gzip-mbox"}

// In a folder: .eml and .eml.gz by name; .mbox, .mbx (and compressed) and
// files without an extension (Thunderbird's folders) if they begin with a
// "From " line; other files only with --all-files, by their first bytes.
func TestWalkArchiveKinds(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"a.eml":                 []byte("Subject: a\n\nx\n"),
		"b.eml.gz":              gz(t, []byte("Subject: b\n\nx\n")),
		"c.mbox":                []byte(oneMbox),
		"d.mbox":                []byte("x"), // no mbox: as before, not taken
		"e.mbox.gz":             gz(t, []byte(oneMbox)),
		"f.MBX":                 []byte(oneMbox),
		"TB/Inbox":              []byte(oneMbox),
		"TB/Inbox.msf":          []byte("// <!-- <mdb:mork"),
		"TB/Inbox.sbd/Archives": []byte(oneMbox),
		"TB/popstate":           []byte("# POP3 State File"),
		"TB/Empty":              nil,
		"g.gz":                  gz(t, []byte(oneMbox)),
		"h.txt":                 []byte(oneMbox),
		"i.gz":                  gz(t, []byte("Subject: i\n\nx\n")),
		"Maildir/cur/1.mx:2,S":  []byte(oneMbox), // a Maildir's file: one message, as before
		"Maildir/new/x":         nil,
		"Maildir/tmp/y":         nil,
	})
	walk := func(rules WalkRules) (taken map[string]string, skipped []string) {
		taken = map[string]string{}
		rules.Skipped = func(path string, _ SkipReason) {
			rel, _ := filepath.Rel(root, path)
			skipped = append(skipped, rel)
		}
		err := walkKinds(context.Background(), []string{root}, rules, func(path string, kind fileKind) error {
			rel, _ := filepath.Rel(root, path)
			taken[rel] = kindNames[kind]
			return nil
		}, func(path string, err error) { t.Errorf("%s: %v", path, err) })
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(skipped)
		return taken, skipped
	}
	taken, skipped := walk(WalkRules{})
	want := map[string]string{"a.eml": "message", "b.eml.gz": "gzip", "c.mbox": "mbox", "e.mbox.gz": "gzip-mbox",
		"f.MBX": "mbox", "TB/Inbox": "mbox", "TB/Inbox.sbd/Archives": "mbox", "Maildir/cur/1.mx:2,S": "message", "Maildir/new/x": "message"}
	if !maps.Equal(taken, want) {
		t.Errorf("taken %v\nwant %v", taken, want)
	}
	if want := []string{"TB/Empty", "TB/Inbox.msf", "TB/popstate", "d.mbox", "g.gz", "h.txt", "i.gz"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	taken, skipped = walk(WalkRules{AllFiles: true})
	maps.Copy(want, map[string]string{"d.mbox": "message", "TB/Inbox.msf": "message", "TB/popstate": "message", "TB/Empty": "message",
		"g.gz": "gzip-mbox", "h.txt": "mbox", "i.gz": "gzip"})
	if !maps.Equal(taken, want) || len(skipped) != 0 {
		t.Errorf("--all-files: taken %v\nwant %v\nskipped %q", taken, want, skipped)
	}
}

// A file named is taken whatever its name: an .eml file as a message, as
// always; .mbox and .eml.gz by name; any other by its first bytes.
func TestNamedKind(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"a.eml":      []byte(oneMbox), // named .eml: one message, as before
		"b":          []byte(oneMbox),
		"c":          gz(t, []byte(oneMbox)),
		"d":          gz(t, []byte("Subject: d\n\n")),
		"e":          []byte("Subject: e\n\n"),
		"f.mbox":     nil,
		"g.eml.gz":   []byte("not gzip"),
		"h.mbox.gz":  []byte("not gzip"),
		"i.txt":      []byte(oneMbox),
		"j.unreadab": nil,
	})
	os.Chmod(filepath.Join(root, "j.unreadab"), 0)
	want := map[string]string{"a.eml": "message", "b": "mbox", "c": "gzip-mbox", "d": "gzip", "e": "message", "f.mbox": "mbox",
		"g.eml.gz": "gzip", "h.mbox.gz": "gzip-mbox", "i.txt": "mbox", "j.unreadab": "message", "missing": "message"}
	for name, k := range want {
		if got := kindNames[namedKind(filepath.Join(root, name))]; got != k {
			t.Errorf("%s: %s, want %s", name, got, k)
		}
	}
}

// CountMessages counts an mbox's messages, as the walk will report them:
// one line for a file that is no mbox.
func TestCountMessagesMbox(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"a.eml":     []byte("x"),
		"b.mbox":    []byte(oneMbox),
		"c.mbox.gz": gz(t, []byte(oneMbox+oneMbox)),
		"d.mbox.gz": []byte("not gzip"),
	})
	paths := []string{root, filepath.Join(root, "d.mbox.gz"), filepath.Join(root, "missing")}
	n, err := CountMessages(context.Background(), paths, WalkRules{})
	if err != nil || n != 1+2+4+1+1 {
		t.Errorf("counted %d (%v), want 9", n, err)
	}
	w := NewWalk(paths, WalkOptions{})
	got := 0
	for {
		id, err := w.Next(context.Background())
		if err != nil {
			break
		}
		w.Load(context.Background(), id, queue.LoadOptions{MaxSize: 1 << 20})
		got++
	}
	if got != n {
		t.Errorf("the walk gave %d messages, CountMessages %d", got, n)
	}
}

// The walk reads an mbox ahead of the engine only as far as its read-ahead:
// memory stays flat whatever the file's size. Load hands each message over
// with its place, counted in the engine's budget, and gives the read-ahead
// back.
func TestWalkMboxReadAhead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.mbox")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := mbox.NewWriter(f, mbox.RD)
	body := strings.Repeat("0123456789abcdef\n", 1<<15) // 544 KiB
	const n = 100                                       // 54 MB
	for i := range n {
		if err := w.Write("a@example.org", time.Now(), fmt.Appendf(nil, "Subject: %d\n\n%s", i, body)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	walk := NewWalk([]string{path}, WalkOptions{})
	ctx := context.Background()
	id, err := walk.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Give the walk time to read as far as it may.
	deadline := time.Now().Add(5 * time.Second)
	for walk.ahead.Used() < int64(DefaultMboxReadAhead-len(body)-100) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if used := walk.ahead.Used(); used > DefaultMboxReadAhead {
		t.Errorf("read ahead %d bytes, more than %d", used, DefaultMboxReadAhead)
	}
	var reserved int64
	m, err := walk.Load(ctx, id, queue.LoadOptions{MaxSize: 1 << 20, Reserve: func(n int64) { reserved += n }})
	if err != nil || m.MboxIndex != 1 || m.MboxOffset != 0 || int64(len(m.Raw)) != reserved || !strings.HasPrefix(string(m.Raw), "Subject: 0\n") {
		t.Fatalf("message 1: %v, index %d, offset %d, %d bytes, %d reserved", err, m.MboxIndex, m.MboxOffset, len(m.Raw), reserved)
	}
	count := 1
	for {
		id, err := walk.Next(ctx)
		if err != nil {
			break
		}
		m, err := walk.Load(ctx, id, queue.LoadOptions{MaxSize: 1 << 20})
		if err != nil || m.MboxIndex != count+1 {
			t.Fatalf("message %d: %v, index %d", count+1, err, m.MboxIndex)
		}
		count++
	}
	if count != n || walk.ahead.Used() != 0 {
		t.Errorf("%d messages, %d bytes still held", count, walk.ahead.Used())
	}
}

// Each message of an mbox that cannot be read has an id of its own: the
// read_error's id is of the path and the index (engine.ReadErrorResult),
// and one too large is identified by its bytes and index.
func TestWalkMboxErrorsPlaced(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	w := mbox.NewWriter(&b, mbox.CL2)
	for i := range 3 {
		w.Write("", time.Now(), fmt.Appendf(nil, "Subject: %d\n\n%s\n", i, strings.Repeat("x", 99*i)))
	}
	lied := strings.Replace(b.String(), "Content-Length: 100\n", "Content-Length: 99\n", 1)
	path := filepath.Join(dir, "a.mbox")
	if err := os.WriteFile(path, []byte(lied), 0o600); err != nil {
		t.Fatal(err)
	}
	walk := NewWalk([]string{path}, WalkOptions{Rules: WalkRules{MaxSize: 150}})
	var got []string
	for {
		id, err := walk.Next(context.Background())
		if err != nil {
			break
		}
		m, err := walk.Load(context.Background(), id, queue.LoadOptions{MaxSize: 150})
		got = append(got, fmt.Sprintf("%d:%s:%s", m.MboxIndex, verify.ReasonOf(err), MessageIDOf(err)))
		if m.MboxIndex == 2 && (err == nil || !strings.Contains(err.Error(), "a.mbox: message 2 at byte 76: its Content-Length, 99, does not end it")) {
			t.Errorf("message 2: %v", err)
		}
	}
	// internal_error: the engine reports it read_error (ReadErrorResult).
	if len(got) != 3 || !strings.HasPrefix(got[0], "1:ok:") || !strings.HasPrefix(got[1], "2:internal_error:") || !strings.HasPrefix(got[2], "3:message_too_large:") || strings.HasSuffix(got[2], ":") {
		t.Errorf("%q", got)
	}
}
