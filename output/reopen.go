package output

import (
	"fmt"
	"os"
	"sync"
)

// ReopenableFile is a log file that can be reopened by name, so that
// logrotate can move it away and signal the service (SIGHUP) to start a new
// one. Writes are serialised.
type ReopenableFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenReopenable opens path for appending, creating it if needed.
func OpenReopenable(path string) (*ReopenableFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &ReopenableFile{path: path, f: f}, nil
}

// Write implements io.Writer.
func (r *ReopenableFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// Reopen closes the file and opens its path again: after a rotation, a new
// file. On failure the old file stays in use.
func (r *ReopenableFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("reopening %s: %w", r.path, err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (r *ReopenableFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
