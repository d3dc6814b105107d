//go:build unix

package output

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// folder is a folder of the certificate store (see certdir.go): the
// store's own, reached by its path (f nil), or one below it, opened without
// following a link and then reached through its descriptor.
type folder struct {
	path string   // for messages, and to reach the store's own folder
	f    *os.File // the open folder; nil for the store's own
}

// rootFolder is the store's own folder, reached by its path.
func rootFolder(path string) folder { return folder{path: path} }

// close closes a folder opened by sub.
func (d folder) close() {
	if d.f != nil {
		d.f.Close()
	}
}

// at returns the descriptor and the name that reach name in d, for the
// *at system calls.
func (d folder) at(name string) (int, string) {
	if d.f == nil {
		return unix.AT_FDCWD, filepath.Join(d.path, name)
	}
	return int(d.f.Fd()), name
}

// pathOf returns the path of name in d, given p, what at returned for it:
// for the store's own folder the same string, joined once.
func (d folder) pathOf(name, p string) string {
	if d.f == nil {
		return p
	}
	return filepath.Join(d.path, name)
}

// openat is openat(2) with O_CLOEXEC, retried when a signal interrupts it
// (as os.OpenFile does: slow file systems such as FUSE and NFS can).
func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// sub opens the folder name in d without following a link, creating it
// (mode 0755, less the umask) when create is set and it is missing. The
// caller closes it.
func (d folder) sub(name string, create bool) (folder, error) {
	dirfd, p := d.at(name)
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW
	fd, err := openat(dirfd, p, flags, 0)
	if err == unix.ENOENT && create {
		if err = unix.Mkdirat(dirfd, p, 0o755); err == nil || err == unix.EEXIST {
			fd, err = openat(dirfd, p, flags, 0)
		}
	}
	if err != nil {
		return folder{}, d.openError(name, p, err, true)
	}
	path := d.pathOf(name, p)
	return folder{path: path, f: os.NewFile(uintptr(fd), path)}, nil
}

// openError explains why name could not be opened in d: a
// *NotRegularError when what is there is not what was wanted (a folder, or
// a regular file), so that a link refused by O_NOFOLLOW (ELOOP on Linux,
// EMLINK on FreeBSD, EFTYPE on NetBSD) is named as such; else err.
func (d folder) openError(name, p string, err error, dir bool) error {
	path := d.pathOf(name, p)
	if err != unix.ENOENT {
		dirfd, p := d.at(name)
		var st unix.Stat_t
		if unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if m := fileMode(uint32(st.Mode)); m.IsDir() != dir || !dir && !m.IsRegular() {
				return &NotRegularError{Path: path, Mode: m, Dir: dir}
			}
		}
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

// fileMode is the type of a file from its st_mode.
func fileMode(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// openRegular opens the regular file name in d with flags, adding
// O_NOFOLLOW and O_NONBLOCK (opening a FIFO for reading would wait for a
// writer), and checks with fstat that it is a regular file. It returns the
// descriptor and its size.
func (d folder) openRegular(name string, flags int, perm uint32) (int, int64, error) {
	fd, st, err := d.openRegularStat(name, flags, perm)
	if err != nil {
		return -1, 0, err
	}
	return fd, st.Size, nil
}

// openRegularStat is openRegular returning the file's fstat.
func (d folder) openRegularStat(name string, flags int, perm uint32) (int, *unix.Stat_t, error) {
	dirfd, p := d.at(name)
	fd, err := openat(dirfd, p, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK, perm)
	if err != nil {
		return -1, nil, d.openError(name, p, err, false)
	}
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return -1, nil, &fs.PathError{Op: "stat", Path: d.pathOf(name, p), Err: err}
	}
	if m := fileMode(uint32(st.Mode)); !m.IsRegular() {
		unix.Close(fd)
		return -1, nil, &NotRegularError{Path: d.pathOf(name, p), Mode: m}
	}
	return fd, st, nil
}

// readFile returns the content of the regular file name in d: an error
// matching fs.ErrNotExist when there is none, a *NotRegularError when it is
// something else (a link is not followed). On the store's hot path: one
// openat, one fstat, the reads and a close, fewer system calls than
// os.ReadFile.
func (d folder) readFile(name string) ([]byte, error) {
	fd, size, err := d.openRegular(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return d.readAll(fd, name, size)
}

// readAll reads fd, the file name in d of size bytes when opened, to its
// end.
func (d folder) readAll(fd int, name string, size int64) ([]byte, error) {
	// One byte more than the size, so that the read that reaches the end
	// returns 0 without growing the buffer.
	buf := make([]byte, 0, max(size+1, 512))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: filepath.Join(d.path, name), Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// openLockFile opens the lock file name in d for reading and writing,
// creating it if needed; not a link, and only a regular file.
func (d folder) openLockFile(name string) (*os.File, error) {
	fd, _, err := d.openRegular(name, unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: filepath.Join(d.path, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// createTemp creates a new file with a temporary name (tempName) in d, for
// reading and writing, mode 0600. It returns the file and its name in d.
func (d folder) createTemp() (*os.File, string, error) {
	for range 10 {
		name := tempName()
		dirfd, p := d.at(name)
		// O_EXCL: never a link, nor a file that exists.
		fd, err := openat(dirfd, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, "", &fs.PathError{Op: "create", Path: d.pathOf(name, p), Err: err}
		}
		return os.NewFile(uintptr(fd), d.pathOf(name, p)), name, nil
	}
	return nil, "", &fs.PathError{Op: "create", Path: filepath.Join(d.path, ".tmp-*"), Err: fs.ErrExist}
}

// rename renames old to name in d, replacing what name was (a link there
// is replaced, not followed).
func (d folder) rename(old, name string) error {
	oldfd, o := d.at(old)
	newfd, n := d.at(name)
	if err := unix.Renameat(oldfd, o, newfd, n); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(d.path, old), New: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// remove removes the file name from d.
func (d folder) remove(name string) {
	dirfd, p := d.at(name)
	unix.Unlinkat(dirfd, p, 0)
}

// sync makes the entries of d durable.
func (d folder) sync() error {
	if d.f == nil {
		return syncDirPath(d.path)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("syncing folder %s: %w", d.path, err)
	}
	return nil
}

// readDir lists d, in no particular order. It reads d's descriptor: once
// only.
func (d folder) readDir() ([]fs.DirEntry, error) {
	if d.f == nil {
		return os.ReadDir(d.path)
	}
	return d.f.ReadDir(-1)
}

// openStripeLock opens the lock file of stripe i, <dir>/.locks/<i>.lock,
// creating it and its folder if needed, following no link.
func (s *CertStore) openStripeLock(i int) (*os.File, error) {
	locks, err := rootFolder(s.dir).sub(".locks", true)
	if err != nil {
		return nil, err
	}
	defer locks.close()
	return locks.openLockFile(lockName(i))
}

// syncDirPath is SyncDir without an *os.File, whose wrapper costs an
// fcntl and a failed epoll_ctl: openat, fsync, close.
func syncDirPath(path string) error {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", path, &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	if err := fsyncFD(fd); err != nil {
		return fmt.Errorf("syncing folder %s: %w", path, &fs.PathError{Op: "sync", Path: path, Err: err})
	}
	return nil
}

// fsyncFD is fsync(2), retried when a signal interrupts it.
func fsyncFD(fd int) error {
	for {
		if err := unix.Fsync(fd); err != unix.EINTR {
			return err
		}
	}
}
