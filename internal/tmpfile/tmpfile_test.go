package tmpfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCreateLink(t *testing.T) {
	dir := t.TempDir()
	if !Supported(dir) {
		if runtime.GOOS == "linux" {
			t.Logf("O_TMPFILE unsupported in %s: the callers use named files", dir)
		}
		if _, err := Create(dir, 0o644); err == nil && runtime.GOOS != "linux" {
			t.Fatal("Create succeeded where unsupported")
		}
		return
	}
	f, err := Create(dir, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("complete"); err != nil {
		t.Fatal(err)
	}
	// Unnamed until linked: the folder is empty.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("folder holds %d entries before the link", len(entries))
	}
	path := filepath.Join(dir, "final")
	if err := Link(f, path); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "complete" {
		t.Fatalf("linked file: %q, %v", data, err)
	}
	// Never replaces.
	g, err := Create(dir, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.WriteString("other")
	if err := Link(g, path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("linking over an existing file: %v, want fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "complete" {
		t.Fatalf("existing file changed to %q", data)
	}
	// The probe leaves nothing behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("folder holds %d entries, want 1", len(entries))
	}
}
