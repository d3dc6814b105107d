//go:build !linux

package ingest

import (
	"errors"
	"os"
)

var errNoXattr = errors.New("extended attributes are not used on this system")

// setXattr is not used outside Linux: the context goes in meta/ files.
func setXattr(*os.File, string, []byte) error { return errNoXattr }

func getXattr(string, string) ([]byte, error) { return nil, errNoXattr }

// This file also holds the spool's other system-dependent calls.

// fdatasync flushes f to the disk.
func fdatasync(f *os.File) error { return f.Sync() }

// syncMessages makes the files of the messages named durable, one at a
// time, with their folder entries.
func (s *Spool) syncMessages(names []string) error { return s.syncEach(names) }

// lockFile opens path, creating it if needed. It takes no lock here: one
// process at a time must use a spool.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// freeSpace is not measured outside Linux: the health check relies on its
// other probes there.
func freeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }
