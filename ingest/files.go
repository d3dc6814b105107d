package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// WalkMessages calls fn with the path of every message file under paths, in
// lexical order within each folder, without holding the list in memory.
// A path may be:
//
//   - a file, always taken as a message;
//   - a Maildir (a folder with cur/, new/ and tmp/): the files of cur/ and
//     new/, as delivery is complete only there;
//   - any other folder, walked recursively: its .eml files, and the cur/ and
//     new/ files of the Maildirs inside it. Hidden files and folders (a
//     leading dot) are skipped.
//
// A path given is followed if it is a symbolic link (the operator named
// it); inside a folder, a symbolic link is never followed, to a file or a
// folder: whoever can write in a folder that is scanned could otherwise
// have scan read any file certharvest can.
//
// A path that cannot be read is passed to onError; the walk goes on.
func WalkMessages(ctx context.Context, paths []string, fn func(path string) error, onError func(path string, err error)) error {
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			onError(root, err)
			continue
		}
		if !info.IsDir() {
			if err := fn(root); err != nil {
				return err
			}
			continue
		}
		if linfo, err := os.Lstat(root); err == nil && linfo.Mode()&fs.ModeSymlink != 0 {
			// WalkDir does not follow a link even as its root: with a
			// trailing separator, the path names the folder itself.
			root += string(filepath.Separator)
		}
		// Whether the last file's folder is a Maildir's cur/ or new/:
		// WalkDir gives the files of a folder one after another, so
		// IsMaildir runs once per folder rather than once per file.
		var lastDir string
		var lastInMaildir bool
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				onError(path, err)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			name := d.Name()
			if path != root && strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if name == "tmp" && IsMaildir(filepath.Dir(path)) {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if dir := filepath.Dir(path); dir != lastDir {
				parent := filepath.Base(dir)
				lastDir, lastInMaildir = dir, (parent == "cur" || parent == "new") && IsMaildir(filepath.Dir(dir))
			}
			if lastInMaildir || strings.EqualFold(filepath.Ext(name), ".eml") {
				return fn(path)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// IsMaildir reports whether dir has the cur, new and tmp folders of a
// Maildir.
func IsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new", "tmp"} {
		info, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !info.IsDir() {
			return false
		}
	}
	return true
}

// ReadMessageFile reads a message file of at most maxSize bytes. A larger
// file is not kept: the error wraps verify.ReasonTooLarge and a
// *TooLargeError, which identifies the message.
func ReadMessageFile(path string, maxSize int64) ([]byte, error) {
	return ReadMessageFileWith(path, ReadOptions{MaxSize: maxSize})
}

// ReadMessageFileWith is ReadMessageFile with options.
func ReadMessageFileWith(path string, opts ReadOptions) ([]byte, error) {
	m, err := readFileAt(nil, path, path, opts, "")
	if err != nil {
		return nil, err
	}
	return m.raw, nil
}

// TooLargeError is the error of a message file over the size limit, under a
// *verify.Error of reason message_too_large. The file is not kept in
// memory, but it is read through once to identify it: ID is what
// verify.MessageIDFor gives for its bytes, so that the report line and the
// log name the message as the input that received it did.
type TooLargeError struct {
	Size  int64 // bytes read, at least Limit+1, at most maxHashedBytes
	Limit int64
	ID    string // of its bytes (its first maxHashedBytes); "" when they could not be read
}

func (e *TooLargeError) Error() string {
	if e.Size >= maxHashedBytes {
		return fmt.Sprintf("message is over %d bytes, the limit is %d", e.Size, e.Limit)
	}
	return fmt.Sprintf("message is %d bytes, the limit is %d", e.Size, e.Limit)
}

// maxHashedBytes bounds the bytes of a message too large that are read to
// identify it: a file larger still (or growing without end) is identified
// by its first maxHashedBytes. No input of certharvest's own takes one so
// large (the webhook's requests are 50 MiB at most, SMTP stops at
// --max-size): only a file put in new/ or given to scan can be.
const maxHashedBytes = 256 << 20

// tooLarge returns the error of the file r over maxSize bytes: its bytes
// are hashed in blocks, never held, up to maxHashedBytes.
func tooLarge(r io.Reader, maxSize int64) error {
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(r, maxHashedBytes), make([]byte, 64<<10))
	e := &TooLargeError{Size: n, Limit: maxSize}
	if err == nil {
		e.ID = hex.EncodeToString(h.Sum(nil)[:6])
	}
	return &verify.Error{Reason: verify.ReasonTooLarge, Err: e}
}

// MessageIDOf returns the id of the message that err is about, when err
// knows it (a *TooLargeError), else "".
func MessageIDOf(err error) string {
	if e, ok := errors.AsType[*TooLargeError](err); ok {
		return e.ID
	}
	return ""
}

// messageFile is a message file as read by readFileAt.
type messageFile struct {
	raw     []byte    // the file's bytes
	xattr   []byte    // the extended attribute asked for; nil when absent
	size    int64     // the file's size when opened
	modTime time.Time // the file's modification time when opened
}

// ErrNotRegular is the error of a message "file" that is not a regular
// file: a symbolic link (never followed in the spool, nor in a folder that
// scan walks), a FIFO, a socket or a device. Its text is the detail of the
// message's read_error.
var ErrNotRegular = errors.New("not a regular file")

// errNotFolder: one of the spool's folders is not a folder (a symbolic
// link, say), which the spool does not follow.
var errNotFolder = errors.New("not a folder (a symbolic link is not followed)")

// notRegular returns the error of the file at path that is not a regular
// file.
func notRegular(path string) error {
	return &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
}

// plainName reports whether name is the name of a file in a folder, not a
// path.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, os.PathSeparator)
}
