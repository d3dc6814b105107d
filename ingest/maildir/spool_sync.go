package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// syncEach makes the messages named durable one file at a time, wherever
// they are now: new/ (with a meta/ context file), or cur/ once archived
// (with the flags Archive gives). Then it syncs the folders' entries. It
// is the portable way; on Linux one syncfs(2) does it all (syncMessages).
func (s *Spool) syncEach(names []string) error {
	for _, name := range names {
		for _, p := range []string{filepath.Join(s.dir, SubNew, name), filepath.Join(s.dir, SubCur, name+infoAccepted), filepath.Join(s.dir, SubCur, name+infoRejected)} {
			err := syncFile(p)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := syncFile(s.metaPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, sub := range []string{SubMeta, SubNew, SubCur} {
		if err := syncDir(filepath.Join(s.dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// syncFile syncs the file at path.
func syncFile(path string) error {
	f, err := openNoFollow(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncDirs makes renames into new/ durable, and into meta/ and cur/ when
// asked. Callers that arrive while a sync runs share the next one (group
// commit).
func (s *Spool) syncDirs(meta, cur bool) error {
	req := syncRequest{meta: meta, cur: cur, reply: make(chan error, 1)}
	select {
	case s.syncReqs <- req:
		return <-req.reply
	case <-s.stop:
		return errors.New("spool closed")
	}
}

// syncRequest asks the syncer for a folder sync.
type syncRequest struct {
	meta, cur bool
	reply     chan error
}

func (s *Spool) syncLoop() {
	defer s.wg.Done()
	for {
		var batch []syncRequest
		select {
		case r := <-s.syncReqs:
			batch = append(batch, r)
		case <-s.stop:
			return
		}
		// Gather every request already waiting: they all share this sync.
	gather:
		for {
			select {
			case r := <-s.syncReqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		meta, cur := false, false
		for _, r := range batch {
			meta, cur = meta || r.meta, cur || r.cur
		}
		dirs := []string{SubNew}
		if meta {
			dirs = append(dirs, SubMeta)
		}
		if cur {
			dirs = append(dirs, SubCur)
		}
		var err error
		for _, sub := range dirs {
			if e := syncDir(filepath.Join(s.dir, sub)); e != nil && err == nil {
				err = e
			}
		}
		for _, r := range batch {
			r.reply <- err
		}
	}
}

// mkdirMode creates dir with exactly mode, umask notwithstanding; a folder
// already there is left as it is.
func mkdirMode(dir string, mode fs.FileMode) error {
	err := os.Mkdir(dir, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
