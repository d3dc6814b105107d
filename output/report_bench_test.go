package output

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// benchRecord is the report line of an accepted webhook message, about
// 900 bytes: what serve's commit loop and scan write per message.
func benchRecord() *Record {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	m := &verify.Message{Path: "/var/spool/certharvest/new/1780308000.M123P42Q1.mx", Envelope: verify.Envelope{
		Source: "webhook", EnvelopeFrom: "bench-000000@example.com", EnvelopeTo: []string{"certs@inbound.example.org"},
		RemoteAddr: "192.0.2.7:53211", Extra: map[string]string{"customer_id": "1337", "webhook_id": "2049360837600"}}}
	res := &verify.Result{ID: "111b6de4509679fa", MessageID: "<111b6de4509679fa@example.com>",
		From: "bench-000000@example.com", Reason: verify.ReasonOK, Detail: "certificate stored",
		Action: verify.ActionStored, CertFile: "certs/bench-000000@example.com.crt", At: at,
		DKIM: &verify.DKIMResult{Domain: "example.com", Selector: "s1"},
		CertInfo: &verify.CertInfo{Subject: "CN=bench-000000", Issuer: "CN=certharvest test intermediate",
			Serial: "5c8e0a7b3d2f", NotBefore: at.AddDate(0, -5, 0), NotAfter: at.AddDate(2, 0, 0),
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Emails: []string{"bench-000000@example.com"}, Key: "RSA-2048", SignatureAlgorithm: "SHA256-RSA"}}
	return NewRecord(m, res)
}

// BenchmarkReportWrite appends report lines to a file as scan does: one
// Write per message, a write(2) per 64 KiB gathered.
func BenchmarkReportWrite(b *testing.B) {
	rep, err := OpenReport(filepath.Join(b.TempDir(), "report.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer rep.Close()
	rec := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if err := rep.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReportBatch writes report lines in batches of 16, each flushed
// as serve's commit loop does before its sync (the sync itself, a disk's
// fsync, is left out: it would drown the rest).
func BenchmarkReportBatch(b *testing.B) {
	rep, err := OpenReport(filepath.Join(b.TempDir(), "report.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer rep.Close()
	rec := benchRecord()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := rep.Write(rec); err != nil {
			b.Fatal(err)
		}
		if n++; n%16 == 0 {
			if err := flush(rep); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// flush writes the buffered lines as Sync does, without its fsync.
func flush(r *Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked()
}
