//go:build unix

package verify

import "syscall"

// processCPU returns the CPU time the process has used (user and system,
// every thread: the garbage collector's work included), in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
