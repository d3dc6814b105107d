//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// runBinaryUsage is runBinary that also returns what the child process
// used: its peak resident memory and CPU time. It runs the binary built
// without the race detector, whose instrumentation would be measured too.
func runBinaryUsage(t *testing.T, args ...string) (runResult, *syscall.Rusage) {
	t.Helper()
	cmd := exec.Command(plainBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no resource usage for the child: %T", cmd.ProcessState.SysUsage())
	}
	return runResult{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}, ru
}

// peakRSS is the peak resident memory in a Rusage, in bytes: getrusage(2)
// counts it in KiB, except on macOS, in bytes. On Linux a child's count
// starts from this process's resident size when it was forked (until its
// exec, the two share their memory): the tests that measure it do not run
// in parallel with others, which may hold hundreds of MiB at that moment.
func peakRSS(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}

// cpuTime is the user and system CPU time in a Rusage.
func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// writeHeaderFields writes the header-amplification message of issue 13: a
// From field and then n tiny fields, X-H0: v to X-Hn-1: v, no signature
// (21 MB for 1.5 million).
func writeHeaderFields(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("From: x@example.com\r\n")
	for i := range n {
		fmt.Fprintf(w, "X-H%d: v\r\n", i)
	}
	w.WriteString("\r\nbody\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The bounds of the header-amplification case. Before the header caps,
// check on the message peaked at 685 MiB and took 2.4 s of CPU (built
// without -race); with them, 37 MiB and 0.05 s, and 100 MiB and 0.3 s as
// the tests build the binary (-race). The CPU time is the child's own, not
// the wall clock, so a loaded machine does not fail the test.
const (
	headerBombMaxRSS = 160 << 20
	headerBombMaxCPU = 2 * time.Second
)

// A message of 1.5 million tiny header fields (21 MB) is refused as
// message_malformed naming the cap on header fields, by check and by scan,
// within 160 MiB of peak resident memory and 2 s of CPU: the caps are
// checked before any parser builds its table of the fields (issue 13).
func TestHeaderFieldsBombBounded(t *testing.T) {
	dir := t.TempDir()
	msg := filepath.Join(dir, "fields.eml")
	writeHeaderFields(t, msg, 1_500_000)
	const wantDetail = "the cap on header fields"

	t.Run("check", func(t *testing.T) {
		r, ru := runBinaryUsage(t, append(append([]string{"check"}, sampleFlags()...), msg)...)
		if r.code != exitRejected || !strings.Contains(r.stdout, "reason:  message_malformed") || !strings.Contains(r.stdout, wantDetail) {
			t.Errorf("exit %d, want %d with message_malformed naming the cap\n%s%s", r.code, exitRejected, r.stdout, r.stderr)
		}
		holdToHeaderBombBounds(t, ru)
	})

	t.Run("scan", func(t *testing.T) {
		report := filepath.Join(dir, "report.jsonl")
		args := append([]string{"scan"}, sampleFlags()...)
		args = append(args, "--certs", filepath.Join(dir, "certs"), "--report", report, "--log", filepath.Join(dir, "scan.log"), msg)
		r, ru := runBinaryUsage(t, args...)
		if r.code != exitOK {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		recs := readReport(t, report)
		if len(recs) != 1 || recs[0].Reason != "message_malformed" || !strings.Contains(recs[0].Detail, wantDetail) {
			t.Errorf("report = %+v, want one message_malformed line naming the cap", recs)
		}
		holdToHeaderBombBounds(t, ru)
	})
}

// holdToHeaderBombBounds holds a child's usage to the header-amplification bounds.
func holdToHeaderBombBounds(t *testing.T, ru *syscall.Rusage) {
	t.Helper()
	rss, cpu := peakRSS(ru), cpuTime(ru)
	t.Logf("peak RSS %d MiB, CPU %v", rss>>20, cpu)
	if rss > headerBombMaxRSS {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", rss>>20, headerBombMaxRSS>>20)
	}
	if cpu > headerBombMaxCPU {
		t.Errorf("CPU %v, want at most %v", cpu, headerBombMaxCPU)
	}
}

// The same bomb inside a body part, DKIM-signed so that it reaches the
// MIME stage: the first part of multipart/signed, its signature part, and
// the first part of a multipart/mixed. go-message's multipart reader has no
// cap of its own: before the part headers were capped, check peaked at
// 694 MB and 2.5 s on each (built without -race). Each is message_malformed,
// at no more cost than a control: a message of the same size whose bytes
// are in the part's body, which DKIM hashes all the same (a bound relative
// to it, since the message's size, not the bomb, sets most of the cost).
func TestHeaderFieldsBombInPartBounded(t *testing.T) {
	dir := t.TempDir()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	if err := os.WriteFile(trust, f.TrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, f.KeysFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	var bomb strings.Builder
	for i := range 1_500_000 {
		fmt.Fprintf(&bomb, "X-H%d: v\r\n", i)
	}
	const signed = `multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=b`
	sigPart := "Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n"
	check := func(t *testing.T, name, contentType, body string) (runResult, *syscall.Rusage) {
		t.Helper()
		msg := "From: x@example.com\r\nTo: in@example.org\r\nSubject: bomb\r\nDate: Mon, 1 Jun 2026 00:00:00 +0000\r\n" +
			"Message-ID: <bomb@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: " + contentType + "\r\n\r\n" + body
		raw, err := f.DKIMSign([]byte(msg), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".eml")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		return runBinaryUsage(t, "check", "--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339), path)
	}
	_, control := check(t, "control", "multipart/mixed; boundary=m",
		"--m\r\nContent-Type: text/plain\r\n\r\n"+strings.Repeat("X-H: v\r\n", bomb.Len()/8)+"--m--\r\n")
	t.Logf("control: peak RSS %d MiB, CPU %v", peakRSS(control)>>20, cpuTime(control))
	for _, tt := range []struct{ name, contentType, body string }{
		{"signed content", signed, "--b\r\n" + bomb.String() + "Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n" + sigPart + "\r\nMIIB\r\n--b--\r\n"},
		{"signature part", signed, "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n" + bomb.String() + sigPart + "\r\nMIIB\r\n--b--\r\n"},
		{"mixed first part", "multipart/mixed; boundary=m", "--m\r\n" + bomb.String() + "Content-Type: text/plain\r\n\r\nhello\r\n--m--\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, ru := check(t, "bomb", tt.contentType, tt.body)
			if r.code != exitRejected || !strings.Contains(r.stdout, "reason:  message_malformed") || !strings.Contains(r.stdout, "a body part's header has more than 10000 fields") {
				t.Errorf("exit %d, want %d with message_malformed naming the part's cap\n%s%s", r.code, exitRejected, r.stdout, r.stderr)
			}
			rss, cpu := peakRSS(ru), cpuTime(ru)
			t.Logf("peak RSS %d MiB, CPU %v", rss>>20, cpu)
			// Twice the control and 64 MiB: the garbage collector's timing
			// on a loaded machine moves both by hundreds of MiB (the control
			// measured 214 to 463 MiB under -race), while without the part
			// caps each case takes ten times the control (2,020 MiB).
			if limit := peakRSS(control)*2 + 64<<20; rss > limit {
				t.Errorf("peak RSS %d MiB, want at most %d MiB (twice the control's and 64 MiB)", rss>>20, limit>>20)
			}
			if limit := cpuTime(control)*2 + time.Second; cpu > limit {
				t.Errorf("CPU %v, want at most %v (twice the control's and a second)", cpu, limit)
			}
		})
	}
}
