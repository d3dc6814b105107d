package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A gzip bomb, 4 MB that inflate to 4 GiB of zeros (deflate's ratio is at
// most about 1,000), is message_too_large in bounded time and memory, as a
// compressed message and as a compressed mbox (whose reading then stops, a
// read_error): the memory follows --max-size, here 1 MiB, never the bomb
// (with the default 25 MiB, 75 MiB of peak RSS was measured, 16 MiB here).
// The peak is the child's own (VmHWM), not its rusage, which counts from
// this process's resident size at the fork.
func TestScanArchiveGzipBombs(t *testing.T) {
	dir := t.TempDir()
	// A gzip member of 1 MiB of zeros, repeated: a file of many members
	// is one stream (RFC 1952 §2.2).
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	zeros := bytes.Repeat(z.Bytes(), 4096)
	t.Logf("bomb: %d bytes of gzip for %d GiB", len(zeros), 4096>>10)
	header := gzipBytes(t, []byte("From bomb@example.org Mon Jun  1 00:00:00 2026\nFrom: bomb@example.org\nSubject: bomb\n\n"))
	emlBomb := filepath.Join(dir, "bomb.eml.gz")
	mboxBomb := filepath.Join(dir, "bomb.mbox.gz")
	if err := os.WriteFile(emlBomb, append(gzipBytes(t, []byte("From: bomb@example.org\nSubject: bomb\n\n")), zeros...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mboxBomb, append(header, zeros...), 0o644); err != nil {
		t.Fatal(err)
	}
	r, rss, cpu := runBinaryPeak(t, archiveScanArgs(dir, "--max-size", "1MiB", emlBomb, mboxBomb)...)
	t.Logf("peak RSS %d MiB, CPU %v", rss>>20, cpu)
	if r.code != exitOperational || !strings.Contains(r.stderr, "cannot read "+mboxBomb+": the rest of the file is not read: message 1 at byte 0 is over 268435456 bytes") {
		t.Errorf("exit %d, want %d naming the mbox's rest not read\n%s", r.code, exitOperational, r.stderr)
	}
	var got []string
	for _, rec := range readReport(t, filepath.Join(dir, "report.jsonl")) {
		got = append(got, fmt.Sprintf("%s#%d:%s", filepath.Base(rec.Path), rec.MboxIndex, rec.Reason))
	}
	slices.Sort(got)
	if want := "bomb.eml.gz#0:message_too_large bomb.mbox.gz#1:message_too_large bomb.mbox.gz#2:read_error"; strings.Join(got, " ") != want {
		t.Errorf("report %q, want %q", got, want)
	}
	// Each bomb is decompressed as far as a message too large is hashed
	// to identify it (256 MiB): a third of a second of CPU each here.
	if rss > 64<<20 || cpu > 10*time.Second {
		t.Errorf("peak RSS %d MiB, CPU %v: want at most 64 MiB and 10 s", rss>>20, cpu)
	}
}

// runBinaryPeak runs the plain binary (no race detector) with args and
// returns its result, its peak resident size, the kernel's count for its
// own address space (VmHWM of /proc/PID/status, sampled every 2 ms until it
// exits), and its CPU time.
func runBinaryPeak(t *testing.T, args ...string) (runResult, int64, time.Duration) {
	t.Helper()
	cmd := exec.Command(plainBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	peak := make(chan int64)
	done := make(chan struct{})
	go func() {
		var hwm int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if data, err := os.ReadFile(status); err == nil {
				for line := range strings.Lines(string(data)) {
					var kib int64
					if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kib); n == 1 {
						hwm = max(hwm, kib<<10)
					}
				}
			}
			select {
			case <-done:
				peak <- hwm
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	hwm := <-peak
	if exit := (*exec.ExitError)(nil); err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var cpu time.Duration
	if ru != nil {
		cpu = cpuTime(ru)
	}
	return runResult{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}, hwm, cpu
}
