package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/output"
)

// crash kills the service as the kernel's OOM killer would: SIGKILL, no
// clean-up.
func (s *service) crash(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not die on SIGKILL")
	}
}

// waitAsked waits until dns has received more than n queries for name.
func waitAsked(t *testing.T, dns *fakeDNS, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for dns.askedFor(name) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no query for %s after %d", name, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reportLines returns the report's records for the message file name.
func reportLines(t *testing.T, report, name string) []output.Record {
	t.Helper()
	if _, err := os.Stat(report); err != nil {
		return nil
	}
	var recs []output.Record
	for _, rec := range readReport(t, report) {
		if filepath.Base(rec.Path) == name {
			recs = append(recs, rec)
		}
	}
	return recs
}

// A message that crashes serve at every attempt is set aside after three
// crashes in a row, and the service goes on, through the built binary and
// real crashes (SIGKILL). The poison's DKIM key lookup goes to a DNS server
// that never answers, so it is in flight whenever the service is killed.
// At the first crash an innocent message is in flight beside it (its
// lookup hangs too, then only); after it, the suspects are verified alone:
// the innocent one passes and is reported, the poison is in flight alone
// at the next two crashes, and a third message delivered meanwhile waits.
// The fourth start moves the poison to quarantine/ and reports it
// internal_error, once, then processes the waiting message; a fifth start
// leaves it there.
func TestServeQuarantinesPoisonMessage(t *testing.T) {
	const (
		poisonKey   = "s1._domainkey.example.com" // 01-ok-rsa-detached.eml's
		innocentKey = "s1._domainkey.example.net" // 04-ok-x-pkcs7-signature.eml's
		// The suspects are verified the most crashes first, then by name:
		// the innocent before the poison after the first crash.
		innocentName = "1780308000.M1P1Q1.innocent"
		poisonName   = "1780308000.M1P1Q2.poison"
		laterName    = "1780308000.M1P1Q3.later" // 05-ok-x-pkcs7-mime.eml, example.org
	)
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(sampleDir, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	poison, innocent, later := read("01-ok-rsa-detached.eml"), read("04-ok-x-pkcs7-signature.eml"), read("05-ok-x-pkcs7-mime.eml")
	dns := startFakeDNS(t, sampleDir+"/dkim-keys.txt", dnsmessage.RCodeSuccess)
	dns.hangFor(poisonKey, innocentKey)
	dir := t.TempDir()
	// --dkim-keys= undoes the sample's keys file: the keys come from dns.
	args := []string{"--dkim-keys=", "--dns-server", dns.addr(), "--dns-timeout", "2m"}

	// First crash: the poison and the innocent message both in flight.
	sv := startServe(t, dir, args...)
	deliver(t, sv.maildir, poisonName, poison)
	deliver(t, sv.maildir, innocentName, innocent)
	waitAsked(t, dns, poisonKey, 0)
	waitAsked(t, dns, innocentKey, 0)
	sv.crash(t)
	dns.hangFor(poisonKey)

	// Second and third crashes: the poison verified alone.
	for run := 2; run <= 3; run++ {
		asked := dns.askedFor(poisonKey)
		sv = startServe(t, dir, args...)
		if run == 2 {
			deliver(t, sv.maildir, laterName, later)
		}
		waitAsked(t, dns, poisonKey, asked)
		if run == 2 {
			// The innocent message went first, alone, and passed.
			waitLines(t, sv.report, 1)
		}
		// Nothing else is taken while the poison is verified alone.
		time.Sleep(300 * time.Millisecond)
		if recs := reportLines(t, sv.report, laterName); len(recs) != 0 {
			t.Fatalf("run %d: a message was processed beside the suspect: %+v", run, recs)
		}
		sv.crash(t)
	}

	// Fourth start: quarantined, and the service goes on.
	asked := dns.askedFor(poisonKey)
	sv = startServe(t, dir, args...)
	sv.waitDrained(t, 30*time.Second)
	waitLines(t, sv.report, 3)
	sv.stop(t)
	if n := dns.askedFor(poisonKey); n != asked {
		t.Errorf("the quarantined message was verified again (%d more key lookups)", n-asked)
	}
	quarantined := filepath.Join(sv.maildir, maildir.SubQuarantine, poisonName)
	if data, err := os.ReadFile(quarantined); err != nil || !bytes.Equal(data, poison) {
		t.Errorf("quarantine/%s: %v", poisonName, err)
	}
	recs := reportLines(t, sv.report, poisonName)
	if len(recs) != 1 || recs[0].Reason != "internal_error" || recs[0].Detail != "quarantined after 3 crashes" ||
		recs[0].Path != quarantined || recs[0].ID == "" {
		t.Errorf("the poison's report lines: %+v, want one internal_error \"quarantined after 3 crashes\" at %s", recs, quarantined)
	}
	for _, name := range []string{innocentName, laterName} {
		recs := reportLines(t, sv.report, name)
		if len(recs) != 1 || recs[0].Reason != "ok" {
			t.Errorf("%s: report lines %+v, want one ok", name, recs)
		}
		if _, err := os.Stat(filepath.Join(sv.maildir, "cur", name+":2,S")); err != nil {
			t.Errorf("%s not archived: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(sv.maildir, maildir.SubQuarantine, name)); err == nil {
			t.Errorf("%s was quarantined", name)
		}
	}
	if log := sv.ownLog(); !bytes.Contains(log, []byte("quarantined: in flight in 3 consecutive crashes")) {
		t.Errorf("the log does not tell the quarantine:\n%s", log)
	}

	// A fifth start, after a clean stop: nothing to do.
	sv = startServe(t, dir, args...)
	time.Sleep(300 * time.Millisecond)
	sv.stop(t)
	if n := len(readReport(t, sv.report)); n != 3 {
		t.Errorf("after a clean restart: %d report lines, want 3", n)
	}
	if log := string(sv.ownLog()); strings.Contains(log, "verifying alone") || strings.Contains(log, "quarantined:") {
		t.Errorf("a clean restart found suspects:\n%s", log)
	}
}
