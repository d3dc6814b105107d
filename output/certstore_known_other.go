//go:build !linux

package output

import "time"

// fileID is the identity of a file (certstore_known.go): never valid here,
// where the store remembers nothing (racyMargin).
type fileID struct {
	valid bool
	ctime int64
}

// writableOnlyBy is false: nothing is remembered here.
func (id fileID) writableOnlyBy(int) bool { return false }

// statID cannot tell here.
func (d folder) statID(name string) (id fileID, exists, ok bool) { return fileID{}, false, false }

// readFileID is readFile, with no identity.
func (d folder) readFileID(name string) ([]byte, fileID, time.Time, error) {
	data, err := d.readFile(name)
	return data, fileID{}, time.Now(), err
}

// racyMargin is 0: the store remembers nothing where it has not been
// checked that a stat tells every change (see certstore_known.go).
func racyMargin(dir string) time.Duration { return 0 }
