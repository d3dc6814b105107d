package main

import (
	"strings"
	"testing"
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
