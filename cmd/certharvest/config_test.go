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
	t.Parallel()
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
	t.Parallel()
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
		{"unknown-key.toml", "certz = \"/x\"\n", "unknown key certz"},
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
	t.Parallel()
	r := runBinary(t, "config", "check", "../../docs/certharvest.toml")
	if r.code != 0 || !strings.Contains(r.stdout, `maildir = "/var/spool/certharvest"`) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// config check refuses what the commands refuse: each value is parsed by
// the flag that takes it, every problem is reported, with its line, and the
// exit status is 2, as scan's is on the same file.
func TestConfigCheckRunsTheCommandsChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		say           []string
	}{
		{"align.toml", "dkim-align = \"loose\"\n", []string{`dkim-align = "loose" in`, "(line 1)", "want strict or relaxed"}},
		{"format.toml", "log-format = \"xml\"\n", []string{`log-format = "xml" in`, "want text or json"}},
		{"size.toml", "max-size = \"-5\"\n", []string{`max-size = "-5" in`, "positive number of bytes"}},
		{"at.toml", "at = \"yesterday\"\n", []string{`at = "yesterday" in`, "RFC 3339"}},
		{"level.toml", "[serve]\nlog-level = \"loud\"\n", []string{`[serve] log-level = "loud" in`, "(line 2)", "want debug, info"}},
		{"duration.toml", "[serve]\nretry-for = 5\n", []string{`[serve] retry-for = "5" in`, "want a duration"}},
		{"all.toml", "dkim-align = \"loose\"\nlog-format = \"xml\"\n\n[scan]\nmax-size = -5\nquiet = \"yes\"\n", []string{
			"has 4 problems", `dkim-align = "loose" in`, "(line 1)", `log-format = "xml" in`, "(line 2)",
			`[scan] max-size = "-5" in`, "(line 5)", `[scan] quiet = "yes" in`, "(line 6): want true or false"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, tt.name, tt.content)
			r := runBinary(t, "config", "check", path)
			if r.code != 2 {
				t.Errorf("config check: exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range tt.say {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			// A problem is reported once, not once per command.
			if strings.Count(r.stderr, tt.say[0]) != 1 {
				t.Errorf("%q reported %d times:\n%s", tt.say[0], strings.Count(r.stderr, tt.say[0]), r.stderr)
			}
			// The command refuses the same file, with the same message.
			args := []string{"scan", "--config", path, "--certs", filepath.Join(dir, "certs"), "--report", filepath.Join(dir, "r.jsonl"), "x.eml"}
			if strings.HasPrefix(tt.content, "[serve]") {
				args = []string{"serve", "--config", path, "--maildir", filepath.Join(dir, "Maildir")}
			}
			r = runBinary(t, args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.say[len(tt.say)-1]) {
				t.Errorf("%s: exit %d, want 2 saying %q\n%s", args[0], r.code, tt.say[len(tt.say)-1], r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "certs")); err == nil {
				t.Fatalf("%s ran despite the problem", args[0])
			}
		})
	}

	// An unquoted TOML date-time is a valid --at.
	r := runBinary(t, "config", "check", writeFile(t, dir, "at-datetime.toml", "at = 2026-06-01T00:00:00Z\n"))
	if r.code != 0 || !strings.Contains(r.stdout, `at = "2026-06-01T00:00:00Z"`) {
		t.Errorf("at as a TOML date-time: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A TOML syntax error is reported by line, column and key, never with the
// text the parser stumbled on: that can be a secret missing its quotes.
func TestConfigSyntaxErrorHidesValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, content := range []string{
		"webhook-token = topsecretvalue\n",
		"certs = \"/x\"\n\n[serve]\nlookup-token = \"topsecretvalue\n",
		"[serve]\nwebhook-token = 'topsecretvalue\" # \n",
		"webhook-token = \"topsecretvalue\" x\n",
	} {
		path := writeFile(t, dir, "secret.toml", content)
		for _, args := range [][]string{{"config", "check", path}, {"serve", "--config", path, "--maildir", filepath.Join(dir, "m")}} {
			r := runBinary(t, args...)
			if r.code != 2 || !strings.Contains(r.stderr, "not valid TOML at line") {
				t.Errorf("%q %v: exit %d, want 2 with the position\n%s", content, args, r.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "topsecret") {
				t.Errorf("%q %v: the value was printed:\n%s", content, args, r.stderr)
			}
		}
	}
}

// An unknown key is an error at run time too, not silently ignored: a
// misspelt trust would fall back to the system roots. A webapp.ini's keys
// that certharvest does not use stay accepted.
func TestUnknownConfigKeyRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sample, _ := filepath.Abs(sampleDir)
	certs := filepath.Join(dir, "certs")
	cfg := writeFile(t, dir, "typo.toml", "# trust anchors\ntrsut = \""+sample+"/trust.pem\"\n")
	args := append([]string{"scan", "--config", cfg, "--certs", certs, "--report", filepath.Join(dir, "r.jsonl"), "--quiet"},
		"--dkim-keys", sample+"/dkim-keys.txt", "--at", "2026-06-01T00:00:00Z", sample+"/messages/01-ok-rsa-detached.eml")
	r := runBinary(t, args...)
	want := "unknown key trsut in " + cfg + " (line 2); did you mean trust?"
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("scan: exit %d, want 2 saying %q\n%s", r.code, want, r.stderr)
	}
	if _, err := os.Stat(certs); err == nil {
		t.Error("scan ran despite the unknown key")
	}
	// (--print-config: if the key were ignored, serve would run on.)
	r = runBinary(t, "serve", "--config", cfg, "--maildir", filepath.Join(dir, "Maildir"), "--print-config")
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("serve: exit %d, want 2 saying %q\n%s", r.code, want, r.stderr)
	}
	r = runBinary(t, "config", "check", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("config check: exit %d, want 2 saying %q\n%s", r.code, want, r.stderr)
	}
	// A key of one command is fine at the top level for the others.
	if r := runBinary(t, "list", "--config", writeFile(t, dir, "serve-key.toml", "maildir = \"/x\"\ncerts = \""+dir+"\"\n")); r.code != 0 {
		t.Errorf("list with a serve key at the top level: exit %d\n%s", r.code, r.stderr)
	}
	// The original webapp.ini loads as it is, its other keys unused.
	webapp := writeFile(t, dir, "webapp.ini", "[webapp]\nuser-certs-dir = "+dir+"\ndebug = False\nlisten-port: 8080\n")
	if r := runBinary(t, "list", "--config", webapp); r.code != 0 {
		t.Errorf("list with webapp.ini: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBinary(t, "config", "check", webapp); r.code != 0 || !strings.Contains(r.stdout, "does not use: debug, listen-port") {
		t.Errorf("config check of webapp.ini: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// --workers and --batch below 1 are refused by the flags themselves, so
// config check refuses them as scan and serve do.
func TestConfigCheckRefusesZeroWorkers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "workers.toml", "[scan]\nworkers = 0\n\n[serve]\nbatch = -1\n")
	r := runBinary(t, "config", "check", path)
	for _, want := range []string{`[scan] workers = "0" in`, `[serve] batch = "-1" in`, "want a whole number, at least 1"} {
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("config check: exit %d, want 2 saying %q\n%s", r.code, want, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"scan", "--workers", "0", "x.eml"},
		{"scan", "--config", path, "x.eml"},
		{"serve", "--maildir", filepath.Join(dir, "m"), "--batch", "0"},
	} {
		if r := runBinary(t, args...); r.code != 2 || !strings.Contains(r.stderr, "at least 1") {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}

// The original webapp.ini is read as Python's configparser read it:
// [DEFAULT] keys apply to [webapp] unless it sets them, an indented line
// continues the value above, and without user-certs-dir certificates go to
// the working directory, the original service's default.
func TestWebappINIConfigparser(t *testing.T) {
	dir := t.TempDir()
	// Not named .ini, and opening with a comment: still recognised.
	webapp := writeFile(t, dir, "webapp.conf", `# certificate collection service
[DEFAULT]
trusted-certs = /etc/pki/tls/certs/ca-bundle.crt
user-certs-dir = /srv/default-certs
log-level = debug

[webapp]
user-certs-dir = /srv/certs
x-messagesystems-webhook-token = s3cret-token
allowed-senders =
    alice@example.com

    bob@example.com
    ; a comment inside the value
debug: False

[logging]
handlers = console
`)
	r := runBinary(t, "config", "check", webapp)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{`trust = "/etc/pki/tls/certs/ca-bundle.crt"`, `certs = "/srv/certs"`, `webhook-token = "********"`,
		"does not use: log-level, allowed-senders, debug\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "default-certs") || strings.Contains(r.stdout, "s3cret") {
		t.Errorf("[DEFAULT] overrode [webapp], or the token was printed:\n%s", r.stdout)
	}

	// A used key continued over several lines is refused, its value unsaid.
	r = runBinary(t, "config", "check", writeFile(t, dir, "continued.ini", "[webapp]\nx-messagesystems-webhook-token = s3cret\n  -token\n"))
	if r.code != 2 || !strings.Contains(r.stderr, "x-messagesystems-webhook-token in") || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("continued token: exit %d, want 2 naming the key only\n%s", r.code, r.stderr)
	}

	// Without user-certs-dir, or with it empty, the working directory.
	work := filepath.Join(dir, "work")
	storeTestCert(t, work, "alice@example.com")
	t.Chdir(work)
	for _, content := range []string{"[webapp]\ntrusted-certs = /etc/ssl/certs/ca-certificates.crt\n", "[webapp]\nuser-certs-dir =\n"} {
		path := writeFile(t, dir, "nodir.ini", content)
		r = runBinary(t, "config", "check", path)
		if r.code != 0 || !strings.Contains(r.stdout, `certs = "."`) || !strings.Contains(r.stdout, "working directory") {
			t.Errorf("%q: exit %d, want certs = \".\" with a note\n%s%s", content, r.code, r.stdout, r.stderr)
		}
		r = runBinary(t, "list", "--config", path)
		if r.code != 0 || !strings.Contains(r.stdout, "alice@example.com") {
			t.Errorf("%q: list: exit %d, want the working directory's certificate\n%s%s", content, r.code, r.stdout, r.stderr)
		}
	}
}
