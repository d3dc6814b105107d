package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// binary is the certharvest binary built for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certharvest-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "certharvest")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		// -race needs cgo; fall back to a plain build.
		build = exec.Command("go", "build", "-o", binary, ".")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building certharvest:", err)
			os.Exit(1)
		}
	}
	code := pg.Run(m) // m.Run, then stop the shared PostgreSQL (pgstore_test.go)
	os.RemoveAll(dir)
	os.Exit(code)
}

// The memory tests measure the service as it is shipped: built without the
// race detector, whose shadow memory multiplies the resident size and
// whose instrumentation makes go-smtp's DATA reader (a byte at a time) 35
// times slower.
var plainBuild struct {
	once sync.Once
	path string
	err  error
}

// plainBinary builds certharvest without the race detector, once.
func plainBinary(t *testing.T) string {
	t.Helper()
	plainBuild.once.Do(func() {
		plainBuild.path = filepath.Join(filepath.Dir(binary), "certharvest-plain")
		out, err := exec.Command("go", "build", "-o", plainBuild.path, ".").CombinedOutput()
		if err != nil {
			plainBuild.err = fmt.Errorf("building certharvest: %v\n%s", err, out)
		}
	})
	if plainBuild.err != nil {
		t.Fatal(plainBuild.err)
	}
	return plainBuild.path
}

const sampleDir = "../../testdata/sample"

// sampleFlags are the flags that make a run offline and reproducible.
func sampleFlags() []string {
	return []string{"--trust", sampleDir + "/trust.pem", "--dkim-keys", sampleDir + "/dkim-keys.txt", "--at", "2026-06-01T00:00:00Z"}
}

type runResult struct {
	code           int
	stdout, stderr string
}

func runBinary(t *testing.T, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{code, stdout.String(), stderr.String()}
}

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

// expectedSample reads testdata/sample/expected.tsv: file name -> reason.
func expectedSample(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(sampleDir + "/expected.tsv")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		fields := strings.Split(line, "\t")
		want[filepath.Base(fields[0])] = fields[1]
	}
	return want
}

// treeDigest hashes every file under dir, to prove a run left it untouched.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		fmt.Fprintf(h, "%s %v %d\n", path, info.Mode(), info.Size())
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(path)
			h.Write(data)
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestScanSample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs, report := filepath.Join(dir, "certs"), filepath.Join(dir, "report.jsonl")
	before := treeDigest(t, sampleDir)
	args := append([]string{"scan"}, sampleFlags()...)
	args = append(args, "--certs", certs, "--report", report, "--log", filepath.Join(dir, "log"), sampleDir+"/messages")
	r := runBinary(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if treeDigest(t, sampleDir) != before {
		t.Error("scan modified its input")
	}
	want := expectedSample(t)
	recs := readReport(t, report)
	if len(recs) != len(want) {
		t.Fatalf("%d report lines, want %d", len(recs), len(want))
	}
	accepted := 0
	for _, rec := range recs {
		name := filepath.Base(rec.Path)
		if string(rec.Reason) != want[name] {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, want[name])
		}
		if rec.Source != "scan" || rec.ID == "" || rec.Detail == "" {
			t.Errorf("%s: incomplete record %+v", name, rec)
		}
		if rec.Outcome != output.OutcomeAccepted {
			continue
		}
		accepted++
		if rec.Action != "stored" || rec.Cert == nil || rec.DKIM == nil {
			t.Errorf("%s: accepted record lacks action, cert or dkim: %+v", name, rec)
			continue
		}
		wantFile := filepath.Join(certs, rec.From+".crt")
		if rec.CertFile != wantFile {
			t.Errorf("%s: cert_file %s, want %s", name, rec.CertFile, wantFile)
		}
		checkPEM(t, wantFile, rec.Cert.SHA256)
	}
	entries, _ := filepath.Glob(filepath.Join(certs, "*.crt"))
	if len(entries) != accepted {
		t.Errorf("%d files in the certificate folder, %d accepted", len(entries), accepted)
	}
	for _, s := range []string{fmt.Sprintf("%d messages", len(want)), fmt.Sprintf("%d accepted", accepted), "rejected  cert_expired"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("summary lacks %q:\n%s", s, r.stdout)
		}
	}

	// A second run over the same mail changes nothing.
	r = runBinary(t, args...)
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	recs = readReport(t, report)
	for _, rec := range recs[len(want):] {
		if rec.Outcome == output.OutcomeAccepted && rec.Action != "unchanged" {
			t.Errorf("second run: %s action %s, want unchanged", rec.Path, rec.Action)
		}
	}
}

