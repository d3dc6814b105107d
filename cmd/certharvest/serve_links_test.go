//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A symbolic link in the spool's new/ to a file only certharvest may read
// is never read (issue 13, item 6): it is reported read_error, "not a
// regular file", and archived, not retried; nothing of the file it names
// reaches the report or the log. Before, its first line was the detail of a
// message_malformed.
func TestServeLinkInNew(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("SECRET-FIRST-LINE password=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startServe(t, dir)
	name := "1780308000.M1P1Q1.link"
	if err := os.Symlink(secret, filepath.Join(s.maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != "read_error" || recs[0].Detail != "not a regular file" {
		t.Fatalf("report = %+v, want one read_error: not a regular file", recs)
	}
	if info, err := os.Lstat(filepath.Join(s.maildir, "cur", curName(name, false))); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is not archived as rejected: %v", err)
	}
	report, _ := os.ReadFile(s.report)
	if log := s.ownLog(); bytes.Contains(report, []byte("SECRET")) || bytes.Contains(log, []byte("SECRET")) {
		t.Errorf("the linked file's content was copied out:\n%s\n%s", report, log)
	}
}
