package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// service is a running `certharvest serve`.
type service struct {
	cmd                *exec.Cmd
	dir, maildir       string
	certs, report, log string
	stdout, stderr     bytes.Buffer
	exited             chan struct{}
	exitCode           int
	// logFrom is the log's length before this run: a restarted service
	// appends to the same log, and the lines waited for are its own.
	logFrom int
}

func startServe(t *testing.T, dir string, extra ...string) *service {
	t.Helper()
	return startServeEnv(t, dir, nil, extra...)
}

// startServeEnv is startServe with more environment variables (NAME=value).
func startServeEnv(t *testing.T, dir string, env []string, extra ...string) *service {
	t.Helper()
	return startServeBinary(t, binary, dir, env, extra...)
}

// startServeBinary is startServeEnv with another build of certharvest.
func startServeBinary(t *testing.T, binary, dir string, env []string, extra ...string) *service {
	t.Helper()
	s := &service{dir: dir, maildir: filepath.Join(dir, "Maildir"), certs: filepath.Join(dir, "certs"),
		report: filepath.Join(dir, "report.jsonl"), log: filepath.Join(dir, "serve.log"), exited: make(chan struct{})}
	args := []string{"serve", "--maildir", s.maildir, "--report", s.report, "--log", s.log, "--settle", "30ms", "--rescan", "2s"}
	if !slices.Contains(extra, "--store-file") {
		args = append(args, "--certs", s.certs)
	}
	args = append(args, sampleFlags()...)
	s.cmd = exec.Command(binary, append(args, extra...)...)
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	prior, _ := os.ReadFile(s.log)
	s.logFrom = len(prior)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.exitCode = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	s.waitLog(t, "Maildir listed")
	return s
}

// ownLog returns what this run of the service has logged so far.
func (s *service) ownLog() []byte {
	data, _ := os.ReadFile(s.log)
	if len(data) < s.logFrom {
		return nil
	}
	return data[s.logFrom:]
}

func (s *service) waitLog(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data := s.ownLog()
		if bytes.Contains(data, []byte(what)) {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("serve exited (%d) before logging %q\n%s\n%s", s.exitCode, what, s.stderr.String(), data)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve never logged %q", what)
}

// listeningAddr waits for the log line "<prefix>ADDR" and returns ADDR.
func (s *service) listeningAddr(t *testing.T, prefix string) string {
	t.Helper()
	s.waitLog(t, prefix)
	data := s.ownLog()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no %q address in the log:\n%s", prefix, data)
	}
	return string(m[1])
}

// waitDrained waits until new/ is empty.
func (s *service) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(filepath.Join(s.maildir, "new"))
		if len(entries) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	entries, _ := os.ReadDir(filepath.Join(s.maildir, "new"))
	t.Fatalf("%d messages still in new/ after %v", len(entries), timeout)
}

func (s *service) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if s.exitCode != 0 {
		t.Fatalf("serve exited %d\n%s", s.exitCode, s.stderr.String())
	}
}

