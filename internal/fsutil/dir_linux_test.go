package fsutil

import (
	"io"
	"os"
	"testing"
)

// readAllFile rewinds f and reads it with readAll, as if fstat had said
// size.
func readAllFile(t *testing.T, f *os.File, size, maxSize int64) ([]byte, error) {
	t.Helper()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return readAll(int(f.Fd()), f.Name(), size, maxSize)
}
