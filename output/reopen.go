package output

import (
	"fmt"
	"os"
	"sync"
)

// ReopenableFile is a log file that can be reopened by name, so that
// logrotate can move it away and signal the service (SIGHUP) to start a new
// one. Writes are serialised. A file that ends in a cut line when it is
// opened (a crash during a write) gets a newline before the next line, so
// that the two are not glued.
type ReopenableFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
	cut  bool // f ends in a cut line: the next Write closes it first
}

// OpenReopenable opens path for appending, creating it if needed.
func OpenReopenable(path string) (*ReopenableFile, error) {
	f, cut, err := openLog(path)
	if err != nil {
		return nil, err
	}
	return &ReopenableFile{path: path, f: f, cut: cut}, nil
}

// openLog opens path for appending and tells whether it ends in a cut line.
func openLog(path string) (f *os.File, cut bool, err error) {
	f, readable, err := openAppend(path)
	if err != nil {
		return nil, false, err
	}
	if readable {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			cut, _ = endsCut(f) // unreadable: written on as it is
		}
	}
	return f, cut, nil
}

// Write implements io.Writer.
func (r *ReopenableFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cut {
		if _, err := r.f.Write([]byte{'\n'}); err != nil {
			return 0, err
		}
		r.cut = false
	}
	return r.f.Write(p)
}

// Reopen closes the file and opens its path again: after a rotation, a new
// file. On failure the old file stays in use.
func (r *ReopenableFile) Reopen() error {
	f, cut, err := openLog(r.path)
	if err != nil {
		return fmt.Errorf("reopening %s: %w", r.path, err)
	}
	r.mu.Lock()
	old := r.f
	r.f, r.cut = f, cut
	r.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (r *ReopenableFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
