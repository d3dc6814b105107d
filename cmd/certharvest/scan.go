package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const scanUsage = `Usage: certharvest scan [flags] PATH...

Verify every message under PATH and store the certificates of the genuine
signed ones as <certs>/<address>.crt. PATH is an .eml file, a folder (walked
recursively for .eml files and Maildirs), or a Maildir (its cur/ and new/).
scan never modifies its inputs. Every message gets one line in the report.

Exit status: 0 when every message was processed, whatever the verdicts;
1 on an operational error (a PATH or a file that could not be read, named
on standard error after the other paths are processed; unreadable trust
bundle, unwritable certificate folder or report); 2 on a usage error.

Examples:
  # Reprocess last month's archive against the system roots, keys from DNS:
  certharvest scan --certs /var/lib/certharvest/certs ~/Maildir/.Archive

  # Fully offline and reproducible, as in CI:
  certharvest scan --trust testdata/sample/trust.pem \
      --dkim-keys testdata/sample/dkim-keys.txt --at 2026-06-01T00:00:00Z \
      --certs ./certs --report ./report.jsonl testdata/sample/messages

  # Report to standard output, rejected messages only:
  certharvest scan --report - mail/ 2>/dev/null | jq 'select(.outcome=="rejected")'
`

// scanArgs are scan's flags.
type scanArgs struct {
	pipeline    pipelineFlags
	certs       string
	report      string
	workers     int
	quiet       bool
	memoryLimit parsedFlag[int64]
}

// newScanCommand returns scan's command and the flags it sets.
func newScanCommand(stdout io.Writer) (*command, *scanArgs) {
	cmd := newCommand("scan", scanUsage, stdout)
	a := &scanArgs{}
	a.pipeline.register(cmd.fs)
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "`folder` where certificates are stored")
	cmd.fs.StringVar(&a.report, "report", "./report.jsonl", "JSON-lines report `file`, appended to; - for standard output")
	positiveIntVar(cmd.fs, &a.workers, "workers", defaultWorkers(), "`number` of messages verified in parallel, by default one per core; with more than 1, up to 64 more may wait meanwhile, not counted, for their certificate's sync or a DKIM lookup in DNS (the messages held in memory are at most 8 x --max-size bytes, 256 MiB)")
	cmd.fs.BoolVar(&a.quiet, "quiet", false, "no progress and no summary")
	memoryLimitVar(cmd.fs, &a.memoryLimit)
	return cmd, a
}

func runScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, a := newScanCommand(stdout)
	if err := cmd.parse(args); err != nil {
		return err
	}
	if cmd.fs.NArg() == 0 {
		return usagef("no PATH given")
	}
	setup, err := a.pipeline.build(stderr)
	if err != nil {
		return err
	}
	defer setup.closeLog()
	addSyncThreads(syncThreads)
	setLazyGC()
	memLimit, memLimitFrom := applyMemoryLimit(a.memoryLimit.value, setup.opts.MaxSize, 0, os.DirFS("/"))

	// Group commit: certificates stored at about the same time are made
	// durable by the same syncs; each is durable before its report line.
	store, err := output.OpenCertStoreOptions(a.certs, output.CertStoreOptions{GroupCommit: true})
	if err != nil {
		return err
	}
	defer store.Close()
	// Verifying is CPU-bound; storing waits for the disk, a DKIM lookup in
	// DNS for the network. At most --workers messages are verified at
	// once, but a message waiting gives its slot to another (see
	// engine.WithSlotWaits), so that the waits overlap the work and enough
	// certificates wait together to be committed as a group.
	setup.opts.Store = store
	pipeline, err := verify.New(engine.WithSlotWaits(setup.opts, a.pipeline.dkimKeys == ""))
	if err != nil {
		return err
	}
	report, err := output.OpenReport(a.report)
	if err != nil {
		return err
	}
	setup.logger.Info("scan starting", "paths", strings.Join(cmd.fs.Args(), " "), "trust", setup.trustDesc,
		"dkim_keys", setup.keysDesc, "certs", a.certs, "report", a.report, "workers", a.workers,
		"memory_limit", describeMemoryLimit(memLimit), "memory_limit_from", memLimitFrom)

	summary := newSummary()
	var progress *progressLine
	if f, ok := stderr.(*os.File); ok && !a.quiet && term.IsTerminal(int(f.Fd())) && a.pipeline.logFile != "" {
		progress = startProgress(f, summary)
	}
	walk := ingest.NewWalk(cmd.fs.Args(), ingest.WalkOptions{})
	// With --workers 1, one message at a time, in order, as before.
	e := engine.New(pipeline, walk, report, engine.Options{Workers: a.workers, InOrder: a.workers == 1,
		MaxSize: setup.opts.MaxSize, Logger: setup.logger, Observer: summary})
	runErr := e.Run(ctx)
	progress.stop()
	if err := report.Close(); err != nil && runErr == nil {
		runErr = err
	}
	setup.logger.Info("scan finished", "messages", summary.total(), "accepted", summary.accepted(),
		"elapsed", time.Since(summary.start).Round(time.Millisecond).String())
	if !a.quiet {
		out := stdout
		if a.report == "-" {
			out = stderr
		}
		summary.print(out)
	}
	unreadErr := summary.printUnread(stderr)
	if err := walk.Err(); err != nil {
		return fmt.Errorf("scan interrupted: %w", err)
	}
	if runErr != nil {
		return runErr
	}
	if err := summary.storeErr(); err != nil {
		return err
	}
	return unreadErr
}

