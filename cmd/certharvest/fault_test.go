package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testfs"
)

// fill writes a file until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			return path
		}
	}
}

// A full certificate disk: the message is not reported while the
// certificate cannot be written (store_failed is temporary), stays in new/,
// and is stored and reported once space is back. Nothing is lost.
func TestFaultCertificateDiskFull(t *testing.T) {
	small := testfs.MountTmpfs(t, "64k")
	certs := filepath.Join(small, "certs")
	os.MkdirAll(certs, 0o755)
	filler := fill(t, small)

	dir := t.TempDir()
	s := startServe(t, dir, "--certs", certs, "--retry-first", "200ms")
	msg, _ := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	deliver(t, s.maildir, "m1", msg)
	s.waitLog(t, "temporary failure: store_failed")
	if _, err := os.Stat(filepath.Join(s.maildir, "new", "m1")); err != nil {
		t.Fatal("the message left new/ while its certificate could not be written:", err)
	}
	if data, _ := os.ReadFile(s.report); len(data) != 0 {
		t.Fatalf("reported before the certificate was stored: %s", data)
	}
	os.Remove(filler)
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != "ok" || recs[0].Action != "stored" {
		t.Fatalf("report = %+v", recs)
	}
	checkPEM(t, filepath.Join(certs, "rsa.detached@example.com.crt"), recs[0].Cert.SHA256)
}

// A full spool disk: the webhook answers 503 and nothing is acknowledged;
// once space is back the same request is accepted.
func TestFaultSpoolDiskFull(t *testing.T) {
	small := testfs.MountTmpfs(t, "256k")
	dir := t.TempDir()
	maildir := filepath.Join(small, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	s := startServe(t, dir, "--maildir", maildir, "--http", "127.0.0.1:0")
	s.maildir = maildir // the flag given last wins
	url := "http://" + s.webhookAddr(t) + "/"
	body := sparkPostPayload(t, relayed{file: "01-ok-rsa-detached.eml", rcptTo: "certs@inbound.example.org"})
	filler := fill(t, small)
	if code, answer := postRelay(t, http.DefaultClient, url, "", body); code != http.StatusServiceUnavailable {
		t.Fatalf("disk full: status %d %s, want 503", code, answer)
	}
	if entries, _ := os.ReadDir(filepath.Join(maildir, "new")); len(entries) != 0 {
		t.Fatalf("%d messages in new/ after a refused request", len(entries))
	}
	os.Remove(filler)
	if code, answer := postRelay(t, http.DefaultClient, url, "", body); code != http.StatusOK {
		t.Fatalf("space back: status %d %s, want 200", code, answer)
	}
	s.waitDrained(t, 20*time.Second)
	s.stop(t)
	if recs := readReport(t, s.report); len(recs) != 1 || recs[0].Reason != "ok" || recs[0].Source != "webhook" {
		log, _ := os.ReadFile(s.log)
		t.Fatalf("report = %+v\n%s", recs, log)
	}
}
