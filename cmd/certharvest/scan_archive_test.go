package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// sampleCorpusInOrder returns the sample corpus's messages and their expected
// reasons, in the order of expected.tsv.
func sampleCorpusInOrder(t *testing.T) (msgs [][]byte, reasons []string) {
	t.Helper()
	f, err := os.Open(sampleDir + "/expected.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header line
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		raw, err := os.ReadFile(filepath.Join(sampleDir, cols[0]))
		if err != nil {
			t.Fatal(err)
		}
		msgs, reasons = append(msgs, raw), append(reasons, cols[1])
	}
	return msgs, reasons
}

// writeMbox writes msgs into an mbox of format at path (compressed with
// gzip when it ends in .gz).
func writeMbox(t *testing.T, path string, format mbox.Format, msgs [][]byte) {
	t.Helper()
	var b bytes.Buffer
	w := mbox.NewWriter(&b, format)
	for i, m := range msgs {
		if err := w.Write(fmt.Sprintf("sender%d@example.org", i), testcorpus.At, m); err != nil {
			t.Fatal(err)
		}
	}
	data := b.Bytes()
	if strings.HasSuffix(path, ".gz") {
		data = gzipBytes(t, data)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
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

// scanArgs returns scan's arguments for the sample's trust and keys, into
// dir's certs/ and report.jsonl, logging to dir's scan.log.
func archiveScanArgs(dir string, extra ...string) []string {
	args := append([]string{"scan"}, sampleFlags()...)
	args = append(args, "--certs", filepath.Join(dir, "certs"), "--report", filepath.Join(dir, "report.jsonl"),
		"--log", filepath.Join(dir, "scan.log"))
	return append(args, extra...)
}

// The sample corpus as an mbox, compressed or not, found by name, by its
// content in a Thunderbird profile, or named: every message gets the
// verdict it gets as an .eml file, each report line placed by its index
// and offset.
func TestScanArchiveSample(t *testing.T) {
	t.Parallel()
	msgs, reasons := sampleCorpusInOrder(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	writeMbox(t, filepath.Join(in, "sample.mbox"), mbox.RD, msgs)
	writeMbox(t, filepath.Join(in, "sample.mbox.gz"), mbox.RD, msgs)
	writeMbox(t, filepath.Join(in, "Thunderbird", "Local Folders", "Inbox"), mbox.RD, msgs)
	named := filepath.Join(dir, "Sent")
	writeMbox(t, named, mbox.RD, msgs)
	r := runBinary(t, archiveScanArgs(dir, in, named)...)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := fmt.Sprintf("%d messages", 4*len(msgs)); !strings.Contains(r.stdout, want) {
		t.Errorf("summary lacks %q:\n%s", want, r.stdout)
	}
	byPath := map[string][]output.Record{}
	for _, rec := range readReport(t, filepath.Join(dir, "report.jsonl")) {
		byPath[rec.Path] = append(byPath[rec.Path], rec)
	}
	for _, path := range []string{filepath.Join(in, "sample.mbox"), filepath.Join(in, "sample.mbox.gz"), filepath.Join(in, "Thunderbird", "Local Folders", "Inbox"), named} {
		recs := byPath[path]
		if len(recs) != len(msgs) {
			t.Errorf("%s: %d report lines, want %d", path, len(recs), len(msgs))
			continue
		}
		for _, rec := range recs {
			i := rec.MboxIndex - 1
			if i < 0 || i >= len(msgs) || rec.MboxOffset == nil {
				t.Errorf("%s: a line without its place: %+v", path, rec)
				continue
			}
			if string(rec.Reason) != reasons[i] {
				t.Errorf("%s: message %d: %s (%s), want %s as an .eml file", path, i+1, rec.Reason, rec.Detail, reasons[i])
			}
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "scan.log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "path=" + named + ",mbox_index=2,mbox_offset="; !strings.Contains(string(log), want) {
		t.Errorf("the log does not place the messages (%q)", want)
	}
}

// A truncated gzip file is a read_error that names it and says so; the
// messages of a compressed mbox before the cut are read.
func TestScanArchiveTruncatedGzip(t *testing.T) {
	t.Parallel()
	msgs, reasons := sampleCorpusInOrder(t)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.mbox.gz")
	writeMbox(t, full, mbox.RD, msgs)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.mbox.gz")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	cutEml := filepath.Join(dir, "cut.eml.gz")
	if err := os.WriteFile(cutEml, gzipBytes(t, msgs[0])[:300], 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, archiveScanArgs(dir, cut, cutEml)...)
	if r.code != exitOperational {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitOperational, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"cannot read " + cutEml + ": the compressed data is cut short (gzip: unexpected EOF)",
		"cannot read " + cut + ": message ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("standard error lacks %q:\n%s", want, r.stderr)
		}
	}
	recs := readReport(t, filepath.Join(dir, "report.jsonl"))
	read := 0
	for _, rec := range recs {
		if rec.Path == cut && rec.Reason != "read_error" {
			if string(rec.Reason) != reasons[rec.MboxIndex-1] {
				t.Errorf("message %d: %s, want %s", rec.MboxIndex, rec.Reason, reasons[rec.MboxIndex-1])
			}
			read++
		}
	}
	if read == 0 || read >= len(msgs) {
		t.Errorf("%d messages read before the cut, of %d", read, len(msgs))
	}
}

// --mbox-format: mboxo cannot be told from mboxrd by content; a message
// whose line began ">>From " before an mboxo writer stored it (unquoted) is
// altered read as mboxrd, and accepted read as mboxo. A variant not known
// is a usage error.
func TestScanMboxFormatFlag(t *testing.T) {
	t.Parallel()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, f.KeysFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	msg, err := f.SignedMessage(testcorpus.BenchAddress(0), testcorpus.WithBody("As the archive said:\n>>From the start.\nFrom me.\n"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "o.mbox")
	writeMbox(t, path, mbox.O, [][]byte{msg})
	for _, tc := range []struct{ format, reason string }{{"auto", "dkim_invalid"}, {"mboxo", "ok"}} {
		out := filepath.Join(dir, tc.format)
		args := []string{"scan", "--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339),
			"--certs", filepath.Join(out, "certs"), "--report", filepath.Join(out, "report.jsonl"), "--mbox-format", tc.format, path}
		r := runBinary(t, args...)
		if r.code != exitOK {
			t.Fatalf("%s: exit %d\n%s", tc.format, r.code, r.stderr)
		}
		recs := readReport(t, filepath.Join(out, "report.jsonl"))
		if len(recs) != 1 || string(recs[0].Reason) != tc.reason {
			t.Errorf("--mbox-format %s: %+v, want %s", tc.format, recs, tc.reason)
		}
	}
	r := runBinary(t, "scan", "--mbox-format", "mboxq", path)
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown mbox format "mboxq"`) {
		t.Errorf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
}
