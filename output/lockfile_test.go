package output

import (
	"os"
	"path/filepath"
)

// lockPath is the lock file of stripe i, <dir>/.locks/<lockName(i)>.
func (s *CertStore) lockPath(i int) string {
	return filepath.Join(s.dir, ".locks", lockName(i))
}

// lockFile takes the lock of the lock file path, creating it and its folder
// if needed, as another process sharing the folder would, and returns the
// function that releases it.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flockExclusive(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
