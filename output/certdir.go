package output

import (
	"fmt"
	"io/fs"
	"math/rand/v2"

	"github.com/certharvest/certharvest/verify"
)

// The certificate folder is certharvest's, but others may write to it: an
// operator, a backup tool, or someone who shares the folder's group. Inside
// it, the store follows no symbolic link and reads or replaces nothing but
// regular files and folders, so that a link planted there can neither send
// a write elsewhere (history/ linked to another folder) nor have a file
// read and copied (victim@example.com.crt linked to a secret, which would be
// kept in the history with mode 0644):
//
//   - every file is opened with O_NOFOLLOW, and O_NONBLOCK (a FIFO must not
//     hang a read), then checked to be a regular file (fstat of the open
//     file, no extra lookup);
//   - the folders below the store's own (history/, history/<address>/,
//     .locks/) are opened with O_NOFOLLOW|O_DIRECTORY, created with mkdirat
//     when missing, and every name in them is then reached through the
//     open folder (openat, renameat, linkat, fsync of the folder itself),
//     so a link swapped in after the check is not followed either;
//   - new names are created with O_EXCL or by link(2) and rename(2), which
//     never follow a link at the new name (a rename replaces the link
//     itself).
//
// The store's own folder (--certs) is reached by its path, links included:
// that is the operator's choice, as is its parent.
//
// Where the system has no openat (not Unix: certdir_other.go) the same
// checks are made with Lstat before each use, and a file read is checked to
// be the one Lstat saw; a link swapped in between the check and a write is
// followed there.

// NotRegularError reports that the certificate folder holds something
// other than a regular file or folder where the store reads or writes (a
// symbolic link, a FIFO, a device): the store neither follows it nor
// replaces it, and writes nothing for that address. It matches
// verify.ReasonStoreRefused (errors.Is): the message's verdict.
type NotRegularError struct {
	Path string
	Mode fs.FileMode // the type found
	Dir  bool        // a folder was expected
}

func (e *NotRegularError) Error() string {
	want := "a regular file"
	if e.Dir {
		want = "a folder"
	}
	return e.Path + " is " + fileKind(e.Mode) + ", not " + want
}

// Is makes the error match verify.ReasonStoreRefused.
func (e *NotRegularError) Is(target error) bool { return target == verify.ReasonStoreRefused }

// fileKind names a file type for an error message.
func fileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeDir != 0:
		return "a folder"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t == 0:
		return "a regular file"
	}
	return "a special file"
}

// tempName returns a name for a temporary file: ".tmp-" and 16 random hex
// digits. It is not derived from the final name, so it fits the file
// system's 255-byte name limit whatever the address: <address>.crt already
// takes 255 bytes for the longest address NormalizeAddress accepts, and a
// temporary name made from it could not fit (ENAMETOOLONG: such an address
// could be stored once and never replaced).
func tempName() string {
	return fmt.Sprintf(".tmp-%016x", rand.Uint64())
}
