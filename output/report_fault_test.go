package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// fullFile is a report file on a disk that fills up: once room bytes have
// been written (room < 0: never), a write writes what still fits and
// fails with ENOSPC, as write(2) does on a full file system.
type fullFile struct {
	*os.File
	room int
}

func (f *fullFile) Write(p []byte) (int, error) {
	if f.room < 0 || len(p) <= f.room {
		if f.room >= 0 {
			f.room -= len(p)
		}
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:f.room])
	f.room -= n
	if err == nil {
		err = syscall.ENOSPC
	}
	return n, err
}

// openFullReport opens a report at path whose file fails as fullFile.
func openFullReport(t *testing.T, path string) (*Report, *fullFile) {
	t.Helper()
	f, readable, err := openAppend(path)
	if err != nil {
		t.Fatal(err)
	}
	ff := &fullFile{File: f, room: -1}
	return newFileReport(path, ff, readable), ff
}

// record is a report line of a length that depends on id and detail
// alone: its time is fixed, since the JSON of time.Now drops trailing zeros
// of its nanoseconds, and a line a byte shorter than line() measured made
// "room for all but a byte" room for all, now and then.
func record(id string, detail int) *Record {
	r := NewRecord(&verify.Message{Envelope: verify.Envelope{Source: "test"}},
		&verify.Result{ID: id, Reason: verify.ReasonNoSignature, Detail: strings.Repeat("d", detail)})
	r.Time = time.Date(2026, 6, 1, 0, 0, 0, 123456789, time.UTC)
	return r
}

// reportIDs reads the report at path: the id of every line, in order. It
// fails the test on a line that is not a whole record.
func reportIDs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("the report ends in a cut line: ...%q", data[max(0, len(data)-40):])
	}
	if len(data) == 0 {
		return nil
	}
	var ids []string
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %d is not a whole record (%v): %q", i+1, err, line)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

// A write that fails part way, wherever it stops (before the first byte, in
// a line, at the end of a line), is taken back: the file ends with its last
// complete line. The lines are kept, and once there is room again each is
// written once.
func TestReportFailedWriteIsTakenBack(t *testing.T) {
	line := func(id string) int {
		data, _ := json.Marshal(record(id, 20))
		return len(data) + 1
	}
	for _, tt := range []struct {
		name string
		room int
	}{
		{"no room", 0},
		{"room for a byte", 1},
		{"cut in the first line", line("b") / 2},
		{"room for one line exactly", line("b")},
		{"cut in the second line", line("b") + line("c")/2},
		{"room for all but a byte", line("b") + line("c") + line("d") - 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.jsonl")
			rep, disk := openFullReport(t, path)
			defer rep.Close()
			rep.Write(record("a", 20))
			if err := rep.Sync(); err != nil {
				t.Fatal(err)
			}
			disk.room = tt.room
			for _, id := range []string{"b", "c", "d"} {
				if err := rep.Write(record(id, 20)); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 { // failing again changes nothing
				if err := rep.Sync(); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("Sync on a full disk: %v, want ENOSPC", err)
				}
				if got := reportIDs(t, path); strings.Join(got, ",") != "a" {
					t.Fatalf("after the failure the report holds %v, want [a]", got)
				}
			}
			disk.room = -1
			rep.Write(record("e", 20))
			if err := rep.Sync(); err != nil {
				t.Fatalf("Sync with room again: %v", err)
			}
			if got := reportIDs(t, path); strings.Join(got, ",") != "a,b,c,d,e" {
				t.Errorf("report = %v, want [a b c d e]", got)
			}
		})
	}
}

// A Write that needs to flush a full buffer, on a full disk, is refused:
// its record is not taken (the caller keeps it), the records taken before
// are kept, and nothing is cut. Once there is room, each record taken is
// written once and the refused one not at all.
func TestReportWriteRefusedWhenBufferFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.jsonl")
	rep, disk := openFullReport(t, path)
	defer rep.Close()
	disk.room = 5000
	big := reportBufferSize / 4
	var taken []string
	refused := ""
	for i := range 8 {
		id := fmt.Sprint("r", i)
		if err := rep.Write(record(id, big)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Write: %v, want ENOSPC", err)
			}
			refused = id
			break
		}
		taken = append(taken, id)
	}
	if refused == "" {
		t.Fatal("no Write was refused on a full disk")
	}
	if got := reportIDs(t, path); len(got) != 0 {
		t.Fatalf("report = %v after the failure, want nothing", got)
	}
	disk.room = -1
	if err := rep.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := reportIDs(t, path); strings.Join(got, ",") != strings.Join(taken, ",") {
		t.Errorf("report = %v, want %v (and not %s)", got, taken, refused)
	}
}

