package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Without --trust the start log names the system roots without a count: Go
// does not tell the size of the system pool, and "-1 roots" misled.
func TestCheckLogDescribesSystemRoots(t *testing.T) {
	t.Parallel()
	r := runBinary(t, "check", "--dkim-keys", sampleDir+"/dkim-keys.txt", "--at", "2026-06-01T00:00:00Z",
		sampleDir+"/messages/01-ok-rsa-detached.eml")
	if r.code != 0 && r.code != 3 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "system roots") || strings.Contains(r.stdout, "roots)") {
		t.Errorf("the log should say \"system roots\" without a count:\n%s", r.stdout)
	}

	r = runBinary(t, append(append([]string{"check"}, sampleFlags()...), sampleDir+"/messages/01-ok-rsa-detached.eml")...)
	if !strings.Contains(r.stdout, "trust.pem (1 root)") {
		t.Errorf("with --trust the log should count the roots:\n%s", r.stdout)
	}
}

// runBinaryStdin is runBinary with stdin as the binary's standard input.
func runBinaryStdin(t *testing.T, stdin []byte, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{code, stdout.String(), stderr.String()}
}

// TestCheckWithoutCertsSaysNothingWritten: without --certs, check says the
// certificate would be stored and that nothing was written, never that it
// was stored, nor an empty action.
func TestCheckWithoutCertsSaysNothingWritten(t *testing.T) {
	t.Parallel()
	r := runBinary(t, append(append([]string{"check"}, sampleFlags()...), sampleDir+"/messages/01-ok-rsa-detached.eml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{
		"accepted: certificate for rsa.detached@example.com would be stored; nothing was written (no certificate folder) reason=ok\n",
		"reason:  ok (every check passed; the certificate would be stored, but without --certs nothing was written)\n",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range []string{"action=", "was stored", "certificate  for"} {
		if strings.Contains(r.stdout, s) {
			t.Errorf("output says %q:\n%s", s, r.stdout)
		}
	}
}

// With --certs the verdict says what happened to the certificate: stored,
// then the same one stored already.
func TestCheckWithCertsSaysWhatWasStored(t *testing.T) {
	t.Parallel()
	args := append(append([]string{"check", "--certs", t.TempDir()}, sampleFlags()...), sampleDir+"/messages/01-ok-rsa-detached.eml")
	for _, want := range []string{
		"reason:  ok (every check passed; the certificate was stored)\n",
		"reason:  ok (every check passed; the same certificate was stored already)\n",
	} {
		r := runBinary(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "see action") {
			t.Errorf("exit %d; output lacks %q:\n%s", r.code, want, r.stdout)
		}
	}
}

// TestCheckJSON: with --json, standard output is one JSON document, the
// report line; the story and the verdict are on standard error.
func TestCheckJSON(t *testing.T) {
	t.Parallel()
	r := runBinary(t, append(append([]string{"check", "--json"}, sampleFlags()...), sampleDir+"/messages/01-ok-rsa-detached.eml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var rec output.Record
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("standard output is not JSON: %v\n%s", err, r.stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("standard output holds more than one JSON document:\n%s", r.stdout)
	}
	if rec.Reason != verify.ReasonOK || rec.From != "rsa.detached@example.com" || rec.Action != "" {
		t.Errorf("record = %+v", rec)
	}
	for _, s := range []string{"chain verified", "verdict: ACCEPTED"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("standard error lacks %q:\n%s", s, r.stderr)
		}
	}
}

// TestCheckStdin: check - reads the message from standard input, bounded by
// --max-size as a file is.
func TestCheckStdin(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"check", "--json"}, sampleFlags()...), "-")
	r := runBinaryStdin(t, raw, args...)
	var rec output.Record
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	if rec.Reason != verify.ReasonOK || rec.ID != verify.MessageIDFor(&verify.Message{Raw: raw}) || rec.Path != "-" {
		t.Errorf("record = %+v", rec)
	}
	if !strings.Contains(r.stderr, "checking standard input") {
		t.Errorf("story lacks %q:\n%s", "checking standard input", r.stderr)
	}

	r = runBinaryStdin(t, raw, append([]string{"check", "--json", "--max-size", "1000"}, args[2:]...)...)
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || r.code != 3 {
		t.Fatalf("exit %d, %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	// Too large, and identified by its bytes all the same.
	if rec.Reason != verify.ReasonTooLarge || rec.ID != verify.MessageIDFor(&verify.Message{Raw: raw}) ||
		rec.Detail != fmt.Sprintf("message is %d bytes, the limit is 1000", len(raw)) {
		t.Errorf("record = %+v", rec)
	}
}
