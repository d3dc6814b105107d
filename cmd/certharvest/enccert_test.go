package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// The certificate an application can encrypt to, end to end through the
// binary (issue 18): scan stores a dual-key sender's encryption
// certificate as <address>.crt and its signing one beside it, the report
// says which is which with the capabilities, list, show and export serve
// the encryption certificate and never take <address>.sign.crt for an
// address; signing-only senders are rejected, nothing stored.
func TestScanEncryptionCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	corpus := writeCorpus(t, filepath.Join(dir, "corpus"))
	certs, report := filepath.Join(dir, "certs"), filepath.Join(dir, "report.jsonl")
	args := append(append([]string{"scan"}, corpus.flags...),
		"--certs", certs, "--report", report, "--log", filepath.Join(dir, "log"), filepath.Join(corpus.dir, "messages"))
	if r := runBinary(t, args...); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	dual, noEncryption := 0, 0
	accepted := map[string]bool{}
	for _, rec := range readReport(t, report) {
		c := corpus.files[filepath.Base(rec.Path)]
		if c.Reason == testcorpus.ReasonCertNoEncryption {
			noEncryption++
			if rec.Reason != "cert_no_encryption" || rec.CertFile != "" || rec.Cert == nil {
				t.Errorf("%s: %s, cert file %q", c.Name, rec.Reason, rec.CertFile)
			}
			if _, err := os.Stat(filepath.Join(certs, fromAddress(t, c.Data)+".crt")); err == nil {
				t.Errorf("%s: a certificate was stored", c.Name)
			}
			continue
		}
		if rec.Outcome != output.OutcomeAccepted {
			continue
		}
		accepted[rec.From] = true
		if c.EncryptionCert == nil {
			if rec.EncryptionCert != nil || rec.SignCertFile != "" {
				t.Errorf("%s: an encryption certificate apart from the signer's", c.Name)
			}
			continue
		}
		dual++
		sum := sha256.Sum256(c.EncryptionCert)
		if rec.EncryptionCert == nil || rec.EncryptionCert.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: the report's encryption_cert is not the case's", c.Name)
		}
		checkPEM(t, rec.CertFile, rec.EncryptionCert.SHA256)
		if rec.SignCertFile != strings.TrimSuffix(rec.CertFile, ".crt")+".sign.crt" {
			t.Errorf("%s: sign_cert_file %q", c.Name, rec.SignCertFile)
		}
		checkPEM(t, rec.SignCertFile, rec.Cert.SHA256)
		if c.Name == "ok-dual-key-preference" && !slices.Equal(rec.Capabilities, []string{"AES-256-GCM", "AES-128-CBC", "RSAES-OAEP", "1.3.6.1.4.1.99999.1"}) {
			t.Errorf("%s: capabilities %q", c.Name, rec.Capabilities)
		}
	}
	if dual < 3 || noEncryption < 3 {
		t.Fatalf("%d dual-key and %d signing-only cases in the corpus", dual, noEncryption)
	}

	// list: every accepted address once, no <address>.sign.
	r := runBinary(t, "list", "--certs", certs, "--json")
	var listed []lookup.StoredCert
	if err := json.Unmarshal([]byte(r.stdout), &listed); r.code != 0 || err != nil {
		t.Fatalf("list: exit %d, %v\n%s", r.code, err, r.stderr)
	}
	for _, l := range listed {
		if !accepted[l.Address] {
			t.Errorf("list shows %s, no accepted address", l.Address)
		}
	}
	if len(listed) != len(accepted) {
		t.Errorf("list shows %d addresses, %d were accepted", len(listed), len(accepted))
	}
	// show: the certificate to encrypt to, the capabilities, the signer.
	r = runBinary(t, "show", "--certs", certs, "dual.preference@example.com")
	for _, want := range []string{"Key usage:    digitalSignature, keyEncipherment", "Capabilities: AES-256-GCM, AES-128-CBC, RSAES-OAEP", "Signs with:   another certificate"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("show: exit %d, no %q in\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	if r := runBinary(t, "show", "--certs", certs, "dual.preference@example.com.sign"); r.code == 0 {
		t.Errorf("show of <address>.sign found a certificate:\n%s", r.stdout)
	}
	// export: the encryption certificates, one line per address.
	r = runBinary(t, "export", "--certs", certs, "--format", "json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != len(accepted) {
		t.Fatalf("export: exit %d, %d lines for %d addresses\n%s", r.code, len(lines), len(accepted), r.stderr)
	}
	for _, line := range lines {
		var rec struct {
			Address     string
			Certificate []byte
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Address == "dual.preference@example.com" {
			c := corpus.byName(t, "ok-dual-key-preference")
			if !bytes.Equal(rec.Certificate, c.EncryptionCert) {
				t.Error("export gives the dual-key sender's signing certificate")
			}
		}
	}
}

// byName returns the corpus's case name.
func (c *corpusDir) byName(t *testing.T, name string) testcorpus.Case {
	t.Helper()
	for _, cc := range c.files {
		if cc.Name == name {
			return cc
		}
	}
	t.Fatalf("no case %s", name)
	return testcorpus.Case{}
}

// A live input: dual-key senders over SMTP into serve, then the lookup
// API answers with the certificate to encrypt to, and with ?format=json
// its capabilities and the signing certificate; with the folder store and
// with PostgreSQL.
func TestServeEncryptionCertificates(t *testing.T) {
	t.Parallel()
	t.Run("folder", func(t *testing.T) {
		t.Parallel()
		serveEncryptionCertificates(t)
	})
	t.Run("postgresql", func(t *testing.T) {
		t.Parallel()
		file := storeFile(t, pg.Schema(t))
		if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 {
			t.Fatalf("store migrate: exit %d\n%s", r.code, r.stderr)
		}
		serveEncryptionCertificates(t, "--store-file", file)
	})
}

func serveEncryptionCertificates(t *testing.T, storeArgs ...string) {
	dir := t.TempDir()
	corpus := writeCorpus(t, filepath.Join(dir, "corpus"))
	tokenFile := filepath.Join(dir, "lookup-token")
	os.WriteFile(tokenFile, []byte("lk-dual-key\n"), 0o600)
	args := append(corpus.flags, "--smtp", "127.0.0.1:0", "--smtp-domain", "inbound.example.org",
		"--http", "127.0.0.1:0", "--lookup-token-file", tokenFile)
	args = append(args, storeArgs...)
	s := startServe(t, dir, args...)
	names := []string{"ok-dual-key-preference", "ok-dual-key-in-bag", "cert-no-encryption-rsa"}
	c, err := smtp.Dial(s.smtpAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := smtpSend(t, c, corpus.byName(t, name).Data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	c.Quit()
	s.waitDrained(t, 30*time.Second)

	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + s.webhookAddr(t) + "/certs/"
	pref := corpus.byName(t, "ok-dual-key-preference")
	code, _, body := lookupGet(t, client, base+"dual.preference@example.com", "lk-dual-key")
	if code != 200 || !bytes.Equal(body, output.EncodeCertificatePEM(mustParse(t, pref.EncryptionCert))) {
		t.Errorf("lookup PEM: %d, not the encryption certificate\n%s", code, body)
	}
	code, _, body = lookupGet(t, client, base+"dual.preference@example.com?format=json", "lk-dual-key")
	var answer lookup.StoredCert
	if err := json.Unmarshal(body, &answer); code != 200 || err != nil {
		t.Fatalf("lookup JSON: %d %v\n%s", code, err, body)
	}
	sum := sha256.Sum256(pref.EncryptionCert)
	if answer.SHA256 != hex.EncodeToString(sum[:]) || answer.SigningCert == nil || answer.SigningCert.SHA256 == answer.SHA256 ||
		!slices.Equal(answer.Capabilities, []string{"AES-256-GCM", "AES-128-CBC", "RSAES-OAEP", "1.3.6.1.4.1.99999.1"}) {
		t.Errorf("lookup JSON: %s", body)
	}
	if code, _, body := lookupGet(t, client, base+"sign.only.rsa@example.com", "lk-dual-key"); code != 404 {
		t.Errorf("lookup of a signing-only sender: %d %s", code, body)
	}
	if code, _, body := lookupGet(t, client, base+"dual.preference@example.com.sign", "lk-dual-key"); code != 404 {
		t.Errorf("lookup of <address>.sign: %d %s", code, body)
	}
	s.stop(t)
	reasons := map[string]string{}
	for _, rec := range readReport(t, s.report) {
		reasons[rec.From] = string(rec.Reason)
	}
	if reasons["dual.bag@example.org"] != "ok" || reasons["sign.only.rsa@example.com"] != "cert_no_encryption" {
		t.Errorf("verdicts %v", reasons)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
