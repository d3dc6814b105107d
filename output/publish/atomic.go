package publish

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/certharvest/certharvest/output"
)

// AtomicFile is a file written whole or not at all: its content goes to a
// temporary file beside it, which Commit makes durable and renames into
// place, so that a reader (a zone's $INCLUDE, a cron job, a crash) sees
// the old file or the new one, never part of it.
type AtomicFile struct {
	f    *os.File
	path string
	perm os.FileMode
}

// CreateAtomic starts writing path, which Commit will create or replace
// with mode perm.
func CreateAtomic(path string, perm os.FileMode) (*AtomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &AtomicFile{f: f, path: path, perm: perm}, nil
}

// Write writes to the temporary file.
func (a *AtomicFile) Write(p []byte) (int, error) { return a.f.Write(p) }

// Commit makes what was written durable and puts it in place of path.
func (a *AtomicFile) Commit() error {
	err := a.f.Chmod(a.perm)
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.f.Name(), a.path)
	}
	if err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("writing %s: %w", a.path, err)
	}
	return output.SyncDir(filepath.Dir(a.path))
}

// Abort removes the temporary file; path is left as it was. After Commit
// it does nothing.
func (a *AtomicFile) Abort() {
	if a.f.Close() == nil {
		os.Remove(a.f.Name())
	}
}

// WriteFileAtomic writes data to path as an AtomicFile.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	a, err := CreateAtomic(path, perm)
	if err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		a.Abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return a.Commit()
}
