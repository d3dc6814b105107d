package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// scanSampleInto fills a certificate folder from the sample corpus.
func scanSampleInto(t *testing.T, certs string) {
	t.Helper()
	args := append([]string{"scan"}, sampleFlags()...)
	r := runBinary(t, append(args, "--certs", certs, "--report", filepath.Join(filepath.Dir(certs), "r.jsonl"), "--quiet", sampleDir+"/messages")...)
	if r.code != 0 {
		t.Fatalf("scan: exit %d\n%s", r.code, r.stderr)
	}
}

func TestListAndShow(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	scanSampleInto(t, certs)

	r := runBinary(t, "list", "--certs", certs, "--json")
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	var list []struct {
		Address  string   `json:"address"`
		Emails   []string `json:"emails"`
		NotAfter string   `json:"not_after"`
		Key      string   `json:"key"`
		Expired  bool     `json:"expired"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	if len(list) != 12 {
		t.Fatalf("list has %d certificates, want the sample's 12", len(list))
	}
	for _, c := range list {
		if c.Key == "" || c.NotAfter == "" || c.Expired {
			t.Errorf("incomplete or wrong entry %+v", c)
		}
	}

	// The sample certificates end on 2028-01-01.
	for _, tt := range []struct {
		at, within string
		want       int
	}{
		{"2026-06-01T00:00:00Z", "30d", 0},
		{"2027-12-15T00:00:00Z", "30d", 12},
		{"2028-02-01T00:00:00Z", "1h", 12},
	} {
		r := runBinary(t, "list", "--certs", certs, "--json", "--at", tt.at, "--expiring-within", tt.within)
		var got []map[string]any
		json.Unmarshal([]byte(r.stdout), &got)
		if r.code != 0 || len(got) != tt.want {
			t.Errorf("at %s within %s: exit %d, %d certificates, want %d", tt.at, tt.within, r.code, len(got), tt.want)
		}
	}
	r = runBinary(t, "list", "--certs", certs)
	if r.code != 0 || !strings.Contains(r.stdout, "ADDRESS") || !strings.Contains(r.stdout, "carol.mixed@example.com") {
		t.Errorf("list table:\n%s", r.stdout)
	}

	r = runBinary(t, "show", "--certs", certs, "Carol.Mixed@Example.COM")
	if r.code != 0 || !strings.Contains(r.stdout, "Addresses:    carol.mixed@example.com") || !strings.Contains(r.stdout, "emailProtection") {
		t.Errorf("show: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, "show", "--certs", certs, "--pem", "carol.mixed@example.com")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("show --pem: exit %d\n%s", r.code, r.stdout)
	}
	for _, tt := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"show", "--certs", certs, "nobody@example.com"}, 1, "no certificate for nobody@example.com"},
		{[]string{"show", "--certs", certs, "../etc/passwd@example.com"}, 2, "invalid address"},
		{[]string{"show", "--certs", filepath.Join(certs, "missing"), "carol.mixed@example.com"}, 1, "certificate folder"},
		{[]string{"list", "--certs", certs, "--expiring-within", "soon"}, 2, "expiring-within"},
	} {
		r := runBinary(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.say) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tt.args, r.code, tt.code, tt.say, r.stderr)
		}
	}
}
