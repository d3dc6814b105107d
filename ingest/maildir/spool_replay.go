package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/fsutil"
)

// replay restores, after a crash, the messages that the journal holds and
// whose files may not have reached the disk: a message in neither new/ nor
// cur/ is written into new/ (tmp/ first, then a rename, as Deliver does); one
// whose file there is incomplete or differs from the journal's copy is
// written again. Then it makes all of them durable and deletes the
// segments. It returns the number of the last segment found.
//
// A message already processed and archived is not delivered again; one in
// new/ is processed as it would have been without the crash.
func (s *Spool) replay() (uint64, error) {
	segs, err := listSegments(filepath.Join(s.dir, SubJournal))
	if err != nil {
		return 0, fmt.Errorf("spool: journal: %w", err)
	}
	if len(segs) == 0 {
		return 0, nil
	}
	// First the names, to find every file with one pass over cur/ at most;
	// then the messages, one at a time.
	where := map[string]string{} // name → its file, "" for none
	for _, seg := range segs {
		err := readSegment(seg.path, func(rec record) error {
			where[rec.name] = ""
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("spool: journal: %w", err)
		}
	}
	if err := s.locate(where); err != nil {
		return 0, fmt.Errorf("spool: journal: replaying: %w", err)
	}
	for _, seg := range segs {
		err := readSegment(seg.path, func(rec record) error {
			if err := s.restore(rec, where[rec.name]); err != nil {
				return fmt.Errorf("replaying %s: %w", rec.name, err)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("spool: journal: %w", err)
		}
	}
	if len(where) > 0 {
		if err := s.syncMessages(slices.Collect(maps.Keys(where))); err != nil {
			return 0, fmt.Errorf("spool: journal: replaying: %w", err)
		}
	}
	for _, seg := range segs {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("spool: journal: %w", err)
		}
	}
	return segs[len(segs)-1].seq, nil
}

// locate finds the file of each message named in where: new/<name>, else
// cur/<name>:2,<flags> (Archive gives the flags S or ST; a mail client may
// have changed them).
func (s *Spool) locate(where map[string]string) error {
	newDir, curDir := filepath.Join(s.dir, SubNew), filepath.Join(s.dir, SubCur)
	missing := 0
	for name := range where {
		for _, p := range []string{filepath.Join(newDir, name), filepath.Join(curDir, name+infoAccepted), filepath.Join(curDir, name+infoRejected)} {
			_, err := os.Lstat(p)
			if err == nil {
				where[name] = p
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if where[name] == "" {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	d, err := openFolder(curDir)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		entries, err := d.Readdirnames(1024)
		for _, e := range entries {
			name, _, ok := strings.Cut(e, ":2,")
			if p, known := where[name]; ok && known && p == "" {
				where[name] = filepath.Join(curDir, e)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// restore makes sure the message of rec is whole at path, its file in new/
// or cur/, or delivers it into new/ when path is "".
func (s *Spool) restore(rec record, path string) error {
	archived := path != "" && filepath.Dir(path) == filepath.Join(s.dir, SubCur)
	if path != "" && s.intact(path, rec, !archived) {
		return nil
	}
	// What the interrupted delivery left in tmp/.
	tmp := filepath.Join(s.dir, SubTmp, rec.name)
	for _, p := range []string{tmp, tmp + ".json"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if !archived {
		return s.placeNamed([]record{rec})
	}
	// Processed already: only the archive's copy is repaired.
	if _, err := s.writeMessage(tmp, rec.raw, rec.env); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// intact reports whether the file at path holds the message of rec, and,
// when withContext, its context. Without, the file is in cur/, where it may
// carry the Authentication-Results field ArchiveStamped put on top.
// Anything but a regular file (a link put in its place) is not intact:
// restore replaces it.
func (s *Spool) intact(path string, rec record, withContext bool) bool {
	maxSize := int64(len(rec.raw))
	if !withContext {
		maxSize += maxStampBytes
	}
	f, err := fsutil.ReadFileAt(nil, path, path, ingest.ReadOptions{MaxSize: maxSize, NoFollow: true}, envelopeXattr)
	if err != nil {
		return false
	}
	if !withContext {
		return bytes.Equal(f.Raw, rec.raw) || stampedCopy(f.Raw, rec.raw)
	}
	if !bytes.Equal(f.Raw, rec.raw) {
		return false
	}
	env := f.Xattr
	if env == nil {
		env, err = s.readMeta(rec.name)
	}
	return err == nil && bytes.Equal(env, rec.env)
}
