package output

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

func TestReportLinesAreWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.jsonl")
	rep, err := OpenReport(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &verify.Message{Path: fmt.Sprintf("w%d/%d.eml", w, i), Envelope: verify.Envelope{Source: "scan"}}
				res := &verify.Result{ID: "x", Reason: verify.ReasonNoSignature, Detail: strings.Repeat("d", i)}
				if err := rep.Write(NewRecord(m, res)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not a whole record: %v", n+1, err)
		}
		if rec.Outcome != OutcomeRejected || rec.Reason != verify.ReasonNoSignature {
			t.Fatalf("line %d: %+v", n+1, rec)
		}
		n++
	}
	if n != writers*each {
		t.Errorf("%d lines, want %d", n, writers*each)
	}
}

func TestNewRecordAccepted(t *testing.T) {
	m := &verify.Message{Envelope: verify.Envelope{Source: "webhook", EnvelopeFrom: "bob@example.com",
		EnvelopeTo: []string{"in@example.org"}, Extra: map[string]string{"customer_id": "42"}}}
	res := &verify.Result{ID: "abc", Reason: verify.ReasonOK, From: "bob@example.com", Action: verify.ActionStored,
		CertFile: "certs/bob@example.com.crt", At: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		DKIM: &verify.DKIMResult{Domain: "example.com", Selector: "s1"}}
	line, err := json.Marshal(NewRecord(m, res))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(line, &got)
	for k, want := range map[string]any{
		"outcome": "accepted", "reason": "ok", "action": "stored", "source": "webhook",
		"cert_file": "certs/bob@example.com.crt", "envelope_from": "bob@example.com", "from": "bob@example.com",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if got["dkim"].(map[string]any)["selector"] != "s1" || got["context"].(map[string]any)["customer_id"] != "42" {
		t.Errorf("nested fields wrong: %s", line)
	}
}

func TestReportReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.jsonl")
	rep, err := OpenReport(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &verify.Message{Envelope: verify.Envelope{Source: "test"}}
	rep.Write(NewRecord(m, &verify.Result{ID: "before", Reason: verify.ReasonNoSignature}))
	os.Rename(path, path+".1") // logrotate's move, before the line is flushed
	if err := rep.Reopen(); err != nil {
		t.Fatal(err)
	}
	rep.Write(NewRecord(m, &verify.Result{ID: "after", Reason: verify.ReasonNoSignature}))
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"id":"before"`) || strings.Contains(string(old), `"after"`) {
		t.Errorf("rotated file = %s", old)
	}
	if !strings.Contains(string(cur), `"id":"after"`) || strings.Contains(string(cur), `"before"`) {
		t.Errorf("new file = %s", cur)
	}
}

// A report deleted or moved away while the service runs is created again:
// no line goes to a deleted file.
func TestReportFollowsItsPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.jsonl")
	rep, err := OpenReport(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	m := &verify.Message{Envelope: verify.Envelope{Source: "test"}}
	write := func(id string) {
		t.Helper()
		rep.Write(NewRecord(m, &verify.Result{ID: id, Reason: verify.ReasonNoSignature}))
		if err := rep.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	os.Remove(path)
	write("two")
	os.Rename(path, path+".old")
	write("three")
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), `"three"`) || strings.Contains(string(data), `"two"`) {
		t.Errorf("current report = %s", data)
	}
	if data, _ := os.ReadFile(path + ".old"); !strings.Contains(string(data), `"two"`) {
		t.Errorf("moved report = %s", data)
	}
}

// The report's dkim object: a signature verified with its key is written as
// it always was (no via); one established by a trusted
// Authentication-Results field says so, and whose.
func TestRecordDKIMVia(t *testing.T) {
	m := &verify.Message{Envelope: verify.Envelope{Source: "scan"}}
	for _, tt := range []struct {
		dkim verify.DKIMResult
		want string
	}{
		{verify.DKIMResult{Domain: "example.com", Selector: "s1"}, `"dkim":{"domain":"example.com","selector":"s1"},`},
		{verify.DKIMResult{Domain: "example.com", Selector: "s1", Via: verify.DKIMViaAuthResults, AuthservID: "mx.example.org"},
			`"dkim":{"domain":"example.com","selector":"s1","via":"authentication-results","authserv_id":"mx.example.org"},`},
	} {
		line, err := json.Marshal(NewRecord(m, &verify.Result{ID: "x", Reason: verify.ReasonOK, DKIM: &tt.dkim}))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(line), tt.want) {
			t.Errorf("line %s lacks %s", line, tt.want)
		}
	}
}

// TestReportToDevNull: a report sent to a character device (or a FIFO) is
// written without an fsync, which such a file refuses (EINVAL): the run
// must not fail on it.
func TestReportToDevNull(t *testing.T) {
	rep, err := OpenReport(os.DevNull)
	if err != nil {
		t.Skipf("no %s here: %v", os.DevNull, err)
	}
	m := &verify.Message{Path: "a.eml", Envelope: verify.Envelope{Source: "scan"}}
	if err := rep.Write(NewRecord(m, &verify.Result{ID: "x", Reason: verify.ReasonNoSignature})); err != nil {
		t.Fatal(err)
	}
	if err := rep.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := rep.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := rep.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
