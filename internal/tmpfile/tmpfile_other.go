//go:build !linux

package tmpfile

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("unnamed files are not supported on this system")

// Create returns an error: unnamed files need Linux's O_TMPFILE.
func Create(dir string, perm os.FileMode) (*os.File, error) {
	return nil, &os.PathError{Op: "open unnamed", Path: dir, Err: errUnsupported}
}

// Link returns an error: unnamed files need Linux's O_TMPFILE.
func Link(f *os.File, path string) error {
	return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: errUnsupported}
}
