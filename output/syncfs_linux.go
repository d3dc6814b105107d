package output

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFileSystem makes every written file of the file system holding f
// durable (syncfs(2)). It reports whether it could try.
func syncFileSystem(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return false, nil
	}
	return true, serr
}
