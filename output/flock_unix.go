//go:build unix

package output

import (
	"golang.org/x/sys/unix"
)

// haveFlock reports whether the lock files exclude other processes.
const haveFlock = true

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
