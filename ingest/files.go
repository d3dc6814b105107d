package ingest

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/fsutil"
)

// WalkMessages calls fn with the path of every message file under paths, in
// lexical order within each folder, without holding the list in memory.
// A path may be:
//
//   - a file, always taken: a message, or an mbox (by its name, .mbox or
//     .mbx, or its first line, a "From " line), or either compressed with
//     gzip (.eml.gz, .mbox.gz, or its first bytes);
//   - a Maildir (a folder with cur/, new/ and tmp/): the files of cur/ and
//     new/, as delivery is complete only there;
//   - any other folder, walked recursively: its .eml and .eml.gz files, its
//     mbox files (.mbox, .mbx, their .gz, and files without an extension,
//     as Thunderbird names its folders, whose first line is a "From "
//     line), and the cur/ and new/ files of the Maildirs inside it. Hidden
//     files and folders (a leading dot) are skipped.
//
// A path given is followed if it is a symbolic link (the operator named
// it); inside a folder, a symbolic link is never followed, to a file or a
// folder: whoever can write in a folder that is scanned could otherwise
// have scan read any file certharvest can.
//
// A path that cannot be read is passed to onError; the walk goes on.
func WalkMessages(ctx context.Context, paths []string, fn func(path string) error, onError func(path string, err error)) error {
	return walkFiles(ctx, paths, WalkRules{}, fn, onError)
}

// WalkRules say which files in a folder the walk takes as messages. The
// zero value is WalkMessages's rules.
type WalkRules struct {
	// AllFiles takes every regular file as a message (or an mbox, by its
	// first line), not only .eml files, mbox files and the files of
	// Maildirs (scan --all-files). Hidden files, a Maildir's tmp/ and
	// symbolic links are still left out.
	AllFiles bool
	// MboxFormat is the variant of the mbox files (scan --mbox-format);
	// Auto, the zero value, decides for each file by its first message.
	MboxFormat mbox.Format
	// MaxSize is the largest message (--max-size), which an mbox's
	// messages are read within; default verify.DefaultMaxSize.
	MaxSize int64
	// Skipped, when set, is told of each file in a folder that is not
	// taken: not a message by the rules (SkipNotMessage), or a symbolic
	// link (SkipLink) or another kind of file (SkipNotRegular). Hidden
	// files are left out without a word: a leading dot means "leave me
	// alone".
	Skipped func(path string, why SkipReason)
}

// SkipReason is why the walk left out a file.
type SkipReason int

// Why a file was left out.
const (
	SkipNotMessage SkipReason = iota // not .eml nor an mbox, not in a Maildir's cur/ or new/
	SkipLink                         // a symbolic link in a folder, never followed
	SkipNotRegular                   // a FIFO, socket or device
)

// CountMessages counts the messages a walk with rules would take under
// paths, and the paths it could not read: the report lines of a scan. It
// reads no message file, but the mbox files through (decompressing those
// compressed), to count their messages as the walk will find them.
func CountMessages(ctx context.Context, paths []string, rules WalkRules) (int, error) {
	rules.Skipped = nil
	named := namedPaths(paths)
	n := 0
	count := func(path string, kind fileKind) error {
		if kind == kindMbox || kind == kindGzipMbox {
			k, err := countMbox(ctx, path, kind, !named[path], rules)
			n += k
			return err
		}
		n++
		return nil
	}
	err := walkKinds(ctx, paths, rules, count, func(string, error) { n++ })
	return n, err
}

// fileKind is how the walk reads a file it takes.
type fileKind int

const (
	kindMessage  fileKind = iota // one message
	kindGzip                     // one message, compressed with gzip
	kindMbox                     // an mbox
	kindGzipMbox                 // an mbox, compressed with gzip
)

// walkFiles is WalkMessages with rules.
func walkFiles(ctx context.Context, paths []string, rules WalkRules, fn func(path string) error, onError func(path string, err error)) error {
	return walkKinds(ctx, paths, rules, func(path string, _ fileKind) error { return fn(path) }, onError)
}

// walkKinds is walkFiles telling fn how to read each file.
func walkKinds(ctx context.Context, paths []string, rules WalkRules, fn func(path string, kind fileKind) error, onError func(path string, err error)) error {
	skipped := rules.Skipped
	if skipped == nil {
		skipped = func(string, SkipReason) {}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			onError(root, err)
			continue
		}
		if !info.IsDir() {
			if err := fn(root, namedKind(root)); err != nil {
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
				if d.Type()&fs.ModeSymlink != 0 {
					skipped(path, SkipLink)
				} else {
					skipped(path, SkipNotRegular)
				}
				return nil
			}
			if dir := filepath.Dir(path); dir != lastDir {
				parent := filepath.Base(dir)
				lastDir, lastInMaildir = dir, (parent == "cur" || parent == "new") && IsMaildir(filepath.Dir(dir))
			}
			if kind, ok := folderKind(path, name, lastInMaildir, rules.AllFiles); ok {
				return fn(path, kind)
			}
			skipped(path, SkipNotMessage)
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
	m, err := fsutil.ReadFileAt(nil, path, path, opts, "")
	if err != nil {
		return nil, err
	}
	return m.Raw, nil
}

// ReadMessage reads a message from r (check's standard input) of at most
// maxSize bytes, with ReadMessageFile's errors.
func ReadMessage(r io.Reader, maxSize int64) ([]byte, error) {
	return fsutil.ReadAll(r, maxSize)
}

// ReadOptions say how ReadMessageFileWith (and the spool's LoadFile) read
// a message: its size limit, whether a symbolic link is refused, and the
// reservation of its bytes before they are read.
type ReadOptions = fsutil.ReadOptions

// TooLargeError is the error of a message file over the size limit, under a
// *verify.Error of reason message_too_large, which identifies the message.
type TooLargeError = fsutil.TooLargeError

// MessageIDOf returns the id of the message that err is about, when err
// knows it (a *TooLargeError), else "".
func MessageIDOf(err error) string { return fsutil.MessageIDOf(err) }

// ErrNotRegular is the error of a message "file" that is not a regular
// file: a symbolic link (never followed in the spool, nor in a folder that
// scan walks), a FIFO, a socket or a device. Its text is the detail of the
// message's read_error.
var ErrNotRegular = fsutil.ErrNotRegular