// summary counts verdicts by outcome and reason, as the engine's
// Observer, and keeps the first certificate that could not be stored.
type summary struct {
	start    time.Time
	mu       sync.Mutex
	byReason map[verify.Reason]int
	actions  map[verify.Action]int
	n        atomic.Int64
	stored   error // the first store_failed or store_refused
	unread   []unread
	nUnread  int // the read_errors, of which unread holds the first
}

// unread is a path that could not be read (read_error).
type unread struct{ path, detail string }

// maxUnreadNamed bounds the paths that could not be read named on standard
// error.
const maxUnreadNamed = 20

func newSummary() *summary {
	return &summary{start: time.Now(), byReason: map[verify.Reason]int{}, actions: map[verify.Action]int{}}
}

// Verified: the verdict is counted once reported.
func (s *summary) Verified(*verify.Message, *verify.Result) {}

// ReportFailed: engine.Engine.Run returns the report's failure.
func (s *summary) ReportFailed(error) {}

// Reported counts a verdict.
func (s *summary) Reported(rec *output.Record, res *verify.Result) {
	s.mu.Lock()
	if (res.Reason == verify.ReasonStoreFailed || res.Reason == verify.ReasonStoreRefused) && s.stored == nil {
		s.stored = fmt.Errorf("%s: %s", rec.Path, res.Detail)
	}
	if res.Reason == verify.ReasonReadError {
		if s.nUnread < maxUnreadNamed {
			s.unread = append(s.unread, unread{rec.Path, res.Detail})
		}
		s.nUnread++
	}
	s.byReason[res.Reason]++
	if res.Accepted() && res.Action != "" {
		s.actions[res.Action]++
	}
	s.mu.Unlock()
	s.n.Add(1)
}

func (s *summary) total() int64 { return s.n.Load() }

// storeErr returns the first certificate that could not be stored, as an
// operational error (exit status 1).
func (s *summary) storeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}

// printUnread names on w the paths that could not be read (read_error),
// and returns them as an operational error (exit status 1); nil when every
// path was read.
func (s *summary) printUnread(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.unread {
		// The detail of a path the walk could not read begins with it.
		detail := strings.TrimPrefix(u.detail, "reading "+u.path+": ")
		fmt.Fprintf(w, "certharvest scan: cannot read %s: %s\n", u.path, detail)
	}
	switch {
	case s.nUnread == 0:
		return nil
	case s.nUnread > len(s.unread):
		fmt.Fprintf(w, "certharvest scan: ... and %d more (read_error in the report)\n", s.nUnread-len(s.unread))
	}
	return fmt.Errorf("%s could not be read", plural(s.nUnread, "path"))
}

func (s *summary) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byReason[verify.ReasonOK]
}

func (s *summary) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	elapsed := time.Since(s.start)
	total := s.n.Load()
	rate := float64(total) / elapsed.Seconds()
	fmt.Fprintf(w, "%s in %s (%.0f/s): %d accepted, %d rejected\n",
		plural(total, "message"), elapsed.Round(time.Millisecond), rate, s.byReason[verify.ReasonOK], int(total)-s.byReason[verify.ReasonOK])
	if len(s.actions) > 0 {
		var parts []string
		for _, a := range []verify.Action{verify.ActionStored, verify.ActionUnchanged, verify.ActionKeptExisting} {
			if n := s.actions[a]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, a))
			}
		}
		fmt.Fprintf(w, "  certificates: %s\n", strings.Join(parts, ", "))
	}
	reasons := make([]verify.Reason, 0, len(s.byReason))
	for r := range s.byReason {
		reasons = append(reasons, r)
	}
	order := map[verify.Reason]int{}
	for i, r := range verify.Reasons() {
		order[r] = i
	}
	sort.Slice(reasons, func(i, j int) bool { return order[reasons[i]] < order[reasons[j]] })
	for _, r := range reasons {
		outcome := output.OutcomeRejected
		if r == verify.ReasonOK {
			outcome = output.OutcomeAccepted
		}
		fmt.Fprintf(w, "  %-9s %-22s %6d\n", outcome, r, s.byReason[r])
	}
}

// progressLine redraws a one-line progress report on a terminal.
type progressLine struct {
	done chan struct{}
	wg   sync.WaitGroup
	w    io.Writer
}

func startProgress(w io.Writer, s *summary) *progressLine {
	p := &progressLine{done: make(chan struct{}), w: w}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := s.total()
				fmt.Fprintf(w, "\r\033[Kscanned %s (%.0f/s), %d accepted", plural(n, "message"),
					float64(n)/time.Since(s.start).Seconds(), s.accepted())
			}
		}
	}()
	return p
}

func (p *progressLine) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}

// plural returns n and word, in the plural unless n is 1: "1 message",
// "2 messages".
func plural[N int | int64](n N, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
