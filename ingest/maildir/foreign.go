package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotMaildir is the error of Open on a folder that holds files but is
// not a Maildir: a folder of .eml files, say, which the spool would never
// read (it reads new/), and in which it would make its own folders.
var ErrNotMaildir = errors.New("holds files but is not a Maildir (no new/, cur/, tmp/)")

// refuseForeign returns an error wrapping ErrNotMaildir when dir holds
// files (not hidden: a dot file is the folder's owner's) but none of a
// Maildir's folders. A missing or empty folder is the spool's to make, one
// with tmp/, new/ or cur/ is a Maildir (Open completes it), and one with
// folders only (lost+found on a volume of its own) holds no message.
func refuseForeign(dir string) error {
	for _, sub := range []string{SubTmp, SubNew, SubCur} {
		if _, err := os.Lstat(filepath.Join(dir, sub)); err == nil {
			return nil
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // missing: made; unreadable or no folder: Open says so
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, e.Name())
		}
	}
	switch len(files) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s %w: it holds %s", dir, ErrNotMaildir, files[0])
	}
	other := "other files"
	if len(files) == 2 {
		other = "other file"
	}
	return fmt.Errorf("%s %w: it holds %s and %d %s", dir, ErrNotMaildir, files[0], len(files)-1, other)
}
