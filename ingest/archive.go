package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/verify"
)

// This file is what the walk knows of archives: which files are mbox
// files or compressed (by name, or by their first bytes), and how they are
// read. docs/ARCHIVES.md says it for users.

// gzipMagic begins every gzip file (RFC 1952 §2.3.1).
var gzipMagic = []byte{0x1f, 0x8b}

// hasSuffixFold reports whether name ends in suffix, in any case.
func hasSuffixFold(name, suffix string) bool {
	return len(name) >= len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix)
}

// mboxName reports whether name is an mbox's by its extension (.mbox,
// .mbx), and whether compressed (.mbox.gz, .mbx.gz).
func mboxName(name string) (isMbox, gz bool) {
	for _, ext := range []string{".mbox", ".mbx"} {
		switch {
		case hasSuffixFold(name, ext):
			return true, false
		case hasSuffixFold(name, ext+".gz"):
			return true, true
		}
	}
	return false, false
}

// namedKind is how the walk reads a file the operator named: an .eml file
// as a message, as always; an .eml.gz, .mbox or .mbx file (or compressed)
// by its name; any other by its first bytes, a message unless they say
// otherwise (or cannot be read: the message's read then says why).
func namedKind(path string) fileKind {
	name := filepath.Base(path)
	if isMbox, gz := mboxName(name); isMbox {
		if gz {
			return kindGzipMbox
		}
		return kindMbox
	}
	switch {
	case hasSuffixFold(name, ".eml"):
		return kindMessage
	case hasSuffixFold(name, ".eml.gz"):
		return kindGzip
	}
	if kind, err := sniff(path, false); err == nil {
		return kind
	}
	return kindMessage
}

// folderKind is how the walk reads the file name found in a folder at path,
// and whether it takes it: a file of a Maildir's cur/ or new/ or an .eml
// file is a message, an .eml.gz file a compressed one; a file without an
// extension (Thunderbird's folders), an .mbox or .mbx file (or compressed)
// is an mbox if its first line is a "From " line, and else left out; with
// allFiles, any file is taken, an mbox or a message by its first bytes.
func folderKind(path, name string, inMaildir, allFiles bool) (fileKind, bool) {
	switch {
	case inMaildir || hasSuffixFold(name, ".eml"):
		return kindMessage, true
	case hasSuffixFold(name, ".eml.gz"):
		return kindGzip, true
	}
	isMbox, _ := mboxName(name)
	if !allFiles && !isMbox && filepath.Ext(name) != "" {
		return 0, false
	}
	kind, err := sniff(path, true)
	switch {
	case err == nil && (kind == kindMbox || kind == kindGzipMbox):
		return kind, true
	case !allFiles:
		return 0, false
	case err != nil:
		return kindMessage, true // its read says why it cannot be
	}
	return kind, true
}

// sniff tells a file by its first bytes: compressed with gzip or not, and
// then (decompressed) an mbox if it begins with a "From " line, no RFC 5322
// header field having a space in its name.
func sniff(path string, noFollow bool) (fileKind, error) {
	f, err := fsutil.OpenFile(path, noFollow)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 4096)
	head, _ := br.Peek(len("From "))
	if !bytes.HasPrefix(head, gzipMagic) {
		if bytes.Equal(head, []byte("From ")) {
			return kindMbox, nil
		}
		return kindMessage, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return kindGzip, nil // its read says why
	}
	var p [len("From ")]byte
	if _, err := io.ReadFull(zr, p[:]); err == nil && string(p[:]) == "From " {
		return kindGzipMbox, nil
	}
	return kindGzip, nil
}

// namedPaths returns the set of paths the operator gave: the walk follows
// a symbolic link there, never in a folder.
func namedPaths(paths []string) map[string]bool {
	named := make(map[string]bool, len(paths))
	for _, p := range paths {
		named[p] = true
	}
	return named
}

// openMbox opens the mbox file at path (kind kindMbox or kindGzipMbox) and
// returns its reader and the file to close.
func openMbox(path string, kind fileKind, noFollow bool, opts mbox.ReaderOptions) (*mbox.Reader, io.Closer, error) {
	f, err := fsutil.OpenFile(path, noFollow)
	if err != nil {
		return nil, nil, err
	}
	var src io.Reader = f
	if kind == kindGzipMbox {
		zr, err := newGzipReader(f)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		src = zr
		// A message of a compressed mbox is read through (to find the
		// next) at most as far as one too large is to identify it: a
		// bomb inflates to gigabytes without a "From " line.
		opts.MaxSkip = fsutil.MaxHashedBytes
	}
	return mbox.NewReader(src, opts), f, nil
}

