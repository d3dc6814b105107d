package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testfs"
)

// reportWhole reads the report at path and fails the test if its last line
// is cut (readReport fails it on a line that is not a whole record).
func reportWhole(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("the report ends in a cut line: ...%q", data[max(0, len(data)-60):])
	}
	readReport(t, path)
	return data
}

// healthz asks the webhook listener's /healthz.
func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A full disk under the report (the repro): the lines of messages
// the webhook acknowledged cannot be written. No line is left cut, the
// messages wait in new/, /healthz answers 503 "report not writable", and
// the failures are counted. Once space is back, without a restart or a
// signal, each message is reported exactly once and /healthz answers 200.
// With a SIGHUP meanwhile (logrotate's, without a rotation), nothing is
// glued nor reported twice either.
func TestFaultReportDiskFull(t *testing.T) {
	for _, hup := range []bool{false, true} {
		t.Run("sighup="+strconv.FormatBool(hup), func(t *testing.T) {
			small := testfs.MountTmpfs(t, "256k")
			report := filepath.Join(small, "report.jsonl")
			s := startServe(t, t.TempDir(), "--report", report, "--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
			s.report = report // the flag given last wins
			addr := s.webhookAddr(t)
			url := "http://" + addr + "/"

			// One line first: the report's last page is part full, so the
			// next write is cut at its end (a short write), as in the repro.
			first := sparkPostPayload(t, relayed{file: "01-ok-rsa-detached.eml", rcptTo: "certs@inbound.example.org"})
			if code, answer := postRelay(t, http.DefaultClient, url, "", first); code != http.StatusOK {
				t.Fatalf("first message: %d %s", code, answer)
			}
			waitLines(t, report, 1)
			before := reportWhole(t, report)

			filler := fill(t, small)
			files := []string{"02-ok-ecdsa-detached.eml", "03-ok-opaque.eml", "04-ok-x-pkcs7-signature.eml",
				"21-no-signature-plain.eml", "26-cert-untrusted.eml"}
			var batch []relayed
			for _, f := range files {
				batch = append(batch, relayed{file: f, rcptTo: "certs@inbound.example.org"})
			}
			if code, answer := postRelay(t, http.DefaultClient, url, "", sparkPostPayload(t, batch...)); code != http.StatusOK {
				t.Fatalf("five messages, spool writable: %d %s", code, answer)
			}
			s.waitLog(t, "writing the report failed")
			if code, answer := healthz(t, addr); code != http.StatusServiceUnavailable || !strings.Contains(answer, "report not writable") {
				t.Errorf("/healthz with the report's disk full: %d %s, want 503 report not writable", code, answer)
			}
			if hup {
				s.cmd.Process.Signal(syscall.SIGHUP)
				s.waitLog(t, "SIGHUP: reopened")
			}
			// What was left of the report's last page may have taken a
			// batch's lines whole; every other message waits in new/.
			now := reportWhole(t, report)
			if !bytes.HasPrefix(now, before) {
				t.Errorf("the report lost lines while its disk was full:\nbefore %q\nnow    %q", before, now)
			}
			written := len(readReport(t, report)) - 1
			if entries, _ := os.ReadDir(filepath.Join(s.maildir, "new")); written+len(entries) != len(files) || len(entries) == 0 {
				t.Errorf("%d messages reported and %d in new/ while the report's disk is full, want %d in all, some waiting",
					written, len(entries), len(files))
			}

			os.Remove(filler)
			s.waitDrained(t, 30*time.Second)
			if code, answer := healthz(t, addr); code != http.StatusOK {
				t.Errorf("/healthz with room again: %d %s, want 200", code, answer)
			}
			s.waitLog(t, "the report is written again")
			failures := scrapeServe(t, s, "certharvest_report_write_failures_total")
			reported := scrapeServe(t, s, `certharvest_messages_total{outcome="accepted",reason="ok",source="webhook"}`)
			s.stop(t)

			reportWhole(t, report)
			seen := map[string]int{}
			for _, rec := range readReport(t, report) {
				seen[rec.ID]++
			}
			if len(seen) != len(files)+1 {
				t.Errorf("%d messages reported, want %d: %v", len(seen), len(files)+1, seen)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("message %s reported %d times", id, n)
				}
			}
			if f, _ := strconv.ParseFloat(failures, 64); f < 1 {
				t.Errorf("certharvest_report_write_failures_total = %q, want at least 1", failures)
			}
			if reported != "4" { // 01 to 04 accepted, each counted once
				t.Errorf("accepted webhook messages counted: %q, want 4", reported)
			}
		})
	}
}

// scrapeServe reads the value of one sample from the service's --metrics
// listener.
func scrapeServe(t *testing.T, s *service, sample string) string {
	t.Helper()
	m := metricsListeningRE.FindSubmatch(s.ownLog())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", s.ownLog())
	}
	resp, err := http.Get("http://" + string(m[1]) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	v := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if v == nil {
		t.Fatalf("/metrics lacks %s:\n%s", sample, body)
	}
	return string(v[1])
}

// scan with its report on a full disk exits non-zero and leaves the report
// as it was: no cut line.
func TestFaultScanReportDiskFull(t *testing.T) {
	small := testfs.MountTmpfs(t, "256k")
	report := filepath.Join(small, "report.jsonl")
	dir := t.TempDir()
	args := append(append([]string{"scan"}, sampleFlags()...), "--certs", filepath.Join(dir, "certs"), "--report", report,
		"--log", filepath.Join(dir, "scan.log"), "--quiet")
	// One line first, so that the report's last page is part full and the
	// failed write is a short one.
	if r := runBinary(t, append(args, sampleDir+"/messages/01-ok-rsa-detached.eml")...); r.code != 0 {
		t.Fatalf("first scan: exit %d\n%s", r.code, r.stderr)
	}
	before := reportWhole(t, report)
	fill(t, small)
	r := runBinary(t, append(args, sampleDir+"/messages")...)
	if r.code == 0 {
		t.Fatalf("scan with its report's disk full exited 0\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("scan does not say why it failed:\n%s", r.stderr)
	}
	if now := reportWhole(t, report); !bytes.Equal(now, before) {
		t.Errorf("the report changed on a full disk:\nbefore %q\nnow    %q", before, now)
	}
}
