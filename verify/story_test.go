package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// TestPipelineLogBlocksWhole verifies messages on several goroutines at
// once into the human-readable log: each message's story must be one
// block, its first line unprefixed, the others "| ", none of another
// message's in between.
func TestPipelineLogBlocksWhole(t *testing.T) {
	f := testFixture(t)
	var buf bytes.Buffer
	logger := slog.New(output.NewLogHandler(&buf, slog.LevelInfo))
	p, _ := newPipeline(t, f, func(o *verify.Options) { o.Logger = logger; o.BlockPrefix = true })
	cases := f.Cases()
	const workers, each = 8, 12
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c := cases[(w+i)%len(cases)]
				p.Verify(context.Background(), &verify.Message{Raw: c.Data, ID: fmt.Sprintf("w%d-%d", w, i), Envelope: verify.Envelope{Source: "test"}})
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	current := ""
	for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		open, close := strings.Index(line, "["), strings.Index(line, "] ")
		if open < 0 || close < open {
			t.Fatalf("line %d has no id: %q", i, line)
		}
		id, rest := line[open+1:close], line[close+2:]
		if strings.HasPrefix(rest, "| ") {
			if id != current {
				t.Fatalf("line %d, of %s, inside the block of %s: %q", i, id, current, line)
			}
			continue
		}
		if seen[id] {
			t.Fatalf("line %d starts a second block for %s: %q", i, id, line)
		}
		seen[id], current = true, id
	}
	if len(seen) != workers*each {
		t.Errorf("%d blocks, want %d", len(seen), workers*each)
	}
}
