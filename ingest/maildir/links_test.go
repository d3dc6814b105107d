//go:build unix

package maildir

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

	"github.com/certharvest/certharvest/ingest"
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

// A symbolic link, a FIFO or a socket in new/ is never read: LoadFile refuses
// it at once (ingest.ErrNotRegular, without the content of what a link names),
// and the watcher hands it over all the same, so that it is reported and
// archived rather than left in new/. A folder in new/ is no message.
func TestSpoolRefusesWhatIsNotAFile(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	newDir := filepath.Join(s.Dir(), SubNew)
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
		m, err := load(s, name, 1<<20)
		if !errors.Is(err, ingest.ErrNotRegular) {
			t.Errorf("%s: LoadFile: %v, want %v", name, err, ingest.ErrNotRegular)
		}
		if m != nil && m.Raw != nil || err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: read: %q, %v", name, m.Raw, err)
		}
	}

	// Listed at start, and created while the watcher runs.
	w := NewWatcher(s.Dir(), WatchOptions{Settle: 5 * time.Millisecond})
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
	for _, sub := range []string{SubCur, SubNew, SubTmp, SubMeta, SubJournal} {
		t.Run(sub, func(t *testing.T) {
			dir, elsewhere := t.TempDir(), t.TempDir()
			if err := os.Symlink(elsewhere, filepath.Join(dir, sub)); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open with %s/ a link to another folder: no error", sub)
			}
			if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
				t.Errorf("the spool wrote in the folder its %s/ links to: %v", sub, entries)
			}
		})
	}
	t.Run("lock", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, SubJournal), 0o700)
		target := secretFile(t)
		if err := os.Symlink(target, filepath.Join(dir, SubJournal, journalLock)); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(dir, Options{}); !errors.Is(err, ingest.ErrNotRegular) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open with a linked lock file: %v, want %v", err, ingest.ErrNotRegular)
		}
	})
}

// A context file in meta/ that is a link is not read: the message keeps
// the context of a message an MTA delivered.
func TestSpoolContextLinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, SubMeta), 0o700)
	forged := filepath.Join(t.TempDir(), "forged.json")
	os.WriteFile(forged, []byte(`{"source":"forged"}`), 0o600)
	if err := os.Symlink(forged, filepath.Join(dir, SubMeta, "m1.json")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(filepath.Join(dir, SubNew, "m1"), testMessage(1), 0o600)
	m, err := load(s, "m1", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "maildir" {
		t.Errorf("source %q: the linked context file was read", m.Source)
	}
}
