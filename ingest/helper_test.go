package ingest_test

import (
	"os"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/verify"
)

// The inputs are tested against the spool they deliver into in service:
// package maildir's, which package ingest cannot import, hence package
// ingest_test.

// testSpool opens a spool in a folder of its own, closed when the test
// ends.
func testSpool(t testing.TB) *maildir.Spool {
	t.Helper()
	s, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// load reads the message name from new/ with its context, at most maxSize
// bytes of it (LoadFile).
func load(s *maildir.Spool, name string, maxSize int64) (*verify.Message, error) {
	m, _, err := s.LoadFile(name, ingest.ReadOptions{MaxSize: maxSize})
	return m, err
}
