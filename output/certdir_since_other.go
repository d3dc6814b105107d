//go:build !linux

package output

import (
	"os"
	"path/filepath"
	"time"
)

// readFileSince is readFile for Each: it also returns the file's
// modification time, read with lstat before the file (where the fields of
// fstat's answer differ from system to system), and does not read a file
// older than since (nil data, no error).
func (d folder) readFileSince(name string, since time.Time) ([]byte, time.Time, error) {
	info, err := os.Lstat(filepath.Join(d.path, name))
	if err != nil {
		return nil, time.Time{}, err
	}
	if !info.Mode().IsRegular() {
		return nil, time.Time{}, &NotRegularError{Path: filepath.Join(d.path, name), Mode: info.Mode()}
	}
	if !since.IsZero() && info.ModTime().Before(since) {
		return nil, info.ModTime(), nil
	}
	data, err := d.readFile(name)
	return data, info.ModTime(), err
}
