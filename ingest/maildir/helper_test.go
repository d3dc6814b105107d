package maildir

import (
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// load reads the message name from new/ with its context, at most maxSize
// bytes of it (LoadFile).
func load(s *Spool, name string, maxSize int64) (*verify.Message, error) {
	m, _, err := s.LoadFile(name, ingest.ReadOptions{MaxSize: maxSize})
	return m, err
}

// testSpool opens a spool in a folder of its own, closed when the test
// ends.
func testSpool(t *testing.T) *Spool {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
