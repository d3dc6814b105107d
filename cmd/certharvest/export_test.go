package main

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
)

// storeCerts writes a certificate for each address, valid from notBefore
// for a year, into the folder store dir, and returns them.
func storeCerts(t *testing.T, dir string, notBefore time.Time, addrs ...string) map[string]*x509.Certificate {
	t.Helper()
	store, err := output.OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	certs := map[string]*x509.Certificate{}
	for i, addr := range addrs {
		c := selfSigned(t, &x509.Certificate{
			SerialNumber:   big.NewInt(int64(i + 1)),
			Subject:        pkix.Name{CommonName: addr},
			EmailAddresses: []string{addr},
			NotBefore:      notBefore,
			NotAfter:       notBefore.AddDate(1, 0, 0),
		})
		if _, err := store.Store(context.Background(), addr, c); err != nil {
			t.Fatal(err)
		}
		certs[addr] = c
	}
	return certs
}

// export's formats on the command line: to stdout, to a file, into a
// folder, what changed since a time; and its usage errors.
func TestExportCommand(t *testing.T) {
	t.Parallel()
	certs := t.TempDir()
	storeCerts(t, certs, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "a@example.org", "b@example.org")
	res := runBinary(t, "export", "--certs", certs, "--format", "json")
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if res.code != 0 || len(lines) != 2 {
		t.Fatalf("json: exit %d, %d lines\n%s", res.code, len(lines), res.stderr)
	}
	var rec struct{ Address string }
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Address != "b@example.org" {
		t.Errorf("second line: %s (%v)", lines[1], err)
	}

	zone := filepath.Join(t.TempDir(), "smimea.zone")
	res = runBinary(t, "export", "--certs", certs, "--format", "smimea", "--smimea-matching-type", "1", "--to", zone)
	data, _ := os.ReadFile(zone)
	if res.code != 0 || strings.Count(string(data), " IN SMIMEA 3 0 1 ") != 2 || !strings.Contains(res.stderr, "exported 2 certificate(s) as smimea to "+zone) {
		t.Errorf("smimea --to FILE: exit %d, %q\n%s", res.code, res.stderr, data)
	}

	dir := t.TempDir()
	res = runBinary(t, "export", "--certs", certs, "--format", "ldif", "--ldap-base", "dc=example,dc=org", "--ldap-rdn", "uid", "--to", dir)
	data, _ = os.ReadFile(filepath.Join(dir, "a@example.org.ldif"))
	if res.code != 0 || !strings.HasPrefix(string(data), "version: 1\n\ndn: uid=a,dc=example,dc=org\nchangetype: modify\n") {
		t.Errorf("ldif --to DIR: exit %d, %s\n%s", res.code, res.stderr, data)
	}

	res = runBinary(t, "export", "--certs", certs, "--format", "pem", "--changed-since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if res.code != 0 || res.stdout != "" {
		t.Errorf("changed since a later time: exit %d, %q", res.code, res.stdout)
	}
	res = runBinary(t, "export", "--certs", certs, "--format", "pem", "--changed-since", "1h")
	if res.code != 0 || strings.Count(res.stdout, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("changed in the last hour: exit %d, %q", res.code, res.stdout)
	}

	for _, args := range [][]string{
		{"export", "--certs", certs},
		{"export", "--certs", certs, "--format", "xml"},
		{"export", "--certs", certs, "--format", "ldif"},
		{"export", "--certs", certs, "--format", "smimea", "--smimea-usage", "2"},
		{"export", "--certs", certs, "--format", "pem", "--changed-since", "yesterday"},
		{"list", "--certs", certs, "--notify-command", "true"},
	} {
		if res := runBinary(t, args...); res.code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)\n%s", args, res.code, res.stderr)
		}
	}
}

// list --notify-command runs once per certificate in the window, with its
// address and expiry in the environment; a failure runs again next time; a
// new certificate for the address is notified again when it expires in
// turn, and the state forgets the one it replaced.
func TestListNotifyCommand(t *testing.T) {
	t.Parallel()
	certs := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	storeCerts(t, certs, t0, "soon@example.org", "later@example.org")
	storeCerts(t, certs, t0.AddDate(0, 6, 0), "later@example.org")
	log := filepath.Join(t.TempDir(), "notices")
	// soon@ expires on 2027-01-01, later@ on 2027-07-01.
	list := func(at, command string) runResult {
		return runBinary(t, "list", "--certs", certs, "--at", at, "--expiring-within", "30d", "--notify-command", command)
	}
	record := `echo "$CERTHARVEST_ADDRESS $CERTHARVEST_NOT_AFTER $CERTHARVEST_EXPIRED" >> ` + log
	res := list("2026-12-15T00:00:00Z", "exit 3")
	if res.code != 1 || !strings.Contains(res.stderr, "soon@example.org: exit status 3") {
		t.Errorf("a failing command: exit %d\n%s", res.code, res.stderr)
	}
	for range 2 {
		if res := list("2026-12-15T00:00:00Z", record); res.code != 0 || !strings.Contains(res.stdout, "soon@example.org") {
			t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
	}
	if res := list("2027-06-15T00:00:00Z", record); res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	data, _ := os.ReadFile(log)
	want := "soon@example.org 2027-01-01T00:00:00Z false\nlater@example.org 2027-07-01T00:00:00Z false\n"
	if string(data) != want {
		t.Errorf("notices:\n%s\nwant\n%s", data, want)
	}

	// soon@ gets a new certificate: the state forgets the old one, and the
	// new one is notified once it is in the window.
	storeCerts(t, certs, t0.AddDate(1, 0, 0), "soon@example.org")
	if res := list("2027-06-15T00:00:00Z", record); res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	state, _ := os.ReadFile(filepath.Join(certs, ".notified"))
	if strings.Contains(string(state), "soon@") || !strings.Contains(string(state), "later@example.org") {
		t.Errorf("state after soon@'s new certificate:\n%s", state)
	}
	if res := list("2027-12-15T00:00:00Z", record); res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	data, _ = os.ReadFile(log)
	if want += "soon@example.org 2028-01-01T00:00:00Z false\n"; string(data) != want {
		t.Errorf("notices:\n%s\nwant\n%s", data, want)
	}
}
