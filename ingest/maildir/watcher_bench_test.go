//go:build unix

package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/cputime"
)

// BenchmarkMaildirWatcher measures the watcher's work per message renamed
// into new/ (the inotify event, the settle check, the hand-over): cpu-µs/msg
// is the CPU time of the whole process per message, the renames into new/
// included, from getrusage(2). The messages are renamed in by rounds of up
// to 1,000 and moved back out, untimed, after each.
//
//	go test -run '^$' -bench Watcher -benchmem -count 5 ./ingest/maildir/
func BenchmarkMaildirWatcher(b *testing.B) {
	dir := b.TempDir()
	for _, sub := range []string{SubTmp, SubNew, SubCur} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("%d.M%dP1Q%d.bench", 1780308000+i%600, i, i)
		if err := os.WriteFile(filepath.Join(dir, SubTmp, names[i]), []byte("From: a@example.com\r\n\r\nx\r\n"), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// Written long ago, as far as the settle check can tell.
	old := time.Now().Add(-time.Hour)
	for _, name := range names {
		if err := os.Chtimes(filepath.Join(dir, SubTmp, name), old, old); err != nil {
			b.Fatal(err)
		}
	}
	w := NewWatcher(dir, WatchOptions{Settle: time.Millisecond, Rescan: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	taken := make(chan string, len(names))
	go func() {
		for name := range w.Ready() {
			w.Done(name)
			taken <- name
		}
	}()
	time.Sleep(50 * time.Millisecond) // the watch in place
	cpu := func() time.Duration { return time.Duration(cputime.Process()) }
	var used time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		round := names[:min(len(names), b.N-done)]
		start := cpu()
		for _, name := range round {
			if err := os.Rename(filepath.Join(dir, SubTmp, name), filepath.Join(dir, SubNew, name)); err != nil {
				b.Fatal(err)
			}
		}
		for range round {
			<-taken
		}
		used += cpu() - start
		b.StopTimer()
		for _, name := range round {
			if err := os.Rename(filepath.Join(dir, SubNew, name), filepath.Join(dir, SubTmp, name)); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond) // the watcher sees them leave
		b.StartTimer()
		done += len(round)
	}
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/msg")
}
