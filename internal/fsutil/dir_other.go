//go:build !linux

package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Dir is a folder of the spool. Outside Linux its files are opened and
// renamed by their paths.
type Dir struct {
	path string
}

// OpenDir returns the folder path, unless it is not one (a symbolic link
// is not followed).
func OpenDir(path string) (*Dir, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrNotFolder}
	}
	return &Dir{path: path}, nil
}

// Close does nothing: no folder is held open.
func (d *Dir) Close() error { return nil }

// Join returns the path of name in d.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// ReadFileAt reads the file at path (name in d), as the Linux version
// does. Outside Linux there are no extended attributes: xattr is ignored.
func ReadFileAt(d *Dir, name, path string, opts ReadOptions, xattr string) (File, error) {
	maxSize := opts.MaxSize
	// Opening a FIFO would wait for a writer: look first (at a symbolic
	// link itself with NoFollow).
	stat := os.Stat
	if opts.NoFollow {
		stat = os.Lstat
	}
	before, err := stat(path)
	if err == nil && !before.Mode().IsRegular() {
		return File{}, NotRegular(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	if !info.Mode().IsRegular() || (opts.NoFollow && before != nil && !os.SameFile(before, info)) {
		// Not a regular file, or replaced by a link since it was looked at.
		return File{}, NotRegular(path)
	}
	if info.Size() > maxSize {
		return File{Size: info.Size(), ModTime: info.ModTime()}, tooLarge(io.NewSectionReader(f, 0, 1<<62), maxSize)
	}
	if opts.Reserve != nil {
		opts.Reserve(info.Size())
	}
	// The file may grow while it is read; never read past the limit.
	data := make([]byte, 0, info.Size()+1)
	r := io.LimitReader(f, maxSize+1)
	for {
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return File{}, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	if int64(len(data)) > maxSize {
		// It grew while it was read.
		return File{Size: info.Size(), ModTime: info.ModTime()}, tooLarge(io.NewSectionReader(f, 0, 1<<62), maxSize)
	}
	return File{Raw: data, Size: info.Size(), ModTime: info.ModTime()}, nil
}

// RenameAt renames name in from to newName in to.
func RenameAt(from *Dir, name string, to *Dir, newName string) error {
	return os.Rename(from.Join(name), to.Join(newName))
}

// StatAt returns the attributes of name in d, or of the file at the path
// name when d is nil (of a symbolic link itself: the spool never follows
// one).
func StatAt(d *Dir, name string) (Attrs, error) {
	path := name
	if d != nil {
		path = d.Join(name)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return Attrs{}, err
	}
	return Attrs{Regular: info.Mode().IsRegular(), IsDir: info.IsDir(), Size: info.Size(), Usage: info.Size(), ModTime: info.ModTime()}, nil
}

// IsNoSpace reports whether err is the file system refusing to grow.
func IsNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// OpenFile opens the file at path for reading as a stream (an mbox, a
// compressed message): only a regular file (else an error wrapping
// ErrNotRegular), never through a symbolic link with noFollow.
func OpenFile(path string, noFollow bool) (*os.File, error) {
	stat := os.Stat
	if noFollow {
		stat = os.Lstat
	}
	before, err := stat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, NotRegular(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || !os.SameFile(before, info) {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, NotRegular(path)
	}
	return f, nil
}
