//go:build !unix

package output

// lockAddressFile is a no-op where flock(2) is missing: one process per
// certificate folder there.
func lockAddressFile(string) (func(), error) { return func() {}, nil }
