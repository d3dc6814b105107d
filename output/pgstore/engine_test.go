package pgstore

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// runScan runs scan's engine over dir, in order with one worker, storing
// in store and reporting to report (synced batch by batch, as serve does).
func runScan(t *testing.T, f *testcorpus.Fixture, dir string, store verify.CertStore, report engine.Report) {
	t.Helper()
	pipeline, err := verify.New(engine.WithSlotWaits(verify.Options{Roots: f.TrustPool(),
		LookupTXT: func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) },
		Now:       func() time.Time { return testcorpus.At }, Store: store}, false))
	if err != nil {
		t.Fatal(err)
	}
	walk := ingest.NewWalk([]string{dir}, ingest.WalkOptions{})
	e := engine.New(pipeline, walk, report, engine.Options{Workers: 1, InOrder: true, Durable: true})
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := walk.Err(); err != nil {
		t.Fatal(err)
	}
}

// The test corpus scanned into PostgreSQL gives the certificates a scan
// into a folder gives (the export is that folder, byte for byte), and one
// verdict row per report line, with the same verdict; scanned again (as
// after a crash), it adds no row.
func TestEngineScan(t *testing.T) {
	t.Parallel()
	f := testFixture(t)
	s, _ := migrated(t)
	msgs := t.TempDir()
	for i, c := range f.Cases() {
		if err := os.WriteFile(filepath.Join(msgs, fmt.Sprintf("%03d-%s.eml", i, c.Name)), c.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	folderDir := t.TempDir()
	folder, err := output.OpenCertStore(folderDir)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	reportPath := filepath.Join(t.TempDir(), "report.jsonl")
	report, err := output.OpenReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	runScan(t, f, msgs, folder, report)
	if err := report.Close(); err != nil {
		t.Fatal(err)
	}
	runScan(t, f, msgs, s, s.Verdicts())

	exportDir := t.TempDir()
	if _, err := s.Export(context.Background(), exportDir); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, folderDir, exportDir)
	if n := len(folderFiles(t, folderDir)); n < 2 {
		t.Errorf("the scan stored %d certificates", n)
	}

	file, err := os.Open(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	lines := 0
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec output.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		lines++
		if n := count(t, s, "SELECT count(*) FROM verdicts WHERE id = $1 AND reason = $2 AND outcome = $3",
			rec.ID, string(rec.Reason), rec.Outcome); n != 1 {
			t.Errorf("%s: no verdict row %s, %s", rec.Path, rec.Outcome, rec.Reason)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM verdicts"); n != lines || lines == 0 {
		t.Errorf("%d verdict rows, %d report lines", n, lines)
	}
	if n := count(t, s, "SELECT count(*) FROM certificates WHERE message_id IS NULL"); n != 0 {
		t.Errorf("%d certificates without the message they came from", n)
	}

	runScan(t, f, msgs, s, s.Verdicts())
	if n := count(t, s, "SELECT count(*) FROM verdicts"); n != lines {
		t.Errorf("scanned again: %d verdict rows, want %d", n, lines)
	}
}
