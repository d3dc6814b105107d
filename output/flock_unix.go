//go:build unix

package output

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// haveFlock reports whether the lock files exclude other processes.
const haveFlock = true

// openLockFile opens the lock file path, creating it and its folder if
// needed.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	return f, err
}

// fileDescriptor is an open file: an *os.File.
type fileDescriptor interface{ Fd() uintptr }

// flockExclusive waits for an exclusive flock(2) on f.
func flockExclusive(f fileDescriptor) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

// funlock releases the flock(2) on f.
func funlock(f fileDescriptor) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
