//go:build !unix

package output

// haveFlock reports whether the lock files exclude other processes: not
// where flock(2) is missing, one process per certificate folder there.
const haveFlock = false

// fileDescriptor is an open file: an *os.File.
type fileDescriptor interface{ Fd() uintptr }

// flockExclusive is a no-op where flock(2) is missing.
func flockExclusive(fileDescriptor) error { return nil }

// funlock is a no-op where flock(2) is missing.
func funlock(fileDescriptor) error { return nil }
