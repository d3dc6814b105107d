package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRefusesFolderOfFiles: Open refuses a folder that holds files but
// none of a Maildir's folders, and makes nothing in it; a missing folder, an
// empty one, one with only folders or dot files, or a partial Maildir, it
// opens.
func TestOpenRefusesFolderOfFiles(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files ...string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			path := filepath.Join(dir, f)
			if f[len(f)-1] == '/' {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	eml := mk("eml", "a.eml")
	if _, err := Open(eml, Options{}); !errors.Is(err, ErrNotMaildir) {
		t.Fatalf("Open(folder of .eml files) = %v, want ErrNotMaildir", err)
	}
	if entries, _ := os.ReadDir(eml); len(entries) != 1 {
		t.Errorf("Open made folders in the folder it refused: %v", entries)
	}
	for _, dir := range []string{filepath.Join(root, "missing"), mk("empty"), mk("volume", "lost+found/", ".keep"), mk("partial", "new/", "a")} {
		s, err := Open(dir, Options{})
		if err != nil {
			t.Errorf("Open(%s): %v", dir, err)
			continue
		}
		s.Close()
	}
}
