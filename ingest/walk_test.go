package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/queue"
)

// A walk whose context ends stops early, and says so.
func TestWalkCancelled(t *testing.T) {
	dir := t.TempDir()
	for i := range 300 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.eml", i)), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := ingest.NewWalk([]string{dir}, ingest.WalkOptions{})
	if _, err := w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	n := 1
	for {
		if _, err := w.Next(ctx); errors.Is(err, queue.ErrClosed) {
			break
		}
		n++
	}
	if n >= 300 {
		t.Errorf("all %d files walked after the cancel", n)
	}
	if err := w.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", err)
	}
}
