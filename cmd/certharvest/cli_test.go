package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/output"
)

// scanReport runs scan with args (which must name the report file report)
// and returns its lines, times and durations zeroed.
func scanReport(t *testing.T, report string, args ...string) []output.Record {
	t.Helper()
	res := runBinary(t, args...)
	if res.code != 0 {
		t.Fatalf("scan %v: exit %d\n%s", args, res.code, res.stderr)
	}
	recs := readReport(t, report)
	for i := range recs {
		recs[i].Time, recs[i].VerifiedAt, recs[i].DurationMS = time.Time{}, time.Time{}, 0
	}
	return recs
}

// Flags after the paths are flags, GNU style, not paths: the same command
// line in either order gives the same report.
func TestScanFlagsAfterPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	messages := sampleDir + "/messages"
	before := filepath.Join(dir, "before.jsonl")
	after := filepath.Join(dir, "after.jsonl")
	want := scanReport(t, before, append(append([]string{"scan", "--workers", "1", "--quiet",
		"--certs", filepath.Join(dir, "c1"), "--report", before}, sampleFlags()...), messages)...)
	got := scanReport(t, after, append([]string{"scan", messages, "--workers", "1", "--quiet",
		"--certs", filepath.Join(dir, "c2"), "--report", after}, sampleFlags()...)...)
	if len(want) != len(expectedSample(t)) {
		t.Fatalf("flags first: %d report lines, want one per sample message (%d)", len(want), len(expectedSample(t)))
	}
	for i := range want {
		want[i].CertFile, got[i].CertFile = "", "" // in c1 and c2
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("flags after the path give another report:\nfirst: %+v\nafter: %+v", want, got)
	}
	if a, b := treeDigestNames(t, filepath.Join(dir, "c1")), treeDigestNames(t, filepath.Join(dir, "c2")); a != b {
		t.Errorf("the certificate folders differ")
	}
}

// "--" ends the flags: what follows is a path, even if it looks like one.
func TestScanDoubleDashEndsFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	msg := filepath.Join(dir, "--trust")
	data, err := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(msg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.jsonl")
	args := append([]string{"scan", "--quiet", "--certs", filepath.Join(dir, "certs"), "--report", report}, sampleFlags()...)
	res := runBinary(t, append(args, "--", msg)...)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	recs := readReport(t, report)
	if len(recs) != 1 || recs[0].Path != msg || recs[0].Outcome != "accepted" {
		t.Fatalf("report %+v, want the file named --trust accepted", recs)
	}
}

// Command lines written for Go's flag package, whose long flags take one
// dash, keep their meaning.
func TestSingleDashLongFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := runBinary(t, "check", "-trust", sampleDir+"/trust.pem", "-dkim-keys="+sampleDir+"/dkim-keys.txt",
		"-at", "2026-06-01T00:00:00Z", "-json", sampleDir+"/messages/01-ok-rsa-detached.eml")
	if res.code != 0 || !strings.Contains(res.stdout, `"outcome":"accepted"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := runBinary(t, "scan", "-nope", dir); res.code != 2 || !strings.Contains(res.stderr, "unknown shorthand flag") {
		t.Errorf("an unknown single-dash flag: exit %d, stderr %q, want a usage error", res.code, res.stderr)
	}
}

// Every flag has one line of help, short enough to read, and is explained
// in docs/CONFIGURATION.md.
func TestFlagHelpOneLine(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, fs := range commandFlagSets() {
		fs.VisitAll(func(f *pflag.Flag) {
			_, usage := pflag.UnquoteUsage(f)
			if strings.Contains(usage, "\n") || len(usage) > 90 {
				t.Errorf("%s --%s: help is %d bytes or several lines; say the rest in docs/CONFIGURATION.md: %q", name, f.Name, len(usage), usage)
			}
			if !strings.Contains(string(doc), "`--"+f.Name) {
				t.Errorf("%s --%s is not in docs/CONFIGURATION.md", name, f.Name)
			}
		})
	}
}

// Shell completion: the scripts, flag values, and show's addresses.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		res := runBinary(t, "completion", shell)
		if res.code != 0 || !strings.Contains(res.stdout, "certharvest") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, res.code, len(res.stdout))
		}
	}
	res := runBinary(t, "__complete", "scan", "--log-level", "")
	if !strings.HasPrefix(res.stdout, "debug\ninfo\nwarn\nerror\n") {
		t.Errorf("--log-level completes to %q", res.stdout)
	}
	res = runBinary(t, "__complete", "scan", "--tr")
	if !strings.HasPrefix(res.stdout, "--trust\t") {
		t.Errorf("--tr completes to %q", res.stdout)
	}
	certs := t.TempDir()
	pem, err := os.ReadFile(sampleDir + "/trust.pem")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "bob@example.org.crt"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	res = runBinary(t, "__complete", "show", "--certs", certs, "")
	if !strings.HasPrefix(res.stdout, "bob@example.org\n") {
		t.Errorf("show completes to %q, want the stored address", res.stdout)
	}
}

// A mistyped command gets a suggestion and exit status 2.
func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	res := runBinary(t, "scna")
	if res.code != 2 || !strings.Contains(res.stderr, `unknown command "scna"; did you mean scan?`) {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
	res = runBinary(t, "help", "scan")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "Usage: certharvest scan") || !strings.Contains(res.stdout, "  --trust file") {
		t.Errorf("help scan: exit %d, stdout %q", res.code, res.stdout)
	}
}

// treeDigestNames hashes the names and contents of the files under dir,
// relative to it.
func treeDigestNames(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(path, ".lock") {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %x\n", rel, sha256.Sum256(data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// --print-config prints the settings alone, as TOML a file can hold, and
// config check no command's help; the commands cobra adds have their own
// help, and a wrong shell is a usage error.
func TestPrintConfigAndCobraCommands(t *testing.T) {
	t.Parallel()
	res := runBinary(t, "list", "--print-config")
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		if k, v, ok := strings.Cut(line, " = "); !ok || k == "" || !strings.HasPrefix(v, `"`) {
			t.Errorf("list --print-config: %q is no setting:\n%s", line, res.stdout)
			break
		}
	}
	res = runBinary(t, "config", "check", "../../docs/certharvest.toml")
	if res.code != 0 || strings.Contains(res.stdout, "Usage:") {
		t.Errorf("config check: exit %d, prints help:\n%s", res.code, res.stdout)
	}
	res = runBinary(t, "config", "check", "--help")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "Usage: certharvest config check FILE") {
		t.Errorf("config check --help: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = runBinary(t, "completion", "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "certharvest completion [command]") {
		t.Errorf("completion --help: exit %d\n%s", res.code, res.stdout)
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}} {
		if res := runBinary(t, args...); res.code != 2 || !strings.Contains(res.stderr, "bash, zsh, fish or powershell") && !strings.Contains(res.stderr, "bash|zsh|fish|powershell") {
			t.Errorf("%v: exit %d, stderr %q, want a usage error naming the shells", args, res.code, res.stderr)
		}
	}
	if res := runBinary(t, "version"); res.code != 0 || !strings.HasPrefix(res.stdout, "certharvest ") {
		t.Errorf("version: exit %d, %q", res.code, res.stdout)
	}
}
