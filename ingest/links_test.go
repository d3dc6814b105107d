//go:build unix

package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

func testMessage(i int) []byte {
	return fmt.Appendf(nil, "From: a%d@example.com\r\n\r\nmessage %d\r\n", i, i)
}