// checkPEM checks a stored certificate file: PEM, the right certificate,
// and readable by openssl where it is installed.
func checkPEM(t *testing.T, path, sha string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN CERTIFICATE-----\n")) {
		t.Errorf("%s is not PEM", path)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		return
	}
	out, err := exec.Command(openssl, "x509", "-in", path, "-noout", "-fingerprint", "-sha256").CombinedOutput()
	if err != nil {
		t.Errorf("openssl x509 %s: %v\n%s", path, err, out)
		return
	}
	got := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(string(out[bytes.IndexByte(out, '=')+1:])), ":", ""))
	if got != sha {
		t.Errorf("%s: openssl fingerprint %s, report says %s", path, got, sha)
	}
}

func TestScanExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	msg := sampleDir + "/messages/01-ok-rsa-detached.eml"
	out := []string{"--certs", filepath.Join(dir, "certs"), "--report", filepath.Join(dir, "r.jsonl")}
	tests := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"no command", nil, 2, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"no path", append([]string{"scan"}, sampleFlags()...), 2, "no PATH"},
		{"bad flag", []string{"scan", "--nope", msg}, 2, "unknown flag: --nope"},
		{"bad time", []string{"scan", "--at", "yesterday", msg}, 2, "RFC 3339"},
		{"bad alignment", []string{"scan", "--dkim-align", "loose", msg}, 2, "strict or relaxed"},
		{"bad size", []string{"scan", "--max-size", "lots", msg}, 2, "max-size"},
		{"missing trust bundle", append([]string{"scan", "--trust", filepath.Join(dir, "none.pem")}, append(out, msg)...), 1, "trust bundle"},
		{"trust bundle without certificates", append([]string{"scan", "--trust", file}, append(out, msg)...), 1, "no usable certificate"},
		{"unwritable certificate folder", append(append([]string{"scan"}, sampleFlags()...), "--certs", filepath.Join(file, "certs"), msg), 1, "certificate folder"},
		{"help", []string{"scan", "--help"}, 0, "Examples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.say) {
				t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", tt.say, r.stdout, r.stderr)
			}
		})
	}
}

func TestScanUnreadableAndOversize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	report := filepath.Join(dir, "r.jsonl")
	args := append([]string{"scan"}, sampleFlags()...)
	args = append(args, "--certs", filepath.Join(dir, "certs"), "--report", report, "--max-size", "3000",
		filepath.Join(dir, "missing.eml"), sampleDir+"/messages/01-ok-rsa-detached.eml")
	r := runBinary(t, args...)
	// The missing path is an operational error, the message too large is
	// a verdict.
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	recs := readReport(t, report)
	got := map[string]string{}
	for _, rec := range recs {
		got[filepath.Base(rec.Path)] = string(rec.Reason)
	}
	if got["missing.eml"] != "read_error" || got["01-ok-rsa-detached.eml"] != "message_too_large" {
		t.Errorf("reasons = %v", got)
	}
	// The message too large to read is identified by its bytes, as any
	// other, not by the hash of nothing.
	raw, _ := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	for _, rec := range recs {
		if rec.Reason == verify.ReasonTooLarge && rec.ID != verify.MessageIDFor(&verify.Message{Raw: raw}) {
			t.Errorf("id of the message too large: %q", rec.ID)
		}
	}
}

