//go:build !unix

package revocation

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// folderFD is the cache folder for the warm path's reads: elsewhere than
// Unix, a look (Lstat) and a check that the file opened is the one seen.
type folderFD struct{ dir string }

func openFolderFD(dir string) (folderFD, error) { return folderFD{dir}, nil }

func (d folderFD) close() error { return nil }

// readFile returns the regular file name of the folder, at most limit
// bytes; a link or anything else is an error, even one swapped in between
// the look and the open.
func (d folderFD) readFile(name string, limit int64) ([]byte, error) {
	path := filepath.Join(d.dir, name)
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		return nil, fmt.Errorf("%s changed while opened", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return data, nil
}
