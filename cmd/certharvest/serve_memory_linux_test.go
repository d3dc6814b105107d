package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// procValue reads a "Name: value" field of /proc/PID/<file> as a number
// (kB for status's sizes, bytes for io's counters).
func procValue(t *testing.T, pid int, file, name string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/%s", name, pid, file)
	return 0
}

// 100 connections from two addresses, each holding an unfinished DATA of
// 6 MiB, grow the service's resident memory by less than its budget for
// messages being received (--input-memory, 128 MiB by default): the
// messages are written to the spool's tmp/ as they arrive. Before, the
// service held them all (2.4 GB and more for 24 MiB each; 6 MiB each
// sends near five times the budget, in a quarter of the time).
//
// The service's peak resident size (VmHWM) is compared with its resident
// size once started (VmRSS): the kernel's own count, whatever the load of
// the machine; the wait is on the bytes the service has read (rchar of
// /proc/PID/io), not on time. The test stops as soon as the service holds
// more than the budget, rather than fill the machine.
func TestServeSMTPUnfinishedDataMemory(t *testing.T) {
	t.Parallel()
	const (
		conns   = 100
		perConn = 6 << 20 // 600 MiB in all, near five times the budget
		budget  = ingest.DefaultInputMemory
	)
	s := startServeBinary(t, plainBinary(t), t.TempDir(), nil, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org",
		"--smtp-max-conns", strconv.Itoa(conns), "--smtp-max-conns-per-ip", strconv.Itoa(conns/2))
	addr := s.smtpAddr(t)
	pid := s.cmd.Process.Pid
	base := procValue(t, pid, "status", "VmRSS") << 10
	read0 := procValue(t, pid, "io", "rchar")

	line := append(bytes.Repeat([]byte("0123456789"), 99), '\r', '\n')
	var body bytes.Buffer
	for body.Len() < 1<<20 {
		body.Write(line)
	}
	var over atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	var clients []net.Conn
	for i := range conns {
		local := "127.0.0.1"
		if i%2 == 1 {
			local = "127.0.0.2"
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Minute))
		clients = append(clients, c)
		wg.Go(func() {
			errs <- sendUnfinishedData(c, body.Bytes(), perConn, &over)
		})
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()
	var peak int64
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rss := procValue(t, pid, "status", "VmRSS") << 10
		peak = max(peak, rss)
		if rss-base > budget {
			over.Store(true)
			for _, c := range clients {
				c.Close()
			}
			t.Fatalf("serve's RSS grew by %d MiB, more than the budget of %d MiB", (rss-base)>>20, budget>>20)
		}
		done := false
		select {
		case <-sent:
			// Sent; and read by the service, not only queued in the
			// sockets.
			done = procValue(t, pid, "io", "rchar")-read0 >= conns*perConn
		default:
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the transfers did not end in 3 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	hwm := procValue(t, pid, "status", "VmHWM") << 10
	t.Logf("RSS %d MiB at start, peak %d MiB (VmHWM; %d MiB sampled) with %d transfers of %d MiB unfinished",
		base>>20, hwm>>20, peak>>20, conns, perConn>>20)
	if hwm-base > budget {
		t.Errorf("serve's peak RSS grew by %d MiB, more than the budget of %d MiB", (hwm-base)>>20, budget>>20)
	}
	for _, c := range clients {
		c.Close()
	}
	s.waitLogCount(t, "SMTP connection closed", conns)
	select {
	case <-s.exited:
		t.Fatalf("serve exited (%d)", s.exitCode)
	default:
	}
	for _, sub := range []string{"new", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(s.maildir, sub)); len(entries) != 0 {
			t.Errorf("%s/ holds %d files after the transfers were cut", sub, len(entries))
		}
	}
}

// sendUnfinishedData opens a transaction on c and sends size bytes of
// data (body over and over, after a header), without the final dot.
func sendUnfinishedData(c net.Conn, body []byte, size int, over *atomic.Bool) error {
	if _, err := startData(c); err != nil {
		return err
	}
	n, err := io.WriteString(c, "From: robin@example.com\r\nSubject: large\r\n\r\n")
	for ; err == nil && n < size; n += len(body) {
		if over.Load() {
			return nil
		}
		_, err = c.Write(body)
	}
	if over.Load() {
		return nil
	}
	return err
}

