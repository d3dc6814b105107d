package output

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// rawFile is an open file held by its descriptor alone: an unnamed file
// of a group commit. Unlike an *os.File it costs no fcntl when made (the
// wrapper asks whether it is non-blocking) and no finaliser.
type rawFile struct {
	fd   int
	name string // for messages
}

func (f *rawFile) Fd() uintptr { return uintptr(f.fd) }

func (f *rawFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(f.fd, p[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, &fs.PathError{Op: "write", Path: f.name, Err: err}
		case m == 0:
			return n, &fs.PathError{Op: "write", Path: f.name, Err: unix.EIO}
		}
		n += m
	}
	return n, nil
}

func (f *rawFile) Chmod(mode os.FileMode) error {
	if err := unix.Fchmod(f.fd, uint32(mode.Perm())); err != nil {
		return &fs.PathError{Op: "chmod", Path: f.name, Err: err}
	}
	return nil
}

func (f *rawFile) Sync() error {
	if err := fsyncFD(f.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	return nil
}

func (f *rawFile) Close() error {
	if f.fd < 0 {
		return fs.ErrClosed
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// createUnnamed creates an unnamed file in d (open(2) O_TMPFILE; see
// internal/tmpfile), with permissions perm less the umask: one openat, on
// d's descriptor when it has one.
func (d folder) createUnnamed(perm os.FileMode) (tempHandle, error) {
	dirfd, p := unix.AT_FDCWD, d.path
	if d.f != nil {
		dirfd, p = int(d.f.Fd()), "."
	}
	fd, err := openat(dirfd, p, unix.O_TMPFILE|unix.O_RDWR, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open unnamed", Path: d.path, Err: err}
	}
	return &rawFile{fd: fd, name: filepath.Join(d.path, "(unnamed)")}, nil
}

// link gives f, made by createUnnamed, the name name in d; it fails with
// an error matching fs.ErrExist when name exists (a link there included).
// byFD: linkat(2) with AT_EMPTY_PATH, which Linux allows the file's opener
// since 6.10 (and a process with CAP_DAC_READ_SEARCH before); else through
// /proc/self/fd, a longer lookup.
func (d folder) link(f tempHandle, name string, byFD bool) error {
	dirfd, p := d.at(name)
	var err error
	if byFD {
		err = unix.Linkat(int(f.Fd()), "", dirfd, p, unix.AT_EMPTY_PATH)
	} else {
		proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
		err = unix.Linkat(unix.AT_FDCWD, proc, dirfd, p, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: filepath.Join(d.path, "(unnamed)"), New: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// linkByFD reports whether unnamed files in dir can be given a name by
// their descriptor (link's byFD), by linking one under a probe name,
// removed at once.
func linkByFD(dir string) bool {
	d := rootFolder(dir)
	f, err := d.createUnnamed(0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	probe := ".probe-link-" + strconv.Itoa(os.Getpid())
	d.remove(probe)
	if d.link(f, probe, true) != nil {
		return false
	}
	d.remove(probe)
	return true
}
