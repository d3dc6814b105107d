// Command benchserve measures `certharvest serve` on a Maildir: it starts
// the service on an empty spool, drops N prepared messages into new/ at once
// (renames from tmp/, as an MDA delivers), and times until the last report
// line. It prints messages per second, the service's CPU time per message
// and its peak memory.
//
//	go run ./scripts/benchserve -bin bin/certharvest -corpus DIR [-runs 3] [-out DIR]
//
// Each run's spool, certificates, report and log are kept in a folder of
// their own under -out: deleting thousands of files would make the next
// run's file creations slower on some file systems (ext4 without a journal
// scans recently freed inodes one by one for minutes), which the next run
// would measure. Delete them when done.
//
// DIR is made by `go run ./scripts/gencorpus -bench N -out DIR`: messages/,
// trust.pem and dkim-keys.txt. scripts/bench-serve.sh does both.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/certharvest", "certharvest binary")
	corpus := flag.String("corpus", "", "folder made by gencorpus -bench (required)")
	runs := flag.Int("runs", 3, "measured runs")
	at := flag.String("at", "2026-06-01T00:00:00Z", "verification time")
	out := flag.String("out", "/var/tmp/certharvest-bench", "`folder` for the runs' outputs (kept)")
	flag.Parse()
	if *corpus == "" {
		flag.Usage()
		os.Exit(2)
	}
	msgs, err := filepath.Glob(filepath.Join(*corpus, "messages", "*.eml"))
	if err != nil || len(msgs) == 0 {
		log.Fatalf("no messages in %s/messages", *corpus)
	}
	var rates []float64
	for i := range *runs {
		rate, cpuPerMsg, peak, err := run(*bin, *corpus, *at, *out, msgs)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("run %d: %d messages in new/ -> reported and archived: %.0f messages/s, serve's CPU %.0f µs per message, peak RSS %s\n",
			i+1, len(msgs), rate, cpuPerMsg.Seconds()*1e6, peak)
		rates = append(rates, rate)
	}
	sort.Float64s(rates)
	fmt.Printf("median: %.0f messages/s over %d runs of %d messages\n", rates[len(rates)/2], len(rates), len(msgs))
	fmt.Printf("outputs kept in %s/serve-*; when done: rm -rf %s/serve-*\n", *out, *out)
}

func run(bin, corpus, at, out string, msgs []string) (rate float64, cpuPerMsg time.Duration, peak string, err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, 0, "", err
	}
	dir, err := os.MkdirTemp(out, "serve-")
	if err != nil {
		return 0, 0, "", err
	}
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	// Prepared in tmp/ (untimed): the timed part is the service's work.
	names := make([]string, len(msgs))
	for i, m := range msgs {
		data, err := os.ReadFile(m)
		if err != nil {
			return 0, 0, "", err
		}
		names[i] = fmt.Sprintf("%d.M%dP1Q%d.bench", time.Now().Unix(), i, i)
		if err := os.WriteFile(filepath.Join(maildir, "tmp", names[i]), data, 0o600); err != nil {
			return 0, 0, "", err
		}
	}
	report, logFile := filepath.Join(dir, "report.jsonl"), filepath.Join(dir, "serve.log")
	cmd := exec.Command(bin, "serve", "--maildir", maildir, "--certs", filepath.Join(dir, "certs"), "--report", report,
		"--log", logFile, "--trust", filepath.Join(corpus, "trust.pem"), "--dkim-keys", filepath.Join(corpus, "dkim-keys.txt"), "--at", at)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	defer cmd.Process.Kill()
	if err := waitFor(func() bool { b, _ := os.ReadFile(logFile); return bytes.Contains(b, []byte("Maildir listed")) }, 30*time.Second); err != nil {
		return 0, 0, "", fmt.Errorf("service did not start: %w", err)
	}

	cpuBefore := processCPU(cmd.Process.Pid)
	start := time.Now()
	for _, n := range names {
		if err := os.Rename(filepath.Join(maildir, "tmp", n), filepath.Join(maildir, "new", n)); err != nil {
			return 0, 0, "", err
		}
	}
	lines := &lineCounter{path: report}
	err = waitFor(func() bool {
		if p := peakRSS(cmd.Process.Pid); p != "" {
			peak = p
		}
		return lines.count() >= len(names)
	}, 10*time.Minute)
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, "", fmt.Errorf("only %d of %d reported: %w", countLines(report), len(names), err)
	}
	cpuPerMsg = (processCPU(cmd.Process.Pid) - cpuBefore) / time.Duration(len(names))
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	left, _ := os.ReadDir(filepath.Join(maildir, "new"))
	cur, _ := os.ReadDir(filepath.Join(maildir, "cur"))
	if len(left) != 0 || len(cur) != len(names) {
		return 0, 0, "", fmt.Errorf("after the run: %d left in new/, %d in cur/, want 0 and %d", len(left), len(cur), len(names))
	}
	if n := countLines(report); n != len(names) {
		return 0, 0, "", fmt.Errorf("%d report lines for %d messages", n, len(names))
	}
	return float64(len(names)) / elapsed.Seconds(), cpuPerMsg, peak, nil
}

// lineCounter counts the lines of a growing file, reading only what was
// appended since the last count: re-reading a report of thousands of lines
// every few milliseconds would take a good part of a core from the service
// being measured.
type lineCounter struct {
	path string
	off  int64
	n    int
}

func (c *lineCounter) count() int {
	f, err := os.Open(c.path)
	if err != nil {
		return c.n
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		k, err := f.ReadAt(buf, c.off)
		c.n += bytes.Count(buf[:k], []byte("\n"))
		c.off += int64(k)
		if err != nil || k == 0 {
			return c.n
		}
	}
}

// processCPU returns the user and system CPU time a process has used so
// far (proc(5): utime and stime, in clock ticks of 1/100 s on Linux), or 0.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func waitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v", timeout)
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// peakRSS reads the high-water mark of a process's resident memory.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
