// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU per operation beside wall time: on a machine where the
// work waits for the disk, wall time per operation says little about cost.
package cputime

// Process returns the CPU time the process has used (user and system,
// every thread, the garbage collector's included), in nanoseconds, or 0
// where the system cannot say.
func Process() int64 { return process() }
