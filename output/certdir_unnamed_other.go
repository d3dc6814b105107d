//go:build !linux

package output

import (
	"os"
	"path/filepath"

	"github.com/certharvest/certharvest/internal/tmpfile"
)

// createUnnamed fails: unnamed files need Linux (internal/tmpfile).
func (d folder) createUnnamed(perm os.FileMode) (tempHandle, error) {
	return tmpfile.Create(d.path, perm)
}

// link fails: unnamed files need Linux.
func (d folder) link(f tempHandle, name string, _ bool) error {
	return tmpfile.Link(f.(*os.File), filepath.Join(d.path, name))
}

// linkByFD is false: unnamed files need Linux.
func linkByFD(string) bool { return false }
