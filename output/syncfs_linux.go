package output

import (
	"golang.org/x/sys/unix"
)

// syncFileSystem makes every written file of the file system holding f
// durable (syncfs(2)). It reports whether it could try.
func syncFileSystem(f tempHandle) (bool, error) {
	for {
		err := unix.Syncfs(int(f.Fd()))
		if err != unix.EINTR {
			return true, err
		}
	}
}
