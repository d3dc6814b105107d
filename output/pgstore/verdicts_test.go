package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// record makes the report line of a message id, accepted or not.
func record(id string, accepted bool) *output.Record {
	m := &verify.Message{Path: "/spool/new/" + id, Envelope: verify.Envelope{
		Source: "smtp", EnvelopeFrom: "alice@example.com", EnvelopeTo: []string{"certs@example.org", "b@example.org"},
		RemoteAddr: "192.0.2.1:25", Extra: map[string]string{"relay_id": "r-" + id},
	}}
	res := &verify.Result{ID: id, Reason: verify.ReasonDKIMMissing, Detail: "no DKIM-Signature header",
		At: t0, MessageID: "<" + id + "@example.com>", From: "alice@example.com", Duration: 1500 * time.Microsecond}
	if accepted {
		res.Reason, res.Detail = verify.ReasonOK, "certificate stored for alice@example.com"
		res.Action, res.CertFile = verify.ActionStored, "postgresql:certificates/alice@example.com"
		res.DKIM = &verify.DKIMResult{Domain: "example.com", Selector: "s1"}
		res.CertInfo = &verify.CertInfo{SHA256: "ab12", NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0)}
	}
	return output.NewRecord(m, res)
}

// Verdict rows: the line's members in columns and the whole line; a
// message written again (after a crash) keeps its one row.
func TestVerdicts(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	v := s.Verdicts()
	recs := []*output.Record{record("m1", true), record("m2", false)}
	for _, rec := range recs {
		if err := v.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM verdicts"); n != 0 {
		t.Fatalf("%d rows before Sync", n)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	// Again, as after a crash between the rows and the acks: the same
	// messages verified again, their lines differing (another time).
	again := record("m1", true)
	again.Detail = "certificate unchanged for alice@example.com"
	for _, rec := range []*output.Record{again, record("m3", false)} {
		if err := v.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil { // nothing gathered: nothing to do
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM verdicts"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	var detail, source, outcome, reason, from, dkim, certFile, sha string
	var to []string
	var verifiedAt time.Time
	var ms float64
	err := s.pool.QueryRow(ctx, `SELECT detail, source, outcome, reason, from_address, dkim_domain,
		cert_file, cert_sha256, envelope_to, verified_at, duration_ms FROM verdicts WHERE id = 'm1'`).
		Scan(&detail, &source, &outcome, &reason, &from, &dkim, &certFile, &sha, &to, &verifiedAt, &ms)
	if err != nil {
		t.Fatal(err)
	}
	if detail != recs[0].Detail || source != "smtp" || outcome != "accepted" || reason != "ok" || from != "alice@example.com" ||
		dkim != "example.com" || certFile != recs[0].CertFile || sha != "ab12" || !slices.Equal(to, recs[0].EnvelopeTo) ||
		!verifiedAt.Equal(t0) || ms != 1.5 {
		t.Errorf("row m1: %q %s %s %s %s %s %s %s %q %s %v", detail, source, outcome, reason, from, dkim, certFile, sha, to, verifiedAt, ms)
	}
	// The whole line, as the JSON-lines report has it.
	for _, rec := range recs {
		line, _ := json.Marshal(rec)
		if n := count(t, s, "SELECT count(*) FROM verdicts WHERE id = $1 AND line = $2::jsonb", rec.ID, string(line)); n != 1 {
			t.Errorf("%s: the row's line is not the report's", rec.ID)
		}
	}
	var action *string
	if err := s.pool.QueryRow(ctx, "SELECT action FROM verdicts WHERE id = 'm2'").Scan(&action); err != nil || action != nil {
		t.Errorf("a rejected message's action: %v, %v; want NULL", action, err)
	}
}

// What the sender chose may hold a NUL, which PostgreSQL's text and jsonb
// refuse: it becomes U+FFFD, and the batch is written.
func TestVerdictsNUL(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	v := s.Verdicts()
	rec := record("nul", false)
	rec.MessageID = "<a\x00b@example.com>"
	rec.Context = map[string]string{"k\x00": `v\u0000`}
	if err := v.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	var mid, ctxv string
	if err := s.pool.QueryRow(context.Background(), "SELECT message_id, context->>'k\uFFFD' FROM verdicts").Scan(&mid, &ctxv); err != nil {
		t.Fatal(err)
	}
	if mid != "<a\uFFFDb@example.com>" || ctxv != `v\u0000` {
		t.Errorf("message_id %q, context %q", mid, ctxv)
	}
	if got := string(jsonbSafe([]byte(`"\\u0000\u0000\\\u0000"`))); got != `"\\u0000\ufffd\\\ufffd"` {
		t.Errorf("jsonbSafe: %s", got)
	}
}

// failingReport takes no record while fail is set.
type failingReport struct {
	fail  bool
	lines []string
}

func (f *failingReport) Write(rec *output.Record) error {
	if f.fail {
		return errors.New("disk full")
	}
	f.lines = append(f.lines, rec.ID)
	return nil
}

func (f *failingReport) Sync() error {
	if f.fail {
		return errors.New("disk full")
	}
	return nil
}

// A tee gives each record once to each report, even when a later one
// failed and the engine writes the record again.
func TestTee(t *testing.T) {
	t.Parallel()
	first, second := &failingReport{}, &failingReport{fail: true}
	tee := Tee(first, second)
	rec := record("t1", false)
	if err := tee.Write(rec); err == nil {
		t.Fatal("a failing report: no error")
	}
	if err := tee.Sync(); err == nil {
		t.Fatal("a failing report: Sync gave no error")
	}
	second.fail = false
	if err := tee.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := tee.Write(record("t2", false)); err != nil {
		t.Fatal(err)
	}
	if err := tee.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(first.lines, second.lines); got != "[t1 t2] [t1 t2]" {
		t.Errorf("lines %s, want each once in each", got)
	}
}
