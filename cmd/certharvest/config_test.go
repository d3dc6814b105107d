package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A scan configured entirely from a file, with a flag overriding it.
func TestConfigFileDrivesScan(t *testing.T) {
	dir := t.TempDir()
	sample, _ := filepath.Abs(sampleDir)
	cfg := writeFile(t, dir, "certharvest.toml", `
trust = "`+sample+`/trust.pem"
dkim-keys = "`+sample+`/dkim-keys.txt"
at = "2026-06-01T00:00:00Z"
certs = "`+dir+`/from-config"

[scan]
report = "`+dir+`/report.jsonl"
quiet = true
workers = 1
`)
	r := runBinary(t, "scan", "--config", cfg, "--certs", filepath.Join(dir, "from-flag"), sample+"/messages/01-ok-rsa-detached.eml")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-flag", "rsa.detached@example.com.crt")); err != nil {
		t.Error("the --certs flag did not override the file:", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-config")); err == nil {
		t.Error("the configured certs folder was used despite the flag")
	}
	if recs := readReport(t, filepath.Join(dir, "report.jsonl")); len(recs) != 1 || recs[0].Reason != "ok" {
		t.Errorf("report from the [scan] table: %+v", recs)
	}
	if r.stdout != "" {
		t.Errorf("quiet = true did not apply: %q", r.stdout)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	webapp := writeFile(t, dir, "webapp.ini", `[webapp]
x-messagesystems-webhook-token = s3cret-token
user-certs-dir = /srv/certs
trusted-certs: /etc/pki/tls/certs/ca-bundle.crt
debug = False
; a comment
`)
	r := runBinary(t, "config", "check", webapp)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{`certs = "/srv/certs"`, `trust = "/etc/pki/tls/certs/ca-bundle.crt"`, `webhook-token = "********"`, "does not use: debug"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "s3cret-token") {
		t.Error("the webhook token was printed")
	}

	for _, tt := range []struct {
		name, content, say string
	}{
		{"bad.toml", "certs = \n", "configuration"},
		{"unknown-key.toml", "certz = \"/x\"\n", "unknown keys: certz"},
		{"unknown-table.toml", "[scna]\ncerts = \"/x\"\n", "unknown table [scna]"},
		{"flag-not-in-command.toml", "[list]\nmaildir = \"/x\"\n", "list has no such flag"},
		{"bad-value.toml", "[serve]\nworkers = \"many\"\n", "workers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, "config", "check", writeFile(t, dir, tt.name, tt.content))
			if r.code == 0 || !strings.Contains(r.stderr, tt.say) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, tt.say)
			}
		})
	}
	if r := runBinary(t, "config", "check", filepath.Join(dir, "missing.toml")); r.code != 1 {
		t.Errorf("missing file: exit %d", r.code)
	}
	if r := runBinary(t, "config"); r.code != 2 {
		t.Errorf("no arguments: exit %d", r.code)
	}
}

// The example configuration in docs/ stays valid.
func TestExampleConfigIsValid(t *testing.T) {
	r := runBinary(t, "config", "check", "../../docs/certharvest.toml")
	if r.code != 0 || !strings.Contains(r.stdout, `maildir = "/var/spool/certharvest"`) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
