//go:build !unix

package output

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// folder is a folder of the certificate store (see certdir.go), reached by
// its path. Without openat, every use is checked with Lstat first: a link
// swapped in between a check and a write is followed (a read is checked
// to be of the file Lstat saw).
type folder struct{ path string }

// rootFolder is the store's own folder.
func rootFolder(path string) folder { return folder{path: path} }

// close does nothing: no descriptor is held.
func (d folder) close() {}

// sub returns the folder name in d, checked not to be a link, creating it
// when create is set and it is missing.
func (d folder) sub(name string, create bool) (folder, error) {
	path := filepath.Join(d.path, name)
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err = os.Mkdir(path, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
			info, err = os.Lstat(path)
		}
	}
	if err != nil {
		return folder{}, err
	}
	if !info.IsDir() {
		return folder{}, &NotRegularError{Path: path, Mode: info.Mode(), Dir: true}
	}
	return folder{path: path}, nil
}

// open opens the regular file name in d for reading, checking with Lstat
// before and Stat after that it is a regular file and the one Lstat saw.
func (d folder) open(name string) (*os.File, error) {
	path := filepath.Join(d.path, name)
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: before.Mode()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && (!info.Mode().IsRegular() || !os.SameFile(before, info)) {
		// Replaced between the two: by a link, most likely.
		err = &NotRegularError{Path: path, Mode: fs.ModeSymlink}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readFile returns the content of the regular file name in d.
func (d folder) readFile(name string) ([]byte, error) {
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// createTemp creates a new file with a temporary name (tempName) in d,
// mode 0600. It returns the file and its name in d.
func (d folder) createTemp() (*os.File, string, error) {
	for range 10 {
		name := tempName()
		f, err := os.OpenFile(filepath.Join(d.path, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", &fs.PathError{Op: "create", Path: filepath.Join(d.path, ".tmp-*"), Err: fs.ErrExist}
}

// rename renames old to name in d.
func (d folder) rename(old, name string) error {
	return os.Rename(filepath.Join(d.path, old), filepath.Join(d.path, name))
}

// remove removes the file name from d.
func (d folder) remove(name string) { os.Remove(filepath.Join(d.path, name)) }

// sync makes the entries of d durable.
func (d folder) sync() error { return SyncDir(d.path) }

// readDir lists d.
func (d folder) readDir() ([]fs.DirEntry, error) { return os.ReadDir(d.path) }

// openStripeLock opens nothing: without flock(2), one process per
// certificate folder.
func (s *CertStore) openStripeLock(int) (*os.File, error) { return nil, nil }
