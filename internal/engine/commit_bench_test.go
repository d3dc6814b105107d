//go:build unix

package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/cputime"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// BenchmarkCommit measures serve's work per message after the
// verification: its report line written (one sync per batch of 512, as
// --batch), its move to cur/ and the bookkeeping, for an accepted message
// an MTA delivered. The messages are delivered and loaded between batches,
// untimed. cpu-µs/msg is the CPU time of the whole process per message
// (getrusage(2)), the background sync of cur/ included; ns/op, which also
// counts the wait for the report's sync, varies more.
//
//	go test -run '^$' -bench Commit -benchmem -count 5 ./internal/engine/
func BenchmarkCommit(b *testing.B) {
	const batch = 512
	f, err := testcorpus.New()
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for _, c := range f.Cases() {
		if c.Reason == "ok" {
			data = c.Data
			break
		}
	}
	s, spool := newTestServer(b, f, func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) },
		serveOptions(0, batch, time.Hour, time.Minute))
	dir := spool.Dir()
	// One verdict, reused: the pipeline is not measured.
	name0 := "1780308000.M0P1Q0.bench"
	if err := os.WriteFile(filepath.Join(dir, "new", name0), data, 0o600); err != nil {
		b.Fatal(err)
	}
	m, _, err := spool.LoadFile(name0, ingest.ReadOptions{MaxSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	res := s.pipeline.Verify(context.Background(), m)
	if !res.Accepted() {
		b.Fatalf("the sample message is rejected: %s %s", res.Reason, res.Detail)
	}
	q, err := maildir.NewQueue(spool, s.watcher, s.log)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	e := New(s.pipeline, q, s.report, s.opts)
	archived := startArchiveSyncer(q.Sync, archiveSyncInterval, s.log)
	defer archived.stop()
	outcomes := make([]outcome, 0, batch)
	cpu := func() time.Duration { return time.Duration(cputime.Process()) }
	var used time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		outcomes = outcomes[:0]
		for i := range min(batch, b.N-done) {
			name := fmt.Sprintf("%d.M%dP1Q%d.bench", 1780308000+i, done+i, done+i)
			tmp := filepath.Join(dir, "tmp", name)
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
				b.Fatal(err)
			}
			m, _, err := spool.LoadFile(name, ingest.ReadOptions{MaxSize: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			outcomes = append(outcomes, outcome{id: name, msg: m, res: res})
		}
		b.StartTimer()
		start := cpu()
		e.commit(context.Background(), outcomes, archived)
		used += cpu() - start
		done += len(outcomes)
	}
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/msg")
}
