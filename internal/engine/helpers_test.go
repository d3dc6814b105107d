package engine

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/certharvest/certharvest/output"
)

// readReport reads a JSON-lines report.
func readReport(t *testing.T, path string) []output.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []output.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r output.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("report line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// inCur reports whether the message name is archived in maildir's cur/,
// whatever its verdict (Maildir flags S, and T when rejected).
func inCur(maildir, name string) bool {
	for _, flags := range []string{":2,S", ":2,ST"} {
		if _, err := os.Stat(filepath.Join(maildir, "cur", name+flags)); err == nil {
			return true
		}
	}
	return false
}

// deliver puts a message into new/ the Maildir way.
func deliver(t *testing.T, maildir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(maildir, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
}
