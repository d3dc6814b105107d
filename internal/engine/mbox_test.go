package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// mboxFile writes msgs into an mbox of format and returns it with the
// offset of each message's "From " line.
func mboxFile(t *testing.T, format mbox.Format, crlf bool, msgs [][]byte) ([]byte, []int64) {
	t.Helper()
	var b bytes.Buffer
	w := mbox.NewWriter(&b, format)
	w.CRLF = crlf
	var offsets []int64
	for i, m := range msgs {
		offsets = append(offsets, int64(b.Len()))
		if err := w.Write(fmt.Sprintf("sender%d@example.org", i), testcorpus.At, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes(), offsets
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// scanPaths runs scan's engine over paths and returns the report.
func scanPaths(t *testing.T, pipeline *verify.Pipeline, paths []string, rules ingest.WalkRules) []output.Record {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "report.jsonl")
	report, err := output.OpenReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	walk := ingest.NewWalk(paths, ingest.WalkOptions{Rules: rules})
	e := New(pipeline, walk, report, Options{Workers: 2, MaxSize: rules.MaxSize})
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := report.Close(); err != nil {
		t.Fatal(err)
	}
	if err := walk.Err(); err != nil {
		t.Fatal(err)
	}
	return readReport(t, reportPath)
}

// Messages signed with DKIM and S/MIME, whose bodies have lines an mbox
// quotes, are accepted from every variant of mbox, compressed or not, in
// CRLF or LF, found by name, by content (Thunderbird's folders) or named:
// their bytes come back exact. Each report line places its message (index,
// offset), and every message, a copy of another included, has an id of
// its own.
func TestEngineMboxSignedAccepted(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	body := "From the start of a line.\n>From quoted once.\n>>From quoted twice.\n\nFrom after a blank line.\n"
	var msgs [][]byte
	for i, opts := range [][]testcorpus.MessageOption{
		nil,
		{testcorpus.WithBody(body)},
		{testcorpus.WithBody(body), testcorpus.BareLF()},
		{testcorpus.Opaque()},
	} {
		m, err := f.SignedMessage(testcorpus.BenchAddress(i), opts...)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, msgs[1]) // the same message twice
	pipeline := corpusPipeline(t, f)

	dir := t.TempDir()
	type file struct {
		path    string
		offsets []int64
	}
	var files []file
	add := func(name string, data []byte, offsets []int64) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, file{path, offsets})
	}
	rd, rdOffsets := mboxFile(t, mbox.RD, false, msgs)
	add("a.mbox", rd, rdOffsets)
	add("b.mbox.gz", gzipped(t, rd), rdOffsets)
	crlf, crlfOffsets := mboxFile(t, mbox.RD, true, msgs)
	add("c.mbx", crlf, crlfOffsets)
	cl2, cl2Offsets := mboxFile(t, mbox.CL2, false, msgs)
	add("d.mbox", cl2, cl2Offsets)
	add("e.mbox.gz", gzipped(t, cl2), cl2Offsets)
	// Thunderbird's profile: folders are files without an extension,
	// beside their .msf index and a .sbd folder of subfolders.
	add("Thunderbird/Mail/Local Folders/Inbox", rd, rdOffsets)
	add("Thunderbird/Mail/Local Folders/Inbox.sbd/Archives", crlf, crlfOffsets)
	if err := os.WriteFile(filepath.Join(dir, "Thunderbird/Mail/Local Folders/Inbox.msf"), []byte("// <!-- <mdb:mork:z v=\"1.4\"/> -->"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Thunderbird/Mail/Local Folders/msgFilterRules"), []byte("version=\"9\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var skipped []string
	recs := scanPaths(t, pipeline, []string{dir}, ingest.WalkRules{Skipped: func(path string, _ ingest.SkipReason) {
		skipped = append(skipped, filepath.Base(path))
	}})
	if want := []string{"Inbox.msf", "msgFilterRules"}; strings.Join(skipped, ",") != strings.Join(want, ",") {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	// mboxo, read as such: none of these messages has a line that began
	// ">From " before it was stored... but msgs[1] has; so only the others.
	o, oOffsets := mboxFile(t, mbox.O, false, [][]byte{msgs[0], msgs[3]})
	add("f.mbox", o, oOffsets)
	add("g.mbox.gz", gzipped(t, o), oOffsets)
	recs = append(recs, scanPaths(t, pipeline, []string{files[len(files)-2].path, files[len(files)-1].path}, ingest.WalkRules{MboxFormat: mbox.O})...)

	byPath := map[string][]output.Record{}
	ids := map[string]map[string]int{} // path: id: index
	for _, rec := range recs {
		byPath[rec.Path] = append(byPath[rec.Path], rec)
		if rec.Outcome != output.OutcomeAccepted {
			t.Errorf("%s#%d: %s: %s", rec.Path, rec.MboxIndex, rec.Reason, rec.Detail)
		}
		if ids[rec.Path] == nil {
			ids[rec.Path] = map[string]int{}
		}
		if other, ok := ids[rec.Path][rec.ID]; ok {
			t.Errorf("%s: messages %d and %d have one id, %s", rec.Path, rec.MboxIndex, other, rec.ID)
		}
		ids[rec.Path][rec.ID] = rec.MboxIndex
	}
	for _, fl := range files {
		got := byPath[fl.path]
		if len(got) != len(fl.offsets) {
			t.Errorf("%s: %d report lines, want %d", fl.path, len(got), len(fl.offsets))
			continue
		}
		seen := map[int]bool{}
		for _, rec := range got {
			i := rec.MboxIndex
			if i < 1 || i > len(fl.offsets) || seen[i] || rec.MboxOffset == nil || *rec.MboxOffset != fl.offsets[i-1] {
				t.Errorf("%s: message %d at %v, want offset %d", fl.path, i, rec.MboxOffset, fl.offsets[max(0, min(i, len(fl.offsets))-1)])
			}
			seen[i] = true
		}
	}
}

// A compressed message is read transparently; a message too large in an
// mbox is message_too_large, between messages read as usual; a truncated
// gzip file is a read_error that says so. (Gzip bombs: the binary's tests,
// cmd/certharvest/scan_archive_test.go, without the race detector.)
func TestEngineArchiveLimits(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	pipeline := corpusPipeline(t, f)
	ok, err := f.SignedMessage(testcorpus.BenchAddress(0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	big := append(bytes.Clone(ok[:len(ok)-2]), bytes.Repeat([]byte("x"), 20000)...)
	rd, _ := mboxFile(t, mbox.RD, false, [][]byte{ok, big, ok})
	mboxPath := write("big.mbox", rd)
	emlGz := write("m.eml.gz", gzipped(t, ok))
	full := gzipped(t, rd)
	cut := write("cut.mbox.gz", full[:len(full)*2/3])
	cutEml := write("cut.eml.gz", gzipped(t, ok)[:200])
	recs := scanPaths(t, pipeline, []string{mboxPath, emlGz, cut, cutEml}, ingest.WalkRules{MaxSize: 16000})
	got := map[string][]output.Record{}
	for _, rec := range recs {
		got[filepath.Base(rec.Path)] = append(got[filepath.Base(rec.Path)], rec)
	}
	reasons := func(name string) string {
		var rs []string
		for _, rec := range got[name] {
			rs = append(rs, fmt.Sprintf("%d:%s", rec.MboxIndex, rec.Reason))
		}
		return strings.Join(rs, " ")
	}
	if r := reasons("big.mbox"); !strings.Contains(r, "1:ok") || !strings.Contains(r, "2:message_too_large") || !strings.Contains(r, "3:ok") || len(got["big.mbox"]) != 3 {
		t.Errorf("big.mbox: %s", r)
	}
	for _, rec := range got["big.mbox"] {
		if rec.MboxIndex == 2 && !strings.Contains(rec.Detail, "the limit is 16000") {
			t.Errorf("too large: %q", rec.Detail)
		}
	}
	if r := reasons("m.eml.gz"); r != "0:ok" {
		t.Errorf("m.eml.gz: %s", r)
	}
	if r := reasons("cut.eml.gz"); r != "0:read_error" || !strings.Contains(got["cut.eml.gz"][0].Detail, "cut.eml.gz: the compressed data is cut short") {
		t.Errorf("cut.eml.gz: %s %q", r, got["cut.eml.gz"][0].Detail)
	}
	cutRecs := got["cut.mbox.gz"]
	last := cutRecs[len(cutRecs)-1]
	if last.Reason != verify.ReasonReadError || !strings.Contains(last.Detail, "cut.mbox.gz: message ") || !strings.Contains(last.Detail, "the compressed data is cut short") {
		t.Errorf("cut.mbox.gz: %s", reasons("cut.mbox.gz"))
	}
}

// The messages of one mbox that cannot be read each have an id of their
// own, of the path and the index, the same on every run.
func TestReadErrorIDPerMboxMessage(t *testing.T) {
	ids := map[string]bool{}
	for _, m := range []*verify.Message{{Path: "a.mbox"}, {Path: "a.mbox", MboxIndex: 1}, {Path: "a.mbox", MboxIndex: 2}, {Path: "b.mbox", MboxIndex: 1}} {
		res := ReadErrorResult(m, fmt.Errorf("cannot"), testcorpus.At)
		again := ReadErrorResult(&verify.Message{Path: m.Path, MboxIndex: m.MboxIndex}, fmt.Errorf("cannot"), testcorpus.At)
		if ids[res.ID] || res.ID != again.ID || res.Reason != verify.ReasonReadError {
			t.Errorf("%s#%d: id %s (again %s), %s", m.Path, m.MboxIndex, res.ID, again.ID, res.Reason)
		}
		ids[res.ID] = true
	}
}
