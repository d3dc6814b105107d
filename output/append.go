package output

import (
	"errors"
	"io/fs"
	"os"
)

// openAppend opens path for appending, creating it (mode 0644) if needed.
// It is opened for reading too where the file's mode allows, so that its
// last byte can be read (endsCut); readable tells whether it was.
func openAppend(path string) (f *os.File, readable bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrPermission) {
		return nil, false, err
	}
	// A file we may write but not read.
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	return f, false, err
}

// endsCut reports whether f, a regular file opened for reading, ends in a
// line without its newline: one cut short by a crash during a write, or by
// a writer that could not take back a failed write.
func endsCut(f interface {
	Stat() (os.FileInfo, error)
	ReadAt(p []byte, off int64) (int, error)
}) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() == 0 {
		return false, nil
	}
	var last [1]byte
	if n, err := f.ReadAt(last[:], fi.Size()-1); n == 0 {
		return false, err
	}
	return last[0] != '\n', nil
}
