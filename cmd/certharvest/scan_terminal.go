package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// On a terminal, scan shows a progress bar on standard error (from
// github.com/schollz/progressbar, a kept library, rather than the escape
// sequences written by hand), and, unless --log or --verbose is given, only
// the warnings and errors about the run itself: every message's story is in
// the log with --log or -v, its verdict in the report and the summary.
// When standard error is not a terminal (cron, a pipe), nothing changes.

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// scanProgress is scan's progress bar. Its lines and the log's share one
// writer: a log line first erases the bar, which the next message draws
// again below it.
type scanProgress struct {
	out *lockedWriter
	bar *progressbar.ProgressBar
}

// lockedWriter serialises the writes of the bar and of the log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// progressThrottle is the least time between two drawings of the bar.
const progressThrottle = 100 * time.Millisecond

// newScanProgress starts a bar on w, its length unknown (a count of
// messages and a rate) until setTotal gives it.
func newScanProgress(w io.Writer) *scanProgress {
	out := &lockedWriter{w: w}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("scanning"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(progressThrottle),
		progressbar.OptionSetSpinnerChangeInterval(0), // drawn as messages are done, no goroutine
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return &scanProgress{out: out, bar: bar}
}

// logWriter returns the writer for the log: each write erases the bar's
// line first.
func (p *scanProgress) logWriter() io.Writer { return barClearingWriter{p.out} }

type barClearingWriter struct{ out *lockedWriter }

func (b barClearingWriter) Write(p []byte) (int, error) {
	b.out.mu.Lock()
	defer b.out.mu.Unlock()
	if _, err := io.WriteString(b.out.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return b.out.w.Write(p)
}

// countInBackground counts the messages under paths as scan's walk will
// find them, and gives the bar its length once known. The count is a walk
// of the folders without reading any file, cheap beside the verification.
func (p *scanProgress) countInBackground(ctx context.Context, paths []string, rules ingest.WalkRules) {
	go func() {
		n, err := ingest.CountMessages(ctx, paths, rules)
		if err == nil {
			p.bar.ChangeMax64(int64(n))
		}
	}()
}

// add counts one message done.
func (p *scanProgress) add() { _ = p.bar.Add64(1) }

// finish erases the bar.
func (p *scanProgress) finish() {
	_ = p.bar.Finish()
	_ = p.bar.Exit()
	io.WriteString(p.out, "\r\033[K")
}

// progressObserver is the summary, which also moves the bar.
type progressObserver struct {
	*summary
	progress *scanProgress
}

// Reported counts a verdict and moves the bar.
func (o progressObserver) Reported(rec *output.Record, res *verify.Result) {
	o.summary.Reported(rec, res)
	o.progress.add()
}

// runLogOnly is a log handler that passes the warnings and errors about the
// run, and of a message's story only its errors: a message's verdict is
// the report's and the summary's business, not the terminal's.
type runLogOnly struct {
	inner slog.Handler
	// message is set once an "id" attribute made this a message's story.
	message bool
}

func (h runLogOnly) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn && h.inner.Enabled(ctx, level)
}

func (h runLogOnly) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		if h.message {
			return nil
		}
		about := false
		r.Attrs(func(a slog.Attr) bool {
			about = a.Key == "id"
			return !about
		})
		if about {
			return nil
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h runLogOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	message := h.message
	for _, a := range attrs {
		message = message || a.Key == "id"
	}
	return runLogOnly{inner: h.inner.WithAttrs(attrs), message: message}
}

func (h runLogOnly) WithGroup(name string) slog.Handler {
	return runLogOnly{inner: h.inner.WithGroup(name), message: h.message}
}