// TestScanMissingPath: a path that does not exist is named on standard
// error and the exit status is 1, after the other paths are processed; each
// read_error has its own id, the same on every run.
func TestScanMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	report := filepath.Join(dir, "r.jsonl")
	missing1, missing2 := filepath.Join(dir, "nowhere"), filepath.Join(dir, "missing.eml")
	args := append([]string{"scan"}, sampleFlags()...)
	args = append(args, "--certs", filepath.Join(dir, "certs"), "--report", report, "--workers", "1",
		missing1, sampleDir+"/messages/01-ok-rsa-detached.eml", missing2)
	ids := map[string][]string{}
	for run := range 2 {
		r := runBinary(t, args...)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
		}
		for _, p := range []string{missing1, missing2} {
			if want := "certharvest scan: cannot read " + p + ": stat " + p + ": no such file or directory\n"; !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, "certharvest scan: 2 paths could not be read\n") {
			t.Errorf("stderr lacks the count:\n%s", r.stderr)
		}
		recs := readReport(t, report)[3*run:]
		if len(recs) != 3 || recs[1].Reason != verify.ReasonOK {
			t.Fatalf("run %d: report = %+v, want 3 lines, the message in the middle accepted", run, recs)
		}
		for _, rec := range recs {
			ids[rec.Path] = append(ids[rec.Path], rec.ID)
		}
		for _, rec := range []output.Record{recs[0], recs[2]} {
			if rec.Reason != verify.ReasonReadError || rec.Outcome != output.OutcomeRejected ||
				rec.Detail != "reading "+rec.Path+": stat "+rec.Path+": no such file or directory" {
				t.Errorf("record = %+v", rec)
			}
			// Verified at --at, as every verdict is.
			if want := "2026-06-01T00:00:00Z"; rec.VerifiedAt.Format(time.RFC3339) != want {
				t.Errorf("read_error verified_at %s, want --at %s", rec.VerifiedAt, want)
			}
		}
	}
	a, b := ids[missing1], ids[missing2]
	if a[0] == b[0] || a[0] != a[1] || b[0] != b[1] || len(a[0]) != 12 {
		t.Errorf("ids %v and %v: want one of its own per path, the same on each run", a, b)
	}
	if a[0] == verify.MessageIDFor(&verify.Message{}) {
		t.Errorf("id %s is that of the empty message", a[0])
	}
}

func TestScanMaildir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o755)
	}
	src, _ := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	other, _ := os.ReadFile(sampleDir + "/messages/02-ok-ecdsa-detached.eml")
	os.WriteFile(filepath.Join(md, "new", "1700000000.1.host"), src, 0o644)
	os.WriteFile(filepath.Join(md, "cur", "1700000000.2.host:2,S"), other, 0o644)
	os.WriteFile(filepath.Join(md, "tmp", "1700000000.3.host"), []byte("half-delivered"), 0o644)
	report := filepath.Join(dir, "r.jsonl")
	args := append([]string{"scan"}, sampleFlags()...)
	r := runBinary(t, append(args, "--certs", filepath.Join(dir, "certs"), "--report", report, md)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	recs := readReport(t, report)
	if len(recs) != 2 {
		t.Fatalf("%d report lines, want 2 (tmp/ must be skipped)", len(recs))
	}
	for _, rec := range recs {
		if rec.Reason != "ok" {
			t.Errorf("%s: %s %s", rec.Path, rec.Reason, rec.Detail)
		}
	}
}

