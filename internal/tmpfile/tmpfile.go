// Package tmpfile creates files that have no name until they are complete.
//
// Writing a file beside its final name and renaming it into place costs two
// directory updates (the temporary name, then the rename). On Linux a file
// can instead be created without a name (open(2) O_TMPFILE) and, once
// written, given its name with one link (linkat(2)): readers never see it
// incomplete, and a crash before the link leaves nothing behind. On ext4 it
// halves the CPU time of creating a small file (85 -> 45 µs here).
//
// Where the system or the file system cannot (other systems, O_TMPFILE
// unsupported, no /proc), Supported reports false and the caller keeps to
// named temporary files.
package tmpfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Supported reports whether unnamed files can be created in dir and linked
// into it, by doing so once with a probe file that it then removes.
func Supported(dir string) bool {
	f, err := Create(dir, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	probe := filepath.Join(dir, fmt.Sprintf(".probe-unnamed-%d", os.Getpid()))
	os.Remove(probe)
	if err := Link(f, probe); err != nil {
		return false
	}
	os.Remove(probe)
	return true
}
