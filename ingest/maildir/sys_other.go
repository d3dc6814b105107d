//go:build !linux

package maildir

import (
	"errors"
	"io/fs"
	"os"

	"github.com/certharvest/certharvest/internal/fsutil"
)

var errNoXattr = errors.New("extended attributes are not used on this system")

// setXattr is not used outside Linux: the context goes in meta/ files.
func setXattr(*os.File, string, []byte) error { return errNoXattr }

// This file also holds the spool's other system-dependent calls.

// fdatasync flushes f to the disk.
func fdatasync(f *os.File) error { return f.Sync() }

// syncMessages makes the files of the messages named durable, one at a
// time, with their folder entries.
func (s *Spool) syncMessages(names []string) error { return s.syncEach(names) }

// lockFile opens path, creating it if needed. It takes no lock here: one
// process at a time must use a spool.
func lockFile(path string) (*os.File, error) {
	return openNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// freeSpace is not measured outside Linux: the health check relies on its
// other probes there.
func freeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }

// openNoFollow opens the file at path (os.OpenFile's flag and perm) when
// it is a regular file and not a symbolic link, as the Linux version does
// with O_NOFOLLOW: here by looking first (lstat), then checking that the
// file opened is the one looked at.
func openNoFollow(path string, flag int, perm fs.FileMode) (*os.File, error) {
	before, err := os.Lstat(path)
	switch {
	case err == nil && !before.Mode().IsRegular():
		return nil, fsutil.NotRegular(path)
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		before = nil // created by the open
	case err != nil:
		return nil, err
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() || (before != nil && !os.SameFile(before, info)) {
		f.Close()
		return nil, fsutil.NotRegular(path)
	}
	return f, nil
}

// openFolder opens the folder at path for listing, unless it is a
// symbolic link.
func openFolder(path string) (*os.File, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fsutil.ErrNotFolder}
	}
	return os.Open(path)
}
