package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: any configuration file is refused with an error, or
// accepted by config check, which then prints the effective configuration
// of every command, as each command parses it (--config, --print-config):
// the paths every command takes with a configuration file, without a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add("trust = \"/etc/ssl/certs/ca-certificates.crt\"\n[serve]\nmaildir = \"/x\"\nsmtp-domain = [\"a.example\"]\n", false)
	f.Add("[webapp]\nx-messagesystems-webhook-token = t\nuser-certs-dir: /c\n; c\n", true)
	f.Add("[scan]\nworkers = 3\nquiet = true\n", false)
	f.Add("workers = \"many\"\n[list]\nmaildir = \"/x\"\n", false)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string, ini bool) {
		name := "c.toml"
		if ini {
			name = "c.ini"
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := runConfig(context.Background(), []string{"check", path}, &out, io.Discard); err != nil {
			return
		}
		for _, command := range configCommands() {
			if !bytes.Contains(out.Bytes(), []byte("["+command+"]\n")) {
				t.Errorf("config check accepted the file but printed no [%s]:\n%s", command, out.Bytes())
			}
		}
	})
}
