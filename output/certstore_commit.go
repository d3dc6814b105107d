package output

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomicIn writes data to the file name in d so that it holds
// either its old content or all of data, even across a crash: a temporary
// file in d (named tempName(), whatever name is) is written and synced,
// renamed over name, and d synced so the rename itself is durable.
func writeFileAtomicIn(d folder, name string, data []byte, perm os.FileMode) error {
	path := filepath.Join(d.path, name)
	f, tmp, err := d.createTemp()
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			d.remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := d.rename(tmp, name); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	ok = true
	return d.sync()
}

// SyncDir makes the entries of a folder (a rename into it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}

// tempFile is the new content of a file, written to a temporary file beside
// it and not yet synced (group commit). The temporary file is unnamed where
// the system allows (internal/tmpfile): then no temporary name is created,
// renamed, or left behind by a crash.
type tempFile struct {
	f    tempHandle
	dir  folder // where it goes; the caller keeps it open until placed
	name string // its name in dir
	tmp  string // its temporary name in dir; "" when unnamed: place links it
	// linkByFD: an unnamed file is linked by its descriptor (folder.link).
	linkByFD bool
}

// tempHandle is an open temporary file: an *os.File, or a rawFile (an
// unnamed file on Linux).
type tempHandle interface {
	Write(p []byte) (int, error)
	Chmod(mode os.FileMode) error
	Sync() error
	Close() error
	Fd() uintptr
}

// tempOptions say how writeTemp makes a file, as the store's folder
// allows.
type tempOptions struct {
	unnamed  bool // an unnamed file (internal/tmpfile)
	linkByFD bool // linked by its descriptor (folder.link)
}

// path is where t goes, for messages.
func (t *tempFile) path() string { return filepath.Join(t.dir.path, t.name) }

// writeTemp writes data to a temporary file in d, to be placed as name,
// without syncing it; an unnamed one when opts.unnamed is set.
func writeTemp(d folder, name string, data []byte, perm os.FileMode, opts tempOptions) (*tempFile, error) {
	t := &tempFile{dir: d, name: name, linkByFD: opts.linkByFD}
	var err error
	if opts.unnamed {
		t.f, err = d.createUnnamed(perm)
	} else {
		t.f, t.tmp, err = d.createTemp()
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", t.path(), err)
	}
	if _, err := t.f.Write(data); err != nil {
		t.discard()
		return nil, fmt.Errorf("writing %s: %w", t.path(), err)
	}
	// Always: the mode a file is created with is the umask's, or a
	// default ACL's of the folder, which can change at any time.
	if err := t.f.Chmod(perm); err != nil {
		t.discard()
		return nil, fmt.Errorf("writing %s: %w", t.path(), err)
	}
	return t, nil
}

// place closes the temporary file and puts it at its name, replacing what
// is there.
func (t *tempFile) place() error {
	f := t.f
	t.f = nil
	if t.tmp != "" {
		if err := f.Close(); err != nil {
			t.dir.remove(t.tmp)
			return fmt.Errorf("writing %s: %w", t.path(), err)
		}
		if err := t.dir.rename(t.tmp, t.name); err != nil {
			t.dir.remove(t.tmp)
			return fmt.Errorf("renaming into %s: %w", t.path(), err)
		}
		return nil
	}
	defer f.Close()
	err := t.dir.link(f, t.name, t.linkByFD)
	if errors.Is(err, fs.ErrExist) {
		// A file to replace (a link never does): link under a
		// temporary name, then rename over it.
		tmp := tempName()
		if err = t.dir.link(f, tmp, t.linkByFD); err == nil {
			if err = t.dir.rename(tmp, t.name); err != nil {
				t.dir.remove(tmp)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("placing %s: %w", t.path(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", t.path(), err)
	}
	return nil
}

// discard removes a temporary file that will not be placed.
func (t *tempFile) discard() {
	if t == nil || t.f == nil {
		return
	}
	t.f.Close()
	if t.tmp != "" {
		t.dir.remove(t.tmp)
	}
	t.f = nil
}

// commitRequest is the files of one Store, to be made durable and renamed
// into place step by step: the files of a step together, one folder sync
// for them, and the next step only once they are durably in place.
type commitRequest struct {
	steps  [][]*tempFile
	err    error
	failed *tempFile // the file err is about
}

func (r *commitRequest) fail(t *tempFile, err error) {
	if r.err == nil {
		r.err, r.failed = err, t
	}
}

// commitGroup makes the files of a group durable, renames them into place
// and syncs their folders, as writeFileAtomicIn does for one file. The steps
// of a request are renamed in rounds: its certificates are renamed only
// once the history copies of those they replace are durably in place, as
// when each is written by writeFileAtomicIn.
func commitGroup(group []*commitRequest) {
	var files []*tempFile
	rounds := 0
	for _, r := range group {
		for _, step := range r.steps {
			files = append(files, step...)
		}
		rounds = max(rounds, len(r.steps))
	}
	// The data first: a crash must not leave a renamed file without its
	// content.
	synced := false
	if len(files) > 1 {
		if ok, err := syncFileSystem(files[0].f); ok {
			synced = true
			if err != nil {
				for _, r := range group {
					r.fail(r.steps[0][0], fmt.Errorf("syncing %s: %w", r.steps[0][0].path(), err))
				}
			}
		}
	}
	if !synced {
		for _, r := range group {
			for _, step := range r.steps {
				for _, t := range step {
					if r.err != nil {
						break
					}
					if err := t.f.Sync(); err != nil {
						r.fail(t, fmt.Errorf("syncing %s: %w", t.path(), err))
					}
				}
			}
		}
	}
	for round := range rounds {
		// Each folder is synced once per round, for every request that
		// renamed a file into it.
		dirs := map[string][]*commitRequest{}
		var order []folder
		for _, r := range group {
			if round >= len(r.steps) {
				continue
			}
			for _, t := range r.steps[round] {
				if r.err != nil {
					t.discard()
					continue
				}
				if err := t.place(); err != nil {
					r.fail(t, err)
					continue
				}
				if _, ok := dirs[t.dir.path]; !ok {
					order = append(order, t.dir)
				}
				dirs[t.dir.path] = append(dirs[t.dir.path], r)
			}
		}
		for _, dir := range order {
			if err := dir.sync(); err != nil {
				for _, r := range dirs[dir.path] {
					r.fail(r.steps[round][0], err)
				}
			}
		}
	}
}
