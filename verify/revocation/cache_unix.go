//go:build unix

package revocation

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// folderFD is the cache folder opened for the warm path's reads, which
// system calls serve directly: openat without following a link, fstat, the
// reads and a close (4 or 5 calls), where an os.File costs a dozen, the
// poller's set-up included. It is a read per message of a scan whose
// statuses another process kept.
type folderFD struct{ f *os.File }

func openFolderFD(dir string) (folderFD, error) {
	f, err := os.Open(dir)
	return folderFD{f}, err
}

func (d folderFD) close() error { return d.f.Close() }

// readFile returns the regular file name of the folder, at most limit
// bytes; a link (O_NOFOLLOW), a FIFO (O_NONBLOCK) or anything else that is
// not a regular file is an error.
func (d folderFD) readFile(name string, limit int64) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat(int(d.f.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	buf := make([]byte, st.Size+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
	return nil, errors.New(name + ": grew while read")
}
