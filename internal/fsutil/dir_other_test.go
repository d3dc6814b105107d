//go:build !linux

package fsutil

import (
	"os"
	"testing"
)

func readAllFile(t *testing.T, f *os.File, size, maxSize int64) ([]byte, error) {
	t.Skip("readAll is Linux's")
	return nil, nil
}
