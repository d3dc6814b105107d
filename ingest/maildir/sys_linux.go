package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/certharvest/certharvest/internal/fsutil"
	"golang.org/x/sys/unix"
)

// setXattr sets an extended attribute on an open file.
func setXattr(f *os.File, name string, value []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fsetxattr(int(fd), name, value, 0) }); err != nil {
		return err
	}
	return serr
}

// This file also holds the spool's other Linux system calls.

// fdatasync flushes f's data, and the metadata needed to read it back, to
// the disk.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// syncMessages makes the spool's files durable, with their folder entries:
// one syncfs(2) of the spool's file system does it for every message, names
// or not.
func (s *Spool) syncMessages([]string) error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: s.dir, Err: serr}
	}
	return nil
}

// lockFile opens path, creating it if needed, and takes an exclusive lock
// on it, held until the file is closed (or the process ends).
func lockFile(path string) (*os.File, error) {
	f, err := openNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		f.Close()
		return nil, err
	}
	if errors.Is(serr, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("%s is locked: another process is using this spool", path)
	}
	if serr != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: serr}
	}
	return f, nil
}

// freeSpace returns the bytes available to an unprivileged process on the
// file system holding dir (statfs(2): f_bavail blocks of f_frsize bytes).
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	size := uint64(st.Frsize)
	if size == 0 {
		size = uint64(st.Bsize)
	}
	return st.Bavail * size, nil
}

// openNoFollow opens the file at path (os.OpenFile's flag and perm) when it is
// a regular file, and never through a symbolic link in its last element
// (O_NOFOLLOW): whoever can write in the spool's folders (the MTA's group)
// could otherwise have certharvest read, or write, a file of its choosing
// elsewhere. A link, a FIFO, a socket or a device gives an error wrapping
// ingest.ErrNotRegular; O_NONBLOCK keeps the open of a FIFO from waiting for a
// writer.
func openNoFollow(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) {
			return nil, fsutil.NotRegular(path)
		}
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fsutil.NotRegular(path)
	}
	return f, nil
}

// openFolder opens the folder at path for listing, never through a
// symbolic link in its last element.
func openFolder(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fsutil.ErrNotFolder}
	}
	return f, err
}
