//go:build !linux

package ingest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// dir is a folder of the spool. Outside Linux its files are opened and
// renamed by their paths.
type dir struct {
	path string
}

// openDir returns the folder path, unless it is not one (a symbolic link
// is not followed).
func openDir(path string) (*dir, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errNotFolder}
	}
	return &dir{path: path}, nil
}

// close does nothing: no folder is held open.
func (d *dir) close() error { return nil }

// join returns the path of name in d.
func (d *dir) join(name string) string { return filepath.Join(d.path, name) }

// readFileAt reads the file at path (name in d), as ReadMessageFileWith
// does. Outside Linux there are no extended attributes: xattr is ignored.
func readFileAt(d *dir, name, path string, opts ReadOptions, xattr string) (messageFile, error) {
	maxSize := opts.MaxSize
	// Opening a FIFO would wait for a writer: look first (at a symbolic
	// link itself with NoFollow).
	stat := os.Stat
	if opts.NoFollow {
		stat = os.Lstat
	}
	before, err := stat(path)
	if err == nil && !before.Mode().IsRegular() {
		return messageFile{}, notRegular(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return messageFile{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return messageFile{}, err
	}
	if !info.Mode().IsRegular() || (opts.NoFollow && before != nil && !os.SameFile(before, info)) {
		// Not a regular file, or replaced by a link since it was looked at.
		return messageFile{}, notRegular(path)
	}
	if info.Size() > maxSize {
		return messageFile{size: info.Size(), modTime: info.ModTime()}, tooLarge(io.NewSectionReader(f, 0, 1<<62), maxSize)
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
			return messageFile{}, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	if int64(len(data)) > maxSize {
		// It grew while it was read.
		return messageFile{size: info.Size(), modTime: info.ModTime()}, tooLarge(io.NewSectionReader(f, 0, 1<<62), maxSize)
	}
	return messageFile{raw: data, size: info.Size(), modTime: info.ModTime()}, nil
}

// renameAt renames name in from to newName in to.
func renameAt(from *dir, name string, to *dir, newName string) error {
	return os.Rename(from.join(name), to.join(newName))
}

// fileAttrs are what statAt tells of a file.
type fileAttrs struct {
	regular bool
	dir     bool
	size    int64
	usage   int64 // bytes of disk it takes: its size, here
	modTime time.Time
}

// statAt returns the attributes of name in d, or of the file at the path
// name when d is nil (of a symbolic link itself: the spool never follows
// one).
func statAt(d *dir, name string) (fileAttrs, error) {
	path := name
	if d != nil {
		path = d.join(name)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return fileAttrs{}, err
	}
	return fileAttrs{regular: info.Mode().IsRegular(), dir: info.IsDir(), size: info.Size(), usage: info.Size(), modTime: info.ModTime()}, nil
}
