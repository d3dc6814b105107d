package fsutil

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// A file that grows after its size was taken is read to its end, never
// past the limit.
func TestReadFileGrowing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// As if fstat had said 100 bytes: readAll must go on to the end.
	if raw, err := readAllFile(t, f, 100, 1<<20); err != nil || len(raw) != 5000 {
		t.Errorf("read %d bytes, %v; want 5000", len(raw), err)
	}
	_, err = readAllFile(t, f, 100, 4999)
	if verify.ReasonOf(err) != verify.ReasonTooLarge {
		t.Errorf("err = %v, want %s", err, verify.ReasonTooLarge)
	}
	data, _ := os.ReadFile(path)
	if id, want := MessageIDOf(err), verify.MessageIDFor(&verify.Message{Raw: data}); id != want {
		t.Errorf("MessageIDOf = %q, want %q (the whole file, from its start)", id, want)
	}
}

// StatAt tells a regular file's size and time, relative to an open folder
// or by path.
func TestStatAt(t *testing.T) {
	path := t.TempDir()
	if err := os.WriteFile(filepath.Join(path, "m"), []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(path, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(path, "m"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d    *Dir
		name string
	}{{d, "m"}, {nil, filepath.Join(path, "m")}} {
		a, err := StatAt(tc.d, tc.name)
		if err != nil || !a.Regular || a.Size != 5 || !a.ModTime.Equal(info.ModTime()) {
			t.Errorf("StatAt(%q) = %+v, %v; want a regular file of 5 bytes from %v", tc.name, a, err, info.ModTime())
		}
	}
	if a, err := StatAt(d, "sub"); err != nil || a.Regular {
		t.Errorf("StatAt(sub) = %+v, %v; want a folder", a, err)
	}
	if _, err := StatAt(d, "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("StatAt(missing): %v, want fs.ErrNotExist", err)
	}
	d.Close()
	if _, err := StatAt(d, "m"); err == nil && runtime.GOOS == "linux" {
		t.Error("StatAt after close succeeded")
	}
}
