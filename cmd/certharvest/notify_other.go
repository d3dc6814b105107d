//go:build !unix

package main

// lockFile does nothing where there is no flock(2): run one list with
// --notify-command at a time.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