// A report opened on a file that ends in a cut line (a crash during a
// write) closes that line before its own: the cut line stays alone and the
// next record is whole, on its own line. A file that ends with a newline
// gets none. This holds for OpenReport, Reopen and a file found anew at the
// path, and when the newline itself fails to be written (a full disk) it is
// written with the next lines.
func TestReportClosesCutLine(t *testing.T) {
	const cut = `{"id":"old"}` + "\n" + `{"id":"cu`
	// check: the file at path is before, a newline if before does not end
	// with one, then the line of id.
	check := func(t *testing.T, path, before, id string) {
		t.Helper()
		data, _ := os.ReadFile(path)
		want := before
		if !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		rest, ok := strings.CutPrefix(string(data), want)
		var rec Record
		if !ok || strings.Count(rest, "\n") != 1 || json.Unmarshal([]byte(rest), &rec) != nil || rec.ID != id {
			t.Fatalf("report = %q, want %q then the line of %s", data, want, id)
		}
	}
	t.Run("OpenReport", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.jsonl")
		os.WriteFile(path, []byte(cut), 0o644)
		rep, err := OpenReport(path)
		if err != nil {
			t.Fatal(err)
		}
		rep.Write(record("new", 0))
		if err := rep.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, path, cut, "new")
	})
	t.Run("whole last line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.jsonl")
		os.WriteFile(path, []byte(`{"id":"old"}`+"\n"), 0o644)
		rep, _ := OpenReport(path)
		rep.Write(record("new", 0))
		rep.Close()
		check(t, path, `{"id":"old"}`+"\n", "new")
	})
	t.Run("Reopen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.jsonl")
		rep, _ := OpenReport(path)
		defer rep.Close()
		os.Rename(path, path+".1")
		os.WriteFile(path, []byte(cut), 0o644) // another writer's crash
		if err := rep.Reopen(); err != nil {
			t.Fatal(err)
		}
		rep.Write(record("new", 0))
		if err := rep.Sync(); err != nil {
			t.Fatal(err)
		}
		check(t, path, cut, "new")
	})
	t.Run("followed path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.jsonl")
		rep, _ := OpenReport(path)
		defer rep.Close()
		os.Remove(path)
		os.WriteFile(path, []byte(cut), 0o644)
		rep.Write(record("new", 0))
		if err := rep.Sync(); err != nil {
			t.Fatal(err)
		}
		check(t, path, cut, "new")
	})
	t.Run("full disk", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.jsonl")
		os.WriteFile(path, []byte(cut), 0o644)
		rep, disk := openFullReport(t, path)
		disk.room = 0
		rep.Write(record("new", 0))
		if err := rep.Sync(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Sync on a full disk: %v", err)
		}
		if data, _ := os.ReadFile(path); string(data) != cut {
			t.Fatalf("after the failure: %q", data)
		}
		disk.room = -1
		if err := rep.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, path, cut, "new")
	})
}

// Reopen after a failed write (logrotate's SIGHUP while the disk is full):
// the lines the old file could not take are taken back from it and written
// to the new file, once; neither file has a cut line.
func TestReportReopenAfterFailedWrite(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprint("rotated=", rotate), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.jsonl")
			rep, disk := openFullReport(t, path)
			defer rep.Close()
			rep.Write(record("a", 20))
			rep.Sync()
			disk.room = 30
			rep.Write(record("b", 20))
			if err := rep.Sync(); err == nil {
				t.Fatal("Sync on a full disk succeeded")
			}
			if rotate {
				os.Rename(path, path+".1")
			}
			if err := rep.Reopen(); err != nil {
				t.Fatal(err)
			}
			rep.Write(record("c", 20))
			if err := rep.Sync(); err != nil {
				t.Fatal(err)
			}
			want := "a,b,c"
			if rotate {
				if got := reportIDs(t, path+".1"); strings.Join(got, ",") != "a" {
					t.Errorf("rotated report = %v, want [a]", got)
				}
				want = "b,c"
			}
			if got := reportIDs(t, path); strings.Join(got, ",") != want {
				t.Errorf("report = %v, want %s", got, want)
			}
		})
	}
}

// shortWriter takes room bytes, then fails; room < 0: it takes all.
type shortWriter struct {
	bytes.Buffer
	room int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if w.room < 0 || len(p) <= w.room {
		w.room -= len(p)
		return w.Buffer.Write(p)
	}
	n, _ := w.Buffer.Write(p[:w.room])
	w.room = 0
	return n, errors.New("short write")
}

// On a stream (standard output, a pipe) bytes written cannot be taken
// back: after a short write, the rest of the line is what is written next,
// so the line is completed, not repeated.
func TestReportStreamShortWrite(t *testing.T) {
	w := &shortWriter{room: 50}
	rep := &Report{w: w}
	rep.Write(record("a", 20))
	rep.Write(record("b", 20))
	if err := rep.Sync(); err == nil {
		t.Fatal("Sync after a short write succeeded")
	}
	w.room = -1
	rep.Write(record("c", 20))
	if err := rep.Sync(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.jsonl")
	os.WriteFile(path, w.Bytes(), 0o644)
	if got := reportIDs(t, path); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("stream = %v, want [a b c]", got)
	}
}

// Lines are written under an exclusive flock(2) on the report, so that
// another process appending to it (and taking the lock) never writes
// between a cut and its undoing.
func TestReportLocksWhileWriting(t *testing.T) {
	if !haveFlock {
		t.Skip("no flock(2) here")
	}
	path := filepath.Join(t.TempDir(), "report.jsonl")
	rep, _ := OpenReport(path)
	defer rep.Close()
	other, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := flockExclusive(other); err != nil {
		t.Fatal(err)
	}
	rep.Write(record("a", 0))
	done := make(chan error, 1)
	go func() { done <- rep.Sync() }()
	select {
	case err := <-done:
		t.Fatalf("Sync returned (%v) while another process held the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	funlock(other)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := reportIDs(t, path); len(got) != 1 {
		t.Errorf("report = %v", got)
	}
}

// The log file, too, closes a cut line it finds at its end, when opened
// and when reopened.
func TestReopenableFileClosesCutLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certharvest.log")
	os.WriteFile(path, []byte("whole\ncu"), 0o644)
	f, err := OpenReopenable(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("next\n"))
	os.Rename(path, path+".1")
	os.WriteFile(path, []byte("whole\n"), 0o644)
	f.Reopen()
	f.Write([]byte("after\n"))
	f.Close()
	if data, _ := os.ReadFile(path + ".1"); string(data) != "whole\ncu\nnext\n" {
		t.Errorf("first log = %q", data)
	}
	if data, _ := os.ReadFile(path); string(data) != "whole\nafter\n" {
		t.Errorf("second log = %q", data)
	}
}
