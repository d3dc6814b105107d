//go:build !unix

package output

// haveFlock reports whether lockFile excludes other processes.
const haveFlock = false

// lockFile is a no-op where flock(2) is missing: one process per
// certificate folder there.
func lockFile(string) (func(), error) { return func() {}, nil }