func TestCheck(t *testing.T) {
	sample, err := filepath.Abs(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--trust", sample + "/trust.pem", "--dkim-keys", sample + "/dkim-keys.txt", "--at", "2026-06-01T00:00:00Z"}
	t.Chdir(t.TempDir())

	r := runBinary(t, append(append([]string{"check"}, flags...), sample+"/messages/01-ok-rsa-detached.eml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{"DKIM passed", "chain verified", "verdict: ACCEPTED", "nothing written"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("story lacks %q:\n%s", s, r.stdout)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("check without --certs wrote %v", entries)
	}

	r = runBinary(t, append(append([]string{"check"}, flags...), sample+"/messages/27-cert-expired.eml")...)
	if r.code != 3 || !strings.Contains(r.stdout, "verdict: REJECTED") || !strings.Contains(r.stdout, "cert_expired") {
		t.Fatalf("expired: exit %d\n%s", r.code, r.stdout)
	}

	r = runBinary(t, append(append([]string{"check", "--certs", "out", "--json"}, flags...), sample+"/messages/02-ok-ecdsa-detached.eml")...)
	if r.code != 0 || !strings.Contains(r.stdout, `"action":"stored"`) {
		t.Fatalf("with --certs: exit %d\n%s", r.code, r.stdout)
	}
	if _, err := os.Stat("out/ecdsa.detached@example.com.crt"); err != nil {
		t.Error(err)
	}
}

func TestReasonsDocIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../../docs/REASONS.md")
	if err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, "reasons", "--markdown")
	if !strings.Contains(string(doc), r.stdout) {
		t.Errorf("docs/REASONS.md is out of date; regenerate it with certharvest reasons --markdown:\n%s", r.stdout)
	}
}

// TestReasonsNoTrailingSpace: reasons' lines end with their text, the
// temporary ones with "(temporary)".
func TestReasonsNoTrailingSpace(t *testing.T) {
	t.Parallel()
	r := runBinary(t, "reasons")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(verify.Reasons()) {
		t.Fatalf("%d lines, want one per reason (%d):\n%s", len(lines), len(verify.Reasons()), r.stdout)
	}
	for i, line := range lines {
		if line != strings.TrimRight(line, " \t") {
			t.Errorf("trailing space: %q", line)
		}
		if reason := verify.Reasons()[i]; reason.Temporary() != strings.HasSuffix(line, " (temporary)") {
			t.Errorf("%s: %q", reason, line)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	args := append([]string{"check", "--log-format", "json"}, sampleFlags()...)
	r := runBinary(t, append(args, sampleDir+"/messages/01-ok-rsa-detached.eml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	n := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("record lacks msg or level: %q", line)
		}
		if strings.HasPrefix(rec["msg"].(string), "| ") {
			t.Errorf("JSON records carry the text format's prefix: %q", line)
		}
		n++
	}
	if n < 10 {
		t.Errorf("%d JSON log records, want the whole story", n)
	}
	if r := runBinary(t, "check", "--log-format", "xml", "x.eml"); r.code != 2 {
		t.Errorf("--log-format xml: exit %d", r.code)
	}
}

// TestScanSummaryOneMessage: one message is "1 message", not "1 messages",
// and the one root of the trust bundle "1 root".
func TestScanSummaryOneMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append([]string{"scan"}, sampleFlags()...)
	r := runBinary(t, append(args, "--certs", filepath.Join(dir, "certs"), "--report", filepath.Join(dir, "r.jsonl"),
		sampleDir+"/messages/01-ok-rsa-detached.eml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "1 message in ") || !strings.Contains(r.stdout, "certificates: 1 stored") {
		t.Errorf("summary:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "trust.pem (1 root)") {
		t.Errorf("log lacks %q:\n%s", "trust.pem (1 root)", r.stderr)
	}
}

// TestMakeRunStartsAfresh: make run removes the certificates, report and
// log of the run before, so that the log is that of this run alone, not
// appended to forever.
func TestMakeRunStartsAfresh(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-n", "-C", "../..", "run").Output()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	text := string(out)
	rm := strings.Index(text, "rm -rf ")
	scan := strings.Index(text, " scan ")
	if rm < 0 || scan < rm {
		t.Fatalf("make run removes nothing before it scans:\n%s", text)
	}
	removed := strings.Fields(text[rm : strings.IndexByte(text[rm:], '\n')+rm])[2:]
	for _, flag := range []string{"--certs", "--report", "--log"} {
		m := regexp.MustCompile(regexp.QuoteMeta(flag) + ` \./(\S+)`).FindStringSubmatch(text[scan:])
		if m == nil {
			t.Fatalf("make run's scan has no %s ./FILE:\n%s", flag, text)
		}
		if !slices.Contains(removed, m[1]) {
			t.Errorf("make run does not remove %s (%s) first: removes %v", m[1], flag, removed)
		}
	}
}
