package output

import (
	"time"

	"golang.org/x/sys/unix"
)

// fileID is the identity of a file at a moment (certstore_known.go): two
// equal ones, of a regular file, are of a file unchanged in between.
type fileID struct {
	valid       bool // a regular file was found
	dev, ino    uint64
	size        int64
	mtime       int64 // ns since 1970
	ctime       int64 // ns since 1970
	mode, nlink uint32
	uid         uint32
}

func statFileID(st *unix.Stat_t) fileID {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}
	}
	return fileID{
		valid: true,
		dev:   uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		mode: st.Mode, nlink: uint32(st.Nlink), uid: st.Uid,
	}
}

// writableOnlyBy reports whether only the user euid (and root) can write
// the file: it is that user's, not writable by its group or others, and
// has no other name. Only such a file is remembered (certstore_known.go:
// a write through a shared mapping keeps its ctime).
func (id fileID) writableOnlyBy(euid int) bool {
	return id.valid && int64(id.uid) == int64(euid) && id.mode&0o022 == 0 && id.nlink == 1
}

// statID returns the identity of the file name in d, following no link:
// exists false when there is none (ENOENT). ok is false when it cannot
// tell (another error), or what is there is not a regular file.
func (d folder) statID(name string) (id fileID, exists, ok bool) {
	dirfd, p := d.at(name)
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch err {
		case nil:
			id = statFileID(&st)
			return id, true, id.valid
		case unix.ENOENT:
			return fileID{}, false, true
		case unix.EINTR:
			continue
		}
		return fileID{}, false, false
	}
}

// readFileID is readFile that also returns the identity of the file read,
// from the fstat of the descriptor it reads (fs.ErrNotExist: none), and
// when the read began.
func (d folder) readFileID(name string) ([]byte, fileID, time.Time, error) {
	seen := time.Now()
	fd, st, err := d.openRegularStat(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, fileID{}, seen, err
	}
	defer unix.Close(fd)
	data, err := d.readAll(fd, name, st.Size)
	if err != nil {
		return nil, fileID{}, seen, err
	}
	return data, statFileID(st), seen, nil
}

// localFileSystem reports whether a file system, by its magic number
// (statfs(2)), is local: its stat sees every change at once.
func localFileSystem(magic int64) bool {
	switch magic {
	case unix.EXT4_SUPER_MAGIC, // ext2, ext3, ext4
		unix.XFS_SUPER_MAGIC,
		unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC,
		unix.OVERLAYFS_SUPER_MAGIC,
		0x2fc12fc1: // ZFS
		return true
	}
	return false
}

const (
	// racyMarginFine is racyMargin on a file system that keeps
	// nanoseconds: Linux stamps a change with the clock of the last
	// tick, at most 10 ms old (HZ=100).
	racyMarginFine = 100 * time.Millisecond
	// racyMarginCoarse is racyMargin on a file system that keeps whole
	// seconds (ext4 with 128-byte inodes).
	racyMarginCoarse = 2 * time.Second
)

// racyMargin is how much older than its read a file's ctime must be for
// the store in dir to remember it (certstore_known.go), from the file
// system's timestamps: 0, remember nothing, when it is not known to be
// local. A ctime of the folder (just changed by OpenCertStore's probe)
// without nanoseconds marks a file system that keeps whole seconds.
func racyMargin(dir string) time.Duration {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || !localFileSystem(int64(fs.Type)) {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0
	}
	if st.Ctim.Nsec == 0 {
		return racyMarginCoarse
	}
	return racyMarginFine
}
