// Package fsutil reads message files safely, for the batch walk (package
// ingest) and the Maildir spool (package ingest/maildir): never more than a
// size limit held in memory, never through a symbolic link where the caller
// says so, never waiting on a FIFO; on Linux relative to a folder opened
// once (openat(2) and its kin) and with the file's extended attributes.
package fsutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// MaxAttrBytes bounds an extended attribute read (a message's stored
// context, a few hundred bytes when certharvest wrote it): a larger one is
// taken as absent.
const MaxAttrBytes = 1 << 20

// ReadOptions say how ReadFileAt reads a message.
type ReadOptions struct {
	// MaxSize is the largest message read: a larger one is not kept,
	// and the error wraps verify.ReasonTooLarge and a *TooLargeError.
	MaxSize int64
	// NoFollow refuses a symbolic link (an error wrapping ErrNotRegular)
	// rather than read the file it names. The spool always sets it; scan
	// sets it for the files it finds in a folder, not for a path the
	// operator gave it.
	NoFollow bool
	// Reserve, when not nil, is called once the file is open with the
	// bytes about to be read into memory (its size), before they are: a
	// caller bounding the memory of the messages in flight waits there.
	// It is not called for a file over MaxSize, which is never held.
	Reserve func(size int64)
}

// File is a message file as ReadFileAt read it.
type File struct {
	Raw     []byte    // the file's bytes
	Xattr   []byte    // the extended attribute asked for; nil when absent
	Size    int64     // the file's size when opened
	ModTime time.Time // the file's modification time when opened
}

// Attrs are what StatAt tells of a file.
type Attrs struct {
	Regular bool
	IsDir   bool
	Size    int64
	Usage   int64 // bytes of disk it takes (st_blocks; outside Linux, its size)
	ModTime time.Time
}

// TooLargeError is the error of a message file over the size limit, under a
// *verify.Error of reason message_too_large. The file is not kept in
// memory, but it is read through once to identify it: ID is what
// verify.MessageIDFor gives for its bytes, so that the report line and the
// log name the message as the input that received it did.
type TooLargeError struct {
	Size  int64 // bytes read, at least Limit+1, at most MaxHashedBytes
	Limit int64
	ID    string // of its bytes (its first MaxHashedBytes); "" when they could not be read
}

func (e *TooLargeError) Error() string {
	if e.Size >= MaxHashedBytes {
		return fmt.Sprintf("message is over %d bytes, the limit is %d", e.Size, e.Limit)
	}
	return fmt.Sprintf("message is %d bytes, the limit is %d", e.Size, e.Limit)
}

// MaxHashedBytes bounds the bytes of a message too large that are read to
// identify it: a file larger still (or growing without end) is identified
// by its first MaxHashedBytes. No input of certharvest's own takes one so
// large (the webhook's requests are 50 MiB at most, SMTP stops at
// --max-size): only a file put in new/ or given to scan can be.
const MaxHashedBytes = 256 << 20

// tooLarge returns the error of the file r over maxSize bytes: its bytes
// are hashed in blocks, never held, up to MaxHashedBytes.
func tooLarge(r io.Reader, maxSize int64) error {
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(r, MaxHashedBytes), make([]byte, 64<<10))
	e := &TooLargeError{Size: n, Limit: maxSize}
	if err == nil {
		e.ID = hex.EncodeToString(h.Sum(nil)[:6])
	}
	return &verify.Error{Reason: verify.ReasonTooLarge, Err: e}
}

// ReadAll reads a message from r (standard input, say) of at most maxSize
// bytes. A larger one is not kept, but read through to identify it, as
// ReadFileAt does a file: the error wraps verify.ReasonTooLarge and a
// *TooLargeError.
func ReadAll(r io.Reader, maxSize int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > maxSize {
		return nil, tooLarge(io.MultiReader(bytes.NewReader(raw), r), maxSize)
	}
	return raw, nil
}

// MessageIDOf returns the id of the message that err is about, when err
// knows it (a *TooLargeError), else "".
func MessageIDOf(err error) string {
	if e, ok := errors.AsType[*TooLargeError](err); ok {
		return e.ID
	}
	return ""
}

// ErrNotRegular is the error of a message "file" that is not a regular
// file: a symbolic link (never followed in the spool, nor in a folder that
// scan walks), a FIFO, a socket or a device. Its text is the detail of the
// message's read_error.
var ErrNotRegular = errors.New("not a regular file")

// ErrNotFolder: one of the spool's folders is not a folder (a symbolic
// link, say), which the spool does not follow.
var ErrNotFolder = errors.New("not a folder (a symbolic link is not followed)")

// NotRegular returns the error of the file at path that is not a regular
// file.
func NotRegular(path string) error {
	return &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
}

// PlainName reports whether name is the name of a file in a folder, not a
// path.
func PlainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, os.PathSeparator)
}
