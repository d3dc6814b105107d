package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: any configuration file is refused with an error or gives
// values that apply to a command's flags, or are refused, without a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add("trust = \"/etc/ssl/certs/ca-certificates.crt\"\n[serve]\nmaildir = \"/x\"\nsmtp-domain = [\"a.example\"]\n", false)
	f.Add("[webapp]\nx-messagesystems-webhook-token = t\nuser-certs-dir: /c\n; c\n", true)
	f.Add("[scan]\nworkers = 3\nquiet = true\n", false)
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
		c, err := loadConfig(path)
		if err != nil {
			return
		}
		fs := flag.NewFlagSet("scan", flag.ContinueOnError)
		fs.String("trust", "", "")
		fs.String("certs", "", "")
		fs.Int("workers", 1, "")
		fs.Bool("quiet", false, "")
		_ = c.apply("scan", fs)
	})
}
