//go:build !unix

package output

import (
	"os"
	"path/filepath"
)

// readFileIn reads the file name of the folder that dir is open on.
func readFileIn(dir *os.File, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir.Name(), name))
}
