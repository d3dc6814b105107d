package main

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/output"
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
	t.Parallel()
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
	// The table fits 100 columns; --wide has the whole names.
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if n := utf8.RuneCountInString(line); n > listWidth {
			t.Errorf("list: a line of %d columns, want at most %d:\n%s", n, listWidth, line)
		}
	}
	if strings.Contains(r.stdout, "O=certharvest tests") {
		t.Errorf("list without --wide prints whole names:\n%s", r.stdout)
	}
	r = runBinary(t, "list", "--certs", certs, "--wide")
	if !strings.Contains(r.stdout, "emailAddress=carol.mixed@example.com") || !strings.Contains(r.stdout, "CN=certharvest Test Intermediate,O=certharvest tests") {
		t.Errorf("list --wide lacks the whole names:\n%s", r.stdout)
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

// storeTestCert stores a self-signed certificate for addr in the folder dir.
func storeTestCert(t *testing.T, dir, addr string) {
	t.Helper()
	cert := selfSigned(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)})
	store, err := output.OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Store(context.Background(), addr, cert); err != nil {
		t.Fatal(err)
	}
}

// One damaged certificate file does not hide the others: list prints every
// readable certificate, names each skipped file and why on standard error,
// and exits 1 so that the damage is not silent.
func TestListSkipsUnreadableCertificates(t *testing.T) {
	t.Parallel()
	certs := t.TempDir()
	storeTestCert(t, certs, "alice@example.com")
	storeTestCert(t, certs, "zoe@example.com")
	notPEM := writeFile(t, certs, "bob@example.com.crt", "not a certificate\n")
	badDER := writeFile(t, certs, "carol@example.com.crt", "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n")

	wantStderr := func(t *testing.T, stderr string) {
		t.Helper()
		for _, want := range []string{notPEM + ": no PEM CERTIFICATE block", badDER + ": x509: ", "left out 2 unreadable"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	}
	t.Run("json", func(t *testing.T) {
		r := runBinary(t, "list", "--certs", certs, "--json")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		var list []lookup.StoredCert
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("list --json: %v\n%s", err, r.stdout)
		}
		if len(list) != 2 || list[0].Address != "alice@example.com" || list[1].Address != "zoe@example.com" {
			t.Errorf("listed %+v, want alice and zoe", list)
		}
		wantStderr(t, r.stderr)
	})
	t.Run("table", func(t *testing.T) {
		r := runBinary(t, "list", "--certs", certs)
		if r.code != 1 || !strings.Contains(r.stdout, "alice@example.com") || !strings.Contains(r.stdout, "zoe@example.com") {
			t.Errorf("exit %d, want 1 with alice and zoe listed:\n%s", r.code, r.stdout)
		}
		wantStderr(t, r.stderr)
	})
	os.Remove(notPEM)
	os.Remove(badDER)
	if r := runBinary(t, "list", "--certs", certs, "--json"); r.code != 0 || r.stderr != "" {
		t.Errorf("without the damaged files: exit %d\n%s", r.code, r.stderr)
	}
}

// fitLastTwo gives the narrower of the last two columns its width when it
// fits in half the room, and never narrows one below 10.
func TestFitLastTwo(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want []int
	}{
		{[]int{20, 10, 8, 20, 20}, []int{20, 10, 8, 20, 20}}, // fits
		{[]int{20, 10, 8, 20, 60}, []int{20, 10, 8, 20, 34}}, // the subject fits in half
		{[]int{20, 10, 8, 60, 15}, []int{20, 10, 8, 39, 15}}, // the issuer fits in half
		{[]int{20, 10, 8, 60, 60}, []int{20, 10, 8, 27, 27}}, // halves
		{[]int{70, 10, 8, 60, 60}, []int{70, 10, 8, 10, 10}}, // a long address: the minimum
	} {
		got := slices.Clone(tt.in)
		fitLastTwo(got, 100)
		if !slices.Equal(got, tt.want) {
			t.Errorf("fitLastTwo(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := shorten("certharvest Test Intermediate", 10); got != "certharve…" {
		t.Errorf("shorten = %q", got)
	}
}
