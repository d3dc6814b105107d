//go:build unix

package ingest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secretFile writes a file only its owner may read, outside any spool: what
// a link put in the spool must never let certharvest copy out.
func secretFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("From: SECRET-FIRST-LINE\r\n\r\nthe rest\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A symbolic link, a FIFO or a socket in new/ is never read: Load refuses
// it at once (ErrNotRegular, without the content of what a link names), and
// the watcher hands it over all the same, so that it is reported and
// archived rather than left in new/. A folder in new/ is no message.
func TestSpoolRefusesWhatIsNotAFile(t *testing.T) {
	s, err := OpenSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	newDir := filepath.Join(s.Dir(), SpoolNew)
	if err := os.Symlink(secretFile(t), filepath.Join(newDir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(newDir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(newDir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Mkdir(filepath.Join(newDir, "folder"), 0o700)

	for _, name := range []string{"link", "fifo", "sock"} {
		m, err := s.Load(name, 1<<20)
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: Load: %v, want %v", name, err, ErrNotRegular)
		}
		if m != nil && m.Raw != nil || err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: read: %q, %v", name, m.Raw, err)
		}
	}

	// Listed at start, and created while the watcher runs.
	w := NewMaildirWatcher(s.Dir(), WatchOptions{Settle: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	time.Sleep(50 * time.Millisecond)
	if err := os.Symlink("/nonexistent", filepath.Join(newDir, "dangling")); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < 4 {
		select {
		case name := <-w.Ready():
			got = append(got, name)
			w.Done(name)
		case <-timeout:
			t.Fatalf("handed over %v, want the link, the FIFO, the socket and the dangling link", got)
		}
	}
	slices.Sort(got)
	if want := []string{"dangling", "fifo", "link", "sock"}; !slices.Equal(got, want) {
		t.Errorf("handed over %v, want %v", got, want)
	}
	select {
	case name := <-w.Ready():
		t.Errorf("also handed over %s", name)
	case <-time.After(100 * time.Millisecond):
	}
}

// The spool's folders, its journal's lock and its context files are never
// followed through a symbolic link: the spool would read, write or delete
// in another folder, or lock and truncate another file.
func TestSpoolRefusesLinkedFolders(t *testing.T) {
	for _, sub := range []string{SpoolCur, SpoolNew, SpoolTmp, SpoolMeta, SpoolJournal} {
		t.Run(sub, func(t *testing.T) {
			dir, elsewhere := t.TempDir(), t.TempDir()
			if err := os.Symlink(elsewhere, filepath.Join(dir, sub)); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSpool(dir)
			if err == nil {
				s.Close()
				t.Fatalf("OpenSpool with %s/ a link to another folder: no error", sub)
			}
			if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
				t.Errorf("the spool wrote in the folder its %s/ links to: %v", sub, entries)
			}
		})
	}
	t.Run("lock", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, SpoolJournal), 0o700)
		target := secretFile(t)
		if err := os.Symlink(target, filepath.Join(dir, SpoolJournal, journalLock)); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenSpool(dir); !errors.Is(err, ErrNotRegular) {
			if err == nil {
				s.Close()
			}
			t.Errorf("OpenSpool with a linked lock file: %v, want %v", err, ErrNotRegular)
		}
	})
}

// A context file in meta/ that is a link is not read: the message keeps
// the context of a message an MTA delivered.
func TestSpoolContextLinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, SpoolMeta), 0o700)
	forged := filepath.Join(t.TempDir(), "forged.json")
	os.WriteFile(forged, []byte(`{"source":"forged"}`), 0o600)
	if err := os.Symlink(forged, filepath.Join(dir, SpoolMeta, "m1.json")); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(filepath.Join(dir, SpoolNew, "m1"), testMessage(1), 0o600)
	m, err := s.Load("m1", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "maildir" {
		t.Errorf("source %q: the linked context file was read", m.Source)
	}
}

// ReadMessageFileWith follows a link only without NoFollow: scan follows
// the paths the operator names, not what it finds in a folder.
func TestReadMessageFileNoFollow(t *testing.T) {
	link := filepath.Join(t.TempDir(), "link.eml")
	if err := os.Symlink(secretFile(t), link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMessageFileWith(link, ReadOptions{MaxSize: 1 << 20, NoFollow: true}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("NoFollow: %v, want %v", err, ErrNotRegular)
	}
	if raw, err := ReadMessageFileWith(link, ReadOptions{MaxSize: 1 << 20}); err != nil || !strings.Contains(string(raw), "SECRET") {
		t.Errorf("a link named by the operator: %q, %v", raw, err)
	}
}

// The walk of a folder never follows a symbolic link in it, to a file or a
// folder, in a Maildir or not; a path given that is a link is followed.
func TestWalkMessagesLinks(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(root, "a.eml"), testMessage(1), 0o600)
	os.WriteFile(filepath.Join(elsewhere, "c.eml"), testMessage(3), 0o600)
	secret := secretFile(t)
	os.Symlink(secret, filepath.Join(root, "b.eml"))
	os.Symlink(elsewhere, filepath.Join(root, "linked"))
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, "md", sub), 0o700)
	}
	os.WriteFile(filepath.Join(root, "md", "cur", "1.x:2,S"), testMessage(2), 0o600)
	os.Symlink(secret, filepath.Join(root, "md", "new", "2.x"))
	os.Symlink(elsewhere, filepath.Join(root, "md", "linkedmd"))
	rootLink := filepath.Join(t.TempDir(), "root")
	os.Symlink(root, rootLink)

	walk := func(paths ...string) []string {
		var got []string
		err := WalkMessages(context.Background(), paths, func(path string) error {
			got = append(got, path)
			return nil
		}, func(path string, err error) { t.Errorf("%s: %v", path, err) })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{filepath.Join(root, "a.eml"), filepath.Join(root, "md", "cur", "1.x:2,S")}
	if got := walk(root); !slices.Equal(got, want) {
		t.Errorf("walk of a folder: %v, want %v", got, want)
	}
	want = []string{filepath.Join(rootLink, "a.eml"), filepath.Join(rootLink, "md", "cur", "1.x:2,S")}
	if got := walk(rootLink); !slices.Equal(got, want) {
		t.Errorf("walk of a link to a folder, given: %v, want %v", got, want)
	}
	if got := walk(filepath.Join(root, "b.eml")); !slices.Equal(got, []string{filepath.Join(root, "b.eml")}) {
		t.Errorf("a link to a file, given: %v", got)
	}
}
