package fsutil

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// This file reads and moves message files with the system calls directly:
// relative to a folder opened once (openat(2), renameat(2)), so that the
// kernel does not walk the folder's path again for each message, and
// without the os package's set-up of a file for the network poller, which a
// regular file does not use (four fcntl(2) and a failing epoll_ctl(2) per
// open).

// Dir is a folder whose files are opened and renamed relative to it.
type Dir struct {
	path string // the folder's path, clean, for errors and messages' paths

	mu sync.RWMutex // held for reading while fd is in use
	fd int          // -1 once closed
}

// OpenDir opens the folder path.
func OpenDir(path string) (*Dir, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		err = ErrNotFolder
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{path: path, fd: fd}, nil
}

// Close closes the folder: calls in progress end first, later ones fail.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: d.path, Err: err}
	}
	return nil
}

// Join returns the path of name in d.
func (d *Dir) Join(name string) string {
	if PlainName(name) {
		return d.path + string(os.PathSeparator) + name
	}
	return filepath.Join(d.path, name)
}

// ReadFileAt reads the file name of d (path is its full path, for errors),
// or the file at path when d is nil, as opts say, and the extended
// attribute xattr unless it is "". A file over opts.MaxSize is not kept:
// the error wraps verify.ReasonTooLarge and a *TooLargeError, and the File
// has its size, time and extended attribute all the same.
func ReadFileAt(d *Dir, name, path string, opts ReadOptions, xattr string) (File, error) {
	maxSize := opts.MaxSize
	fd, err := openAt(d, name, path, opts.NoFollow)
	if err != nil {
		return File{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return File{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return File{}, NotRegular(path)
	}
	m := File{Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}
	if st.Size > maxSize {
		err = tooLarge(&preader{fd: fd}, maxSize)
	} else {
		if opts.Reserve != nil {
			opts.Reserve(st.Size)
		}
		m.Raw, err = readAll(fd, path, st.Size, maxSize)
	}
	if err != nil && MessageIDOf(err) == "" {
		return File{}, err
	}
	// Also for a message too large to read: its context says where it
	// came from.
	if xattr != "" {
		m.Xattr = fgetXattr(fd, xattr)
	}
	return m, err
}

// preader reads fd from its start with pread(2), leaving its offset alone.
type preader struct {
	fd  int
	off int64
}

func (r *preader) Read(p []byte) (int, error) {
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	var n int
	err := ignoringEINTR(func() (err error) {
		n, err = unix.Pread(r.fd, p, r.off)
		return err
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	r.off += int64(n)
	return n, nil
}

// openAt opens name in d, or path when d is nil, for reading; with
// noFollow, never through a symbolic link (O_NOFOLLOW: an error wrapping
// ErrNotRegular).
func openAt(d *Dir, name, path string, noFollow bool) (int, error) {
	// O_NONBLOCK: opening a FIFO (a path given to scan, a file put in
	// new/) would otherwise wait for a writer, for ever; a regular file
	// reads the same with it, and the caller refuses anything else.
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if noFollow {
		flags |= unix.O_NOFOLLOW
	}
	dfd := unix.AT_FDCWD
	if d != nil {
		d.mu.RLock()
		defer d.mu.RUnlock()
		if d.fd < 0 {
			return -1, &fs.PathError{Op: "open", Path: path, Err: fs.ErrClosed}
		}
		dfd = d.fd
	} else {
		name = path
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(dfd, name, flags, 0)
		return err
	})
	switch {
	case noFollow && errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENXIO):
		// ELOOP: a symbolic link; ENXIO: a socket (or a device
		// without its driver).
		return -1, NotRegular(path)
	case err != nil:
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// readAll reads fd, whose size was size, to its end, never past maxSize+1
// bytes (the file may grow meanwhile). A file as large as its size when
// read takes one read(2): a buffer one byte larger coming back short is the
// end of the file.
func readAll(fd int, path string, size, maxSize int64) ([]byte, error) {
	data := make([]byte, 0, size+1)
	for {
		buf := data[len(data):cap(data)]
		if room := maxSize + 1 - int64(len(data)); int64(len(buf)) > room {
			buf = buf[:room]
		}
		if len(buf) > maxRW {
			buf = buf[:maxRW]
		}
		var n int
		err := ignoringEINTR(func() (err error) {
			n, err = unix.Read(fd, buf)
			return err
		})
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		data = data[:len(data)+n]
		if int64(len(data)) > maxSize {
			// It grew while it was read.
			return nil, tooLarge(&preader{fd: fd}, maxSize)
		}
		if int64(len(data)) == size && len(data) < cap(data) {
			break // all of it, as fstat said, and no more
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	return data, nil
}

// maxRW is the most one read(2) is asked for, as in package os.
const maxRW = 1 << 30

// fgetXattr returns the extended attribute name of fd, or nil when it has
// none (or the file system has no extended attributes).
func fgetXattr(fd int, name string) []byte {
	var small [512]byte
	buf := small[:]
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if err == nil {
			return bytes.Clone(buf[:n]) // not nil when empty
		}
		if !errors.Is(err, unix.ERANGE) || len(buf) >= MaxAttrBytes {
			return nil
		}
		buf = make([]byte, min(len(buf)*8, MaxAttrBytes))
	}
}

// StatAt returns the attributes of name in d, or of the file at the path
// name when d is nil (fstatat(2); of a symbolic link itself, as os.Lstat
// does: the spool never follows one).
func StatAt(d *Dir, name string) (Attrs, error) {
	dfd, path := unix.AT_FDCWD, name
	if d != nil {
		d.mu.RLock()
		defer d.mu.RUnlock()
		dfd = d.fd
	}
	var st unix.Stat_t
	err := error(fs.ErrClosed)
	if dfd != -1 {
		// Not ignoringEINTR: its closure would move st to the heap, on
		// the watcher's and Archive's per-message path.
		for err = unix.EINTR; err == unix.EINTR; {
			err = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if err != nil {
		if d != nil {
			path = d.Join(name)
		}
		return Attrs{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return Attrs{
		Regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		IsDir:   st.Mode&unix.S_IFMT == unix.S_IFDIR,
		Size:    st.Size,
		Usage:   st.Blocks * 512, // st_blocks counts 512-byte units (stat(2))
		ModTime: time.Unix(st.Mtim.Unix()),
	}, nil
}

// RenameAt renames name in from to newName in to (renameat(2)). Unlike
// os.Rename, it does not first look whether newName is a folder.
func RenameAt(from *Dir, name string, to *Dir, newName string) error {
	from.mu.RLock()
	defer from.mu.RUnlock()
	if to != from {
		to.mu.RLock()
		defer to.mu.RUnlock()
	}
	err := error(fs.ErrClosed)
	if from.fd >= 0 && to.fd >= 0 {
		err = ignoringEINTR(func() error {
			return unix.Renameat(from.fd, name, to.fd, newName)
		})
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from.Join(name), New: to.Join(newName), Err: err}
	}
	return nil
}

// ignoringEINTR calls fn again while it fails with EINTR, as package os
// does.
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// IsNoSpace reports whether err is the file system refusing to grow: full
// (ENOSPC), or over the user's quota (EDQUOT), which removing the spool's
// own files relieves as well.
func IsNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// OpenFile opens the file at path for reading as a stream (an mbox, a
// compressed message): never waiting on a FIFO, never through a symbolic
// link with noFollow, and only a regular file (else an error wrapping
// ErrNotRegular).
func OpenFile(path string, noFollow bool) (*os.File, error) {
	fd, err := openAt(nil, "", path, noFollow)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, NotRegular(path)
	}
	// Back to blocking reads: a regular file reads the same, and the os
	// package then does not set it up for the network poller.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
