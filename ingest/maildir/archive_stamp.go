package maildir

// Archived with evidence: when the spool has an authserv-id
// (Options.AuthservID), a message goes to cur/ with an
// Authentication-Results field (RFC 8601) on top that records the DKIM
// result of its verification, added as an MTA adds its own. A later scan
// of the archive with --trust-authserv-id can then rely on it once the
// sender's DKIM key is gone (verify/authres.go). The message in new/ is
// never touched: the field is written into a copy, in tmp/, made durable,
// then renamed into cur/ in place of the move, and the file in new/ is
// removed. Beside the one field, the archived message is byte for byte
// the one received.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/certharvest/certharvest/internal/fsutil"
)

// maxStampBytes bounds the field an archived message may carry above the
// bytes received (the journal's replay recognises the copy by it):
// an authserv-id and a domain of 255 bytes each, a selector and a reason,
// with room to spare.
const maxStampBytes = 4 << 10

// Stamped is a message to archive with a header field prepended.
type Stamped struct {
	Name     string // in new/
	Accepted bool
	// Field is the header field, ending in CRLF; each CRLF becomes a bare
	// LF when the message's first line ends in one (Unix mail). Nil: the
	// message is archived as it is (Archive).
	Field []byte
}

// ArchiveStamped archives messages as Archive does, each with its Field
// prepended: the copies are written into tmp/ and made durable together
// (one syncfs(2) on Linux), then renamed into cur/, and the files in new/
// removed. A message gone from new/ meanwhile is skipped, and anything
// there but a regular file (a link: read_error) moved as it is; a message
// whose copy cannot be written (a full disk) is archived as received, and
// the log says so.
func (s *Spool) ArchiveStamped(items []Stamped) error {
	type copied struct {
		Stamped
		tmp, archived string
		modTime       time.Time
	}
	var (
		errs   []error
		copies []copied
	)
	plain := func(it Stamped, why error) {
		if why != nil {
			s.archive.log.Warn("archive: the message goes to cur/ without its Authentication-Results field", "name", it.Name, "error", why)
		}
		if err := s.Archive(it.Name, it.Accepted); err != nil {
			errs = append(errs, err)
		}
	}
	for _, it := range items {
		if it.Field == nil || len(it.Field) > maxStampBytes {
			plain(it, nil)
			continue
		}
		archived := it.Name + infoRejected
		if it.Accepted {
			archived = it.Name + infoAccepted
		}
		tmp := filepath.Join(s.dir, SubTmp, archived)
		modTime, err := s.writeStamped(filepath.Join(s.dir, SubNew, it.Name), tmp, it.Field)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, fsutil.ErrNotRegular):
			// Gone: Archive says what there is to say. Or a link, a FIFO
			// (read_error, never read): moved as it is.
			os.Remove(tmp)
			plain(it, nil)
		case err != nil:
			os.Remove(tmp)
			plain(it, err)
		default:
			copies = append(copies, copied{Stamped: it, tmp: tmp, archived: archived, modTime: modTime})
		}
	}
	if len(copies) == 0 {
		return errors.Join(errs...)
	}
	tmps := make([]string, len(copies))
	for i, c := range copies {
		tmps[i] = c.tmp
	}
	if err := s.syncPaths(tmps); err != nil {
		for _, c := range copies {
			os.Remove(c.tmp)
			plain(c.Stamped, fmt.Errorf("syncing the copy: %w", err))
		}
		return errors.Join(errs...)
	}
	for _, c := range copies {
		if err := os.Rename(c.tmp, filepath.Join(s.dir, SubCur, c.archived)); err != nil {
			os.Remove(c.tmp)
			plain(c.Stamped, err)
			continue
		}
		// Its age is counted from its delivery (archivedTime), not from
		// the copy.
		os.Chtimes(filepath.Join(s.dir, SubCur, c.archived), time.Time{}, c.modTime)
		if err := os.Remove(filepath.Join(s.dir, SubNew, c.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("archiving %s: %w", c.Name, err))
		}
		s.archive.added(s.curDir, c.archived, c.Accepted)
		if s.metaUsed.Load() {
			if err := os.Remove(s.metaPath(c.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("archiving %s: %w", c.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// writeStamped writes field, then the message at src, into a new file at
// dst, unsynced, and returns the message's modification time. A message
// whose first line ends in a bare LF gets the field with bare LFs.
func (s *Spool) writeStamped(src, dst string, field []byte) (time.Time, error) {
	in, err := openNoFollow(src, os.O_RDONLY, 0)
	if err != nil {
		return time.Time{}, err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return time.Time{}, err
	}
	out, err := openNoFollow(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return time.Time{}, err
	}
	// The first line says which line ending the field takes; the rest is
	// copied by the kernel where it can (copy_file_range).
	head := make([]byte, 4096)
	n, err := io.ReadFull(in, head)
	more := err == nil // the message goes on past head
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		out.Close()
		return time.Time{}, err
	}
	head = head[:n]
	if i := bytes.IndexByte(head, '\n'); i >= 0 && (i == 0 || head[i-1] != '\r') {
		field = bytes.ReplaceAll(field, []byte("\r\n"), []byte("\n"))
	}
	_, err = out.Write(field)
	if err == nil {
		_, err = out.Write(head)
	}
	if err == nil && more {
		_, err = io.Copy(out, in)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return info.ModTime(), err
}

// syncPaths makes the files at paths durable: one syncfs(2) of the spool's
// file system on Linux (syncMessages), an fsync each elsewhere.
func (s *Spool) syncPaths(paths []string) error {
	if runtime.GOOS == "linux" {
		return s.syncMessages(nil)
	}
	for _, p := range paths {
		if err := syncFile(p); err != nil {
			return err
		}
	}
	return nil
}

// stampedCopy reports whether data is msg with one header field on top
// whose name is Authentication-Results: what ArchiveStamped makes of it.
func stampedCopy(data, msg []byte) bool {
	if len(data) <= len(msg) || len(data)-len(msg) > maxStampBytes || !bytes.HasSuffix(data, msg) {
		return false
	}
	field := data[:len(data)-len(msg)]
	name, _, ok := bytes.Cut(field, []byte(":"))
	if !ok || !bytes.EqualFold(name, []byte("Authentication-Results")) || field[len(field)-1] != '\n' {
		return false
	}
	// One field: every line after the first is a continuation.
	lines := bytes.Split(field[:len(field)-1], []byte("\n"))
	for _, l := range lines[1:] {
		if len(l) == 0 || (l[0] != ' ' && l[0] != '\t') {
			return false
		}
	}
	return true
}
