package maildir

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

const testField = "Authentication-Results: certharvest.example.org;\r\n\tdkim=none reason=\"dkim_missing\"\r\n"

// A stamped message goes to cur/ as the field and then the bytes received,
// exactly; the file in new/ is gone, its age kept; a message of bare LF
// lines gets the field with bare LFs; one without a field is moved as it
// is; one gone meanwhile is no error.
func TestArchiveStamped(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Archive: ArchivePolicy{SweepEvery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lf := []byte("From: unix@example.com\n\nmessage with bare LF\n")
	large := append([]byte("From: large@example.com\r\n\r\n"), bytes.Repeat([]byte("0123456789abcde\r\n"), 40<<10)...)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}, ingest.Incoming{Raw: large},
		ingest.Incoming{Raw: lf}, ingest.Incoming{Raw: testMessage(3)})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(s.Dir(), SubNew, names[0]), old, old); err != nil {
		t.Fatal(err)
	}
	// A link in new/ (read_error, never read) is moved as it is.
	if err := os.Symlink("/etc/passwd", filepath.Join(s.Dir(), SubNew, "1780272000.M9P9Q9.link")); err != nil {
		t.Fatal(err)
	}
	err = s.ArchiveStamped([]Stamped{
		{Name: "1780272000.M9P9Q9.link", Accepted: false, Field: []byte(testField)},
		{Name: names[0], Accepted: true, Field: []byte(testField)},
		{Name: names[1], Accepted: false, Field: []byte(testField)},
		{Name: names[2], Accepted: false, Field: []byte(testField)},
		{Name: names[3], Accepted: true},
		{Name: "1780272000.M1P2Q3.gone", Accepted: true, Field: []byte(testField)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, filepath.Join(s.Dir(), SubNew)); len(got) != 0 {
		t.Errorf("new/ = %v, want empty", got)
	}
	if got := listDir(t, filepath.Join(s.Dir(), SubTmp)); len(got) != 0 {
		t.Errorf("tmp/ = %v, want empty", got)
	}
	want := map[string][]byte{
		names[0] + ":2,S":  append([]byte(testField), testMessage(0)...),
		names[1] + ":2,ST": append([]byte(testField), large...),
		names[2] + ":2,ST": append(bytes.ReplaceAll([]byte(testField), []byte("\r\n"), []byte("\n")), lf...),
		names[3] + ":2,S":  testMessage(3),
	}
	wantNames := []string{"1780272000.M9P9Q9.link:2,ST"}
	for name := range want {
		wantNames = append(wantNames, name)
	}
	if target, err := os.Readlink(filepath.Join(s.Dir(), SubCur, wantNames[0])); err != nil || target != "/etc/passwd" {
		t.Errorf("the link in cur/: %q, %v", target, err)
	}
	if got := curNames(t, s); !slices.Equal(got, sorted(wantNames...)) {
		t.Fatalf("cur/ = %v, want %v", got, sorted(wantNames...))
	}
	for name, data := range want {
		if got, err := os.ReadFile(filepath.Join(s.Dir(), SubCur, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s = %.200q (%v), want %.200q", name, got, err, data)
		}
	}
	if info, err := os.Stat(filepath.Join(s.Dir(), SubCur, names[0]+":2,S")); err != nil || !info.ModTime().Equal(old) {
		t.Errorf("archived copy's time %v (%v), want the delivery's %v", info.ModTime(), err, old)
	}
	if st := s.ArchiveStats(); st.Accepted.Messages != 2 || st.Rejected.Messages != 3 {
		t.Errorf("archive stats %+v, want 2 and 3", st)
	}
}

// After a crash, the journal's replay takes a stamped copy in cur/ for the
// message it holds, and leaves it; a damaged one is repaired (as received).
func TestArchiveStampedReplay(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, noRetirement(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}, ingest.Incoming{Raw: testMessage(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ArchiveStamped([]Stamped{{Name: names[0], Accepted: true, Field: []byte(testField)}, {Name: names[1], Accepted: true, Field: []byte(testField)}}); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, SubCur, names[1]+":2,S")
	if err := os.WriteFile(damaged, append([]byte(testField+"X-Other: 1\r\n"), testMessage(1)...), 0o600); err != nil {
		t.Fatal(err)
	}
	crash(s)
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := os.ReadFile(filepath.Join(dir, SubCur, names[0]+":2,S")); !bytes.Equal(got, append([]byte(testField), testMessage(0)...)) {
		t.Errorf("stamped copy after the replay: %q", got)
	}
	if got, _ := os.ReadFile(damaged); !bytes.Equal(got, testMessage(1)) {
		t.Errorf("damaged copy after the replay: %q", got)
	}
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 0 {
		t.Errorf("new/ = %v: delivered again", got)
	}
}

func TestStampedCopy(t *testing.T) {
	msg := testMessage(0)
	for _, tt := range []struct {
		data string
		want bool
	}{
		{testField + string(msg), true},
		{"authentication-results: x; none\n" + string(msg), true},
		{string(msg), false},
		{"Received: by x; Mon, 1 Jun 2026 00:00:00 +0000\r\n" + string(msg), false},
		{testField + "X-Other: 1\r\n" + string(msg), false},
		{testField + "\r\n" + string(msg), false},
		{testField[:len(testField)-2] + string(msg), false},
		{testField + string(msg[1:]), false},
	} {
		if got := stampedCopy([]byte(tt.data), msg); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.data, got, tt.want)
		}
	}
}
