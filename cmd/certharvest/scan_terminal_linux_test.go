package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the side the test reads, and the
// terminal the command writes to.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, tty
}

// scanOnTerminal runs scan with its standard error on a terminal and
// returns what the terminal showed and standard output.
func scanOnTerminal(t *testing.T, args ...string) (terminal, stdout string) {
	t.Helper()
	master, tty := openPTY(t)
	defer master.Close()
	cmd := exec.Command(binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&shown, master) // ends with EIO once the command has exited
		close(done)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scan: %v\n%s", err, shown.String())
	}
	<-done
	return shown.String(), out.String()
}

// On a terminal, scan shows a progress bar, the run's warnings and what it
// skipped, not every message's story, unless -v asks for the stories.
func TestScanOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	msgs := filepath.Join(dir, "m")
	if err := os.CopyFS(msgs, os.DirFS(sampleDir+"/messages")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(msgs, "notes.txt"), []byte("not mail"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"scan", msgs, "--certs", filepath.Join(dir, "certs")}, sampleFlags()...)

	shown, stdout := scanOnTerminal(t, append(args, "--report", filepath.Join(dir, "r1.jsonl"))...)
	// The bar is drawn at the first message, then at most every 100 ms:
	// 31 messages may all be done before the count of them (a walk in the
	// background) gives it its length, so "1/-" is a bar as good as
	// "1/31" here (TestScanProgressTotal checks the length).
	if !regexp.MustCompile(`scanning[^\n]*\(\d+/(\d+|-),`).MatchString(shown) {
		t.Errorf("no progress bar with the count of messages on the terminal:\n%s", shown)
	}
	if strings.Contains(shown, "rejected:") || strings.Contains(shown, "accepted:") {
		t.Errorf("the terminal shows the stories without -v:\n%s", shown)
	}
	if !strings.Contains(shown, "skipped 1 file (not .eml") || !strings.Contains(shown, "notes.txt") {
		t.Errorf("the terminal does not name the skipped file:\n%s", shown)
	}
	if !strings.Contains(stdout, "31 messages in") {
		t.Errorf("no summary on standard output:\n%s", stdout)
	}

	shown, _ = scanOnTerminal(t, append(args, "-v", "--report", filepath.Join(dir, "r2.jsonl"))...)
	if !strings.Contains(shown, "rejected: multiple_from") || !strings.Contains(shown, "accepted:") {
		t.Errorf("-v: the terminal lacks the stories:\n%s", shown)
	}
}

// The bar takes its length from the background count of the messages.
func TestScanProgressTotal(t *testing.T) {
	var shown bytes.Buffer
	p := newScanProgress(&shown)
	p.countInBackground(t.Context(), []string{sampleDir + "/messages"}, ingest.WalkRules{})
	deadline := time.Now().Add(time.Minute)
	for p.bar.GetMax64() != 31 {
		if time.Now().After(deadline) {
			t.Fatalf("the count never reached the bar: max %d", p.bar.GetMax64())
		}
		time.Sleep(time.Millisecond)
	}
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	if !strings.Contains(shown.String(), "/31,") {
		t.Errorf("the bar does not show its length: %q", shown.String())
	}
}