// deliver puts a message into new/ the Maildir way.
func deliver(t *testing.T, maildir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(maildir, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
}

func sampleMessages(t *testing.T) map[string][]byte {
	t.Helper()
	msgs := map[string][]byte{}
	for name := range expectedSample(t) {
		data, err := os.ReadFile(filepath.Join(sampleDir, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 { // an empty file waits a minute before it is taken
			msgs[name] = data
		}
	}
	return msgs
}

func TestServeMaildir(t *testing.T) {
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	msgs := sampleMessages(t)
	want := expectedSample(t)
	// Half are waiting before the service starts, half arrive while it runs.
	i := 0
	var later []string
	for name, data := range msgs {
		if i%2 == 0 {
			deliver(t, maildir, name, data)
		} else {
			later = append(later, name)
		}
		i++
	}
	s := startServe(t, dir)
	for j, name := range later {
		if j%2 == 0 {
			deliver(t, maildir, name, msgs[name])
		} else { // written straight into new/
			os.WriteFile(filepath.Join(maildir, "new", name), msgs[name], 0o600)
		}
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	recs := readReport(t, s.report)
	if len(recs) != len(msgs) {
		t.Fatalf("%d report lines, want %d", len(recs), len(msgs))
	}
	for _, rec := range recs {
		name := filepath.Base(rec.Path)
		if rec.Source != "maildir" {
			t.Errorf("%s: source %q", name, rec.Source)
		}
		if string(rec.Reason) != want[name] {
			t.Errorf("%s: reason %s (%s), want %s", name, rec.Reason, rec.Detail, want[name])
		}
		if _, err := os.Stat(filepath.Join(maildir, "cur", curName(name, rec.Outcome == output.OutcomeAccepted))); err != nil {
			t.Errorf("%s not in cur/ as %s: %v", name, rec.Outcome, err)
		}
		if rec.Outcome == output.OutcomeAccepted {
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
		}
	}
	log, _ := os.ReadFile(s.log)
	for _, line := range []string{"certharvest serve starting", "trust=", "(1 root)", "stopping", "certharvest serve stopped"} {
		if !bytes.Contains(log, []byte(line)) {
			t.Errorf("log lacks %q", line)
		}
	}

	// A restart processes nothing again.
	s = startServe(t, dir)
	time.Sleep(200 * time.Millisecond)
	s.stop(t)
	if n := len(readReport(t, s.report)); n != len(msgs) {
		t.Errorf("after a restart: %d report lines, want %d", n, len(msgs))
	}
}

// kill -9 in the middle of a stream loses nothing: after a restart every
// message is reported and archived, and every certificate file is whole.
func TestServeCrash(t *testing.T) {
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	msgs := sampleMessages(t)
	var all []string
	const rounds = 12
	s := startServe(t, dir)
	for r := range rounds {
		for name, data := range msgs {
			n := fmt.Sprintf("%d.%s", r, name)
			deliver(t, maildir, n, data)
			all = append(all, n)
		}
		if r == rounds/2 {
			// Wait until some are reported, then crash.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if data, _ := os.ReadFile(s.report); bytes.Count(data, []byte("\n")) > len(msgs) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		}
	}
	s = startServe(t, dir)
	s.waitDrained(t, 60*time.Second)
	s.stop(t)

	reported := map[string]int{}
	for _, rec := range readReport(t, s.report) {
		reported[filepath.Base(rec.Path)]++
	}
	for _, n := range all {
		if reported[n] == 0 {
			t.Errorf("%s was never reported", n)
		}
		if !inCur(maildir, n) {
			t.Errorf("%s not archived", n)
		}
	}
	entries, _ := os.ReadDir(s.certs)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			// A write the kill interrupted: hidden, never a certificate
			// file; OpenCertStore removes such files once stale.
			continue
		}
		if !strings.HasSuffix(e.Name(), ".crt") {
			if e.Name() != "history" && e.Name() != ".locks" {
				t.Errorf("stray file %s in the certificate folder", e.Name())
			}
			continue
		}
		data, _ := os.ReadFile(filepath.Join(s.certs, e.Name()))
		block, _ := pem.Decode(data)
		if block == nil {
			t.Errorf("%s is not whole PEM", e.Name())
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// The audit's case, through the service: half a message written straight
// into new/, a pause far longer than --settle, then the rest. The message is
// taken only once complete: one report line, accepted.
func TestServeMessageWrittenInPlaceWithPause(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--settle-written", "1s")
	data := sampleMessages(t)["01-ok-rsa-detached.eml"]
	f, err := os.Create(filepath.Join(s.maildir, "new", "slow-writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data[:len(data)/2])
	time.Sleep(400 * time.Millisecond) // more than ten times --settle (30ms)
	f.Write(data[len(data)/2:])
	f.Close()
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("report = %+v, want one accepted line", recs)
	}
}

// serve runs Go code on two threads more than the cores (GOMAXPROCS), so
// that syncs do not stop the verifications, unless GOMAXPROCS is set; the
// default --workers is twice the cores.
func TestServeGOMAXPROCS(t *testing.T) {
	started := regexp.MustCompile(`workers=(\d+) gomaxprocs=(\d+)`)
	for _, tt := range []struct {
		env         []string
		wantWorkers func(cores int) int
		wantProcs   func(cores int) int
	}{
		{nil, func(c int) int { return 2 * c }, func(c int) int { return c + 2 }},
		{[]string{"GOMAXPROCS=3"}, func(int) int { return 6 }, func(int) int { return 3 }},
	} {
		s := startServeEnv(t, t.TempDir(), tt.env)
		s.stop(t)
		data, _ := os.ReadFile(s.log)
		m := started.FindSubmatch(data)
		if m == nil {
			t.Fatalf("env %v: no workers and gomaxprocs in the start-up line:\n%s", tt.env, data)
		}
		workers, _ := strconv.Atoi(string(m[1]))
		procs, _ := strconv.Atoi(string(m[2]))
		cores := workers / 2 // the default --workers is twice the cores
		if workers != tt.wantWorkers(cores) || procs != tt.wantProcs(cores) {
			t.Errorf("env %v: workers=%d gomaxprocs=%d", tt.env, workers, procs)
		}
	}
}

// logrotate moves the log and the report away and sends SIGHUP: the service
// writes new ones.
func TestServeReopensOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	msgs := sampleMessages(t)
	deliver(t, s.maildir, "first", msgs["01-ok-rsa-detached.eml"])
	s.waitDrained(t, 20*time.Second)
	waitLines(t, s.report, 1)
	os.Rename(s.report, s.report+".1")
	os.Rename(s.log, s.log+".1")
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, "SIGHUP: reopened")
	deliver(t, s.maildir, "second", msgs["02-ok-ecdsa-detached.eml"])
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	if old := readReport(t, s.report+".1"); len(old) != 1 || filepath.Base(old[0].Path) != "first" {
		t.Errorf("rotated report = %+v", old)
	}
	if cur := readReport(t, s.report); len(cur) != 1 || filepath.Base(cur[0].Path) != "second" {
		t.Errorf("new report = %+v", cur)
	}
	if data, _ := os.ReadFile(s.log); !bytes.Contains(data, []byte("second")) {
		t.Error("the new log does not tell the second message's story")
	}
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); bytes.Count(data, []byte("\n")) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never had %d lines", path, n)
}

// TestServeRefusesFolderOfFiles: --maildir naming a folder of .eml files
// (no Maildir) is refused with a hint, and nothing is made in it; an empty
// folder is still made a Maildir.
func TestServeRefusesFolderOfFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.eml", "b.eml"} {
		if err := os.WriteFile(filepath.Join(mail, name), []byte("Subject: x\r\n\r\nx\r\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"serve", "--maildir", mail, "--certs", filepath.Join(dir, "certs"),
		"--report", filepath.Join(dir, "r.jsonl"), "--log", filepath.Join(dir, "serve.log")}, sampleFlags()...)
	r := runBinary(t, args...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	for _, s := range []string{mail + " holds files but is not a Maildir (no new/, cur/, tmp/): it holds a.eml and 1 other file",
		"give an empty or new folder", "run certharvest scan " + mail} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(mail); len(entries) != 2 {
		t.Errorf("serve made folders in the folder it refused: %v", entries)
	}

	// An empty folder is the spool's to make.
	if err := os.Mkdir(filepath.Join(dir, "Maildir"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir)
	s.stop(t)
	if !ingest.IsMaildir(s.maildir) {
		t.Errorf("serve did not make %s a Maildir", s.maildir)
	}
}

// A listener refused its port for want of privilege says how to get it;
// any other error is left as it is.
func TestBindHint(t *testing.T) {
	denied := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	err := bindHint(fmt.Errorf("starting smtp :25: %w", denied))
	if !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "CAP_NET_BIND_SERVICE") {
		t.Errorf("bindHint(EACCES) = %v, want the error naming CAP_NET_BIND_SERVICE", err)
	}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	if err := bindHint(inUse); err != error(inUse) {
		t.Errorf("bindHint(EADDRINUSE) = %v, want it unchanged", err)
	}
}

// A port serve cannot have stops it before it says it is starting.
func TestServeBindFailureBeforeStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	r := runBinary(t, append([]string{"serve", "--maildir", filepath.Join(dir, "spool"), "--certs", filepath.Join(dir, "certs"),
		"--report", filepath.Join(dir, "report.jsonl"), "--http", taken.Addr().String()}, sampleFlags()...)...)
	if r.code != exitOperational || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("exit %d, want %d naming the port in use\n%s", r.code, exitOperational, r.stderr)
	}
	if strings.Contains(r.stderr, "serve starting") {
		t.Errorf("serve said it was starting before its port failed:\n%s", r.stderr)
	}
}
