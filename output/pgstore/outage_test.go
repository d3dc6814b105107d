package pgstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// The pipeline over the store, with a server of the test's own (fsync on,
// as in production) that stops and starts again: a certificate records
// the message it came from; while the server is down, storing is
// store_failed (temporary: the message is verified again later), Ping
// says the store is unreachable, and the verdicts wait; once it is back,
// the same message is stored, and each verdict is written once, in the
// rows and in the JSON-lines file.
func TestServerStoppedAndStarted(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.Options{Durable: true})
	s := open(t, srv.URL())
	ctx := context.Background()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := testFixture(t)
	keys, err := verify.ParseDKIMKeys(bytes.NewReader(f.KeysFile()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := verify.New(verify.Options{Roots: f.TrustPool(), LookupTXT: keys.LookupTXT,
		Now: func() time.Time { return testcorpus.At }, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	reportPath := filepath.Join(t.TempDir(), "report.jsonl")
	file, err := output.OpenReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	report := Tee(file, s.Verdicts())
	verifyOne := func(addr string) (*verify.Message, *verify.Result) {
		t.Helper()
		raw, err := f.SignedMessage(addr)
		if err != nil {
			t.Fatal(err)
		}
		m := &verify.Message{Raw: raw, Envelope: verify.Envelope{Source: "smtp"}}
		return m, p.Verify(ctx, m)
	}

	m1, res := verifyOne("alice@example.com")
	if !res.Accepted() || res.Action != verify.ActionStored {
		t.Fatalf("alice: %s %s", res.Reason, res.Detail)
	}
	var from string
	if err := s.pool.QueryRow(ctx, "SELECT message_id FROM certificates WHERE address = 'alice@example.com'").Scan(&from); err != nil || from != res.ID {
		t.Errorf("alice's certificate came from %q (%v), want message %s", from, err, res.ID)
	}
	if err := report.Write(output.NewRecord(m1, res)); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Ping with the server down: %v", err)
	}
	m2, res := verifyOne("bob@example.com")
	if res.Reason != verify.ReasonStoreFailed || !res.Reason.Temporary() || !strings.Contains(res.Detail, "PostgreSQL at "+srv.Addr()+"/postgres is unreachable") {
		t.Errorf("bob with the server down: %s %q, want store_failed naming the cause", res.Reason, res.Detail)
	}
	if err := report.Sync(); err == nil {
		t.Error("the verdicts were synced with the server down")
	}
	_, res = verifyOne("alice@example.com") // known, and still not reachable
	if res.Reason != verify.ReasonStoreFailed {
		t.Errorf("alice again with the server down: %s", res.Reason)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once the server is back: %v", err)
	}
	if res = p.Verify(ctx, m2); !res.Accepted() || res.Action != verify.ActionStored {
		t.Fatalf("bob once the server is back: %s %s", res.Reason, res.Detail)
	}
	if err := report.Write(output.NewRecord(m2, res)); err != nil {
		t.Fatal(err)
	}
	if err := report.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM verdicts WHERE outcome = 'accepted'"); n != 2 {
		t.Errorf("%d verdict rows, want 2", n)
	}
	data, err := os.ReadFile(reportPath)
	if err != nil || bytes.Count(data, []byte("\n")) != 2 {
		t.Errorf("the report file has %d lines (%v), want 2", bytes.Count(data, []byte("\n")), err)
	}
	if n := count(t, s, "SELECT count(*) FROM certificates"); n != 2 {
		t.Errorf("%d certificates, want 2", n)
	}
}

// A statement the server does not finish in time fails, saying so, and is
// not final.
func TestExplain(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	s.opts.Timeout = 100 * time.Millisecond
	err := s.inTx(context.Background(), func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_sleep(5)")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("a server that does not answer in time: %v", err)
	}
	if errors.Is(err, verify.ReasonStoreRefused) {
		t.Error("a timeout is final")
	}
}