// mboxOptions are the options the walk reads an mbox with, by rules.
func mboxOptions(rules WalkRules) mbox.ReaderOptions {
	return mbox.ReaderOptions{Format: rules.MboxFormat, MaxSize: maxSizeOf(rules),
		Digest: verify.NewMessageIDHash, MaxDigest: fsutil.MaxHashedBytes}
}

func maxSizeOf(rules WalkRules) int64 {
	if rules.MaxSize <= 0 {
		return verify.DefaultMaxSize
	}
	return rules.MaxSize
}

// countMbox counts the report lines the mbox at path makes: its messages,
// or the one line saying it cannot be read.
func countMbox(ctx context.Context, path string, kind fileKind, noFollow bool, rules WalkRules) (int, error) {
	opts := mboxOptions(rules)
	opts.Discard, opts.Digest = true, nil
	r, f, err := openMbox(path, kind, noFollow, opts)
	if err != nil {
		return 1, nil
	}
	defer f.Close()
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		_, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n + 1, nil
		}
		n++
	}
}

// newGzipReader returns the decompressed stream of the gzip file f (any
// number of members, RFC 1952 §2.2), whose errors say the data is
// compressed.
func newGzipReader(f *os.File) (io.Reader, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("not a gzip file: %w", err)
	}
	return &gzipErrors{zr}, nil
}

// gzipErrors says what a gzip reader's failures mean.
type gzipErrors struct{ r io.Reader }

func (g *gzipErrors) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("the compressed data is cut short (gzip: %w)", err)
	default:
		err = fmt.Errorf("the compressed data is damaged (%w)", err)
	}
	return n, err
}

// readGzipMessage reads the message compressed in the gzip file at path:
// at most opts.MaxSize bytes once decompressed, else not kept, and
// decompressed only as far as fsutil.MaxHashedBytes to identify it (a
// bomb is message_too_large in bounded time and memory). Its size is
// known only once decompressed: the whole limit is reserved first. id is
// the message's (verify.MessageIDFor's), hashed as it is read.
func readGzipMessage(path string, opts ReadOptions) (raw []byte, id string, err error) {
	f, err := fsutil.OpenFile(path, opts.NoFollow)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	zr, err := newGzipReader(f)
	if err != nil {
		return nil, "", err
	}
	if opts.Reserve != nil {
		opts.Reserve(opts.MaxSize)
	}
	h := verify.NewMessageIDHash(0)
	buf := make([]byte, 0, gzipSizeHint(f, opts.MaxSize))
	for int64(len(buf)) <= opts.MaxSize {
		if len(buf) == cap(buf) {
			// Double, as far as the limit, so that what growing
			// leaves to the collector stays within the message's size.
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), opts.MaxSize+1))
			copy(grown, buf)
			buf = grown
		}
		k, err := zr.Read(buf[len(buf):cap(buf)])
		h.Write(buf[len(buf) : len(buf)+k])
		buf = buf[:len(buf)+k]
		if errors.Is(err, io.EOF) {
			return buf, verify.MessageIDFromHash(h), nil
		}
		if err != nil {
			return nil, "", err
		}
	}
	// Too large: identify it by its first MaxHashedBytes, never held.
	n := int64(len(buf))
	buf = nil
	more, err := io.CopyBuffer(h, io.LimitReader(zr, fsutil.MaxHashedBytes-n), make([]byte, 64<<10))
	e := &TooLargeError{Size: n + more, Limit: opts.MaxSize}
	if err == nil {
		e.ID = verify.MessageIDFromHash(h)
	}
	return nil, e.ID, &verify.Error{Reason: verify.ReasonTooLarge, Err: e}
}

// gzipSizeHint guesses the decompressed size of the gzip file f from its
// last member's trailer (ISIZE, RFC 1952 §2.3.1), within [512, maxSize+1]:
// a guess for a buffer's first capacity, never trusted.
func gzipSizeHint(f *os.File, maxSize int64) int64 {
	info, err := f.Stat()
	var tail [4]byte
	if err != nil || info.Size() < 18 {
		return 512
	}
	if _, err := f.ReadAt(tail[:], info.Size()-4); err != nil {
		return 512
	}
	isize := int64(tail[0]) | int64(tail[1])<<8 | int64(tail[2])<<16 | int64(tail[3])<<24
	return min(max(isize+1, 512), maxSize+1)
}