// waitLogCount waits for n lines of the service's log saying what.
func (s *service) waitLogCount(t *testing.T, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for bytes.Count(s.ownLog(), []byte(what)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("serve logged %q %d times, not %d", what, bytes.Count(s.ownLog(), []byte(what)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eight messages of 1.5 million tiny header fields (21 MB each, no
// signature) sent at once over SMTP: each is answered 250 (the SMTP answer
// tells no verdict), each is reported message_malformed naming the cap,
// the service's peak resident size stays within 768 MiB, and it goes on
// running. Before the header caps, the eight took serve to about 5 GB.
func TestServeSMTPHeaderAmplification(t *testing.T) {
	t.Parallel()
	const (
		messages = 8
		fields   = 1_500_000
		limit    = 768 << 20
	)
	s := startServeBinary(t, plainBinary(t), t.TempDir(), nil, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org")
	addr := s.smtpAddr(t)
	pid := s.cmd.Process.Pid
	var msg bytes.Buffer
	for i := range fields {
		fmt.Fprintf(&msg, "X-H%d: v\r\n", i)
	}
	msg.WriteString("\r\nbody\r\n")
	t.Logf("a message of %d MB", msg.Len()/1e6)

	var wg sync.WaitGroup
	errs := make(chan error, messages)
	for range messages {
		wg.Go(func() {
			// Written raw (no line starts with a dot): go-smtp's client
			// would write it a byte at a time, which the race detector
			// makes slow, in the test rather than in serve.
			errs <- sendRawMessage(addr, msg.Bytes())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a message was not answered 250: %v", err)
		}
	}
	waitLines(t, s.report, messages)
	for _, rec := range readReport(t, s.report) {
		if rec.Source != "smtp" || rec.Reason != verify.ReasonMalformed || !strings.Contains(rec.Detail, "the cap on header") {
			t.Errorf("reported %s %s %q, want smtp message_malformed naming the cap", rec.Source, rec.Reason, rec.Detail)
		}
	}
	hwm := procValue(t, pid, "status", "VmHWM") << 10
	t.Logf("serve's peak RSS: %d MiB", hwm>>20)
	if hwm > limit {
		t.Errorf("serve's peak RSS %d MiB, over %d MiB", hwm>>20, limit>>20)
	}
	if n := bytes.Count(s.ownLog(), []byte("SMTP message header over the cap")); n != messages {
		t.Errorf("the SMTP sessions logged %d headers over the cap, want %d", n, messages)
	}
	select {
	case <-s.exited:
		t.Fatalf("serve exited (%d)", s.exitCode)
	default:
	}
	s.stop(t)
}

// startData opens an SMTP transaction on c up to DATA's 354, by hand, and
// returns the reader of the replies.
func startData(c net.Conn) (*bufio.Reader, error) {
	r := bufio.NewReader(c)
	if l, err := smtpReplyLine(r); !strings.HasPrefix(l, "220") {
		return nil, fmt.Errorf("banner %q: %v", l, err)
	}
	for _, cmd := range []string{"EHLO client.example.net", "MAIL FROM:<robin@example.com>", "RCPT TO:<harvest@inbound.example.org>", "DATA"} {
		io.WriteString(c, cmd+"\r\n")
		if l, err := smtpReplyLine(r); !strings.HasPrefix(l, "250") && !strings.HasPrefix(l, "354") {
			return nil, fmt.Errorf("%s: %q, %v", cmd, l, err)
		}
	}
	return r, nil
}

// smtpReplyLine reads an SMTP reply and returns its last line.
func smtpReplyLine(r *bufio.Reader) (string, error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil || len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), err
		}
	}
}

// sendRawMessage sends msg, which must need no dot-stuffing (no line
// starting with a dot), in one SMTP transaction, and wants 250 for it.
func sendRawMessage(addr string, msg []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	r, err := startData(c)
	if err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	io.WriteString(c, "\r\n.\r\n")
	if l, err := smtpReplyLine(r); !strings.HasPrefix(l, "250") {
		return fmt.Errorf("end of DATA: %q, %v", l, err)
	}
	return nil
}
