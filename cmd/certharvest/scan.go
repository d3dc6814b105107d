package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/mbox"
	"github.com/certharvest/certharvest/internal/engine"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const scanUsage = `Usage: certharvest scan [flags] PATH...

Verify every message under PATH and store the certificates of the genuine
signed ones as <certs>/<address>.crt. PATH is an .eml file, an mbox file, a
folder (walked recursively for .eml files, mbox files and Maildirs), or a
Maildir (its cur/ and new/); .eml.gz and .mbox.gz files are decompressed
as they are read. scan never modifies its inputs. Every message gets one
line in the report.

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
	store       storeFlags
	report      string
	workers     int
	quiet       bool
	verbose     bool
	allFiles    bool
	mboxFormat  parsedFlag[mbox.Format]
	memoryLimit parsedFlag[int64]
}

// newScanCommand returns scan's command and the flags it sets.
func newScanCommand(stdout io.Writer) (*command, *scanArgs) {
	cmd := newCommand("scan", scanUsage, stdout)
	a := &scanArgs{}
	a.pipeline.register(cmd.fs)
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "`folder` where certificates are stored")
	a.store.register(cmd.fs)
	cmd.fs.StringVar(&a.report, "report", "./report.jsonl", "JSON-lines report `file`, appended to; - for standard output")
	positiveIntVar(cmd.fs, &a.workers, "workers", 2*defaultWorkers(), "`number` of messages verified at once (default: twice the cores)")
	cmd.fs.BoolVar(&a.quiet, "quiet", false, "no progress bar and no summary (the log is --log's and --log-level's)")
	cmd.fs.BoolVarP(&a.verbose, "verbose", "v", false, "on a terminal, every message's story, not only the run's warnings and errors")
	cmd.fs.BoolVar(&a.allFiles, "all-files", false, "take every file in the folders as a message, not only .eml files and Maildirs")
	mboxFormatVar(cmd.fs, &a.mboxFormat)
	memoryLimitVar(cmd.fs, &a.memoryLimit)
	return cmd, a
}

// runScan scans paths with the flags a; the command line has been read.
func runScan(ctx context.Context, a *scanArgs, paths []string, stdout, stderr io.Writer) error {
	if len(paths) == 0 {
		return usagef("no PATH given")
	}
	// On a terminal: a progress bar, and the stories only with --log or
	// -v (see scan_terminal.go).
	var progress *scanProgress
	logTo := stderr
	if isTerminal(stderr) && !a.quiet {
		progress = newScanProgress(stderr)
		logTo = progress.logWriter()
	}
	setup, err := a.pipeline.build(logTo)
	if err != nil {
		return err
	}
	defer setup.closeLog()
	if progress != nil && a.pipeline.logFile == "" && !a.verbose {
		setup.logger = slog.New(runLogOnly{inner: setup.logger.Handler()})
		setup.opts.Logger = setup.logger
	}
	addSyncThreads(syncThreads)
	setLazyGC()
	memLimit, memLimitFrom := applyMemoryLimit(a.memoryLimit.value, setup.opts.MaxSize, 0, os.DirFS("/"))

	// Group commit: certificates stored at about the same time are made
	// durable by the same syncs (or transaction); each is durable before
	// its report line.
	store, err := a.store.openWriter(ctx, a.certs, output.CertStoreOptions{GroupCommit: true}, setup.logger)
	if err != nil {
		return err
	}
	defer store.close()
	// Verifying is CPU-bound; storing waits for the disk, a DKIM lookup in
	// DNS for the network. At most --workers messages are verified at
	// once, but a message waiting gives its slot to another (see
	// engine.WithSlotWaits), so that the waits overlap the work and enough
	// certificates wait together to be committed as a group.
	setup.opts.Store = store.CertStore
	pipeline, err := verify.New(engine.WithSlotWaits(setup.opts, a.pipeline.dkimKeys == ""))
	if err != nil {
		return err
	}
	report, err := output.OpenReport(a.report)
	if err != nil {
		return err
	}
	// With PostgreSQL, each verdict is a row too (verdictReports).
	engineReport, syncRows := verdictReports(report, store)
	setup.logger.Info("scan starting", "paths", strings.Join(paths, " "), "trust", setup.trustDesc,
		"dkim_keys", setup.keysDesc, store.logKey(), store.desc, "report", a.report, "workers", a.workers,
		"memory_limit", describeMemoryLimit(memLimit), "memory_limit_from", memLimitFrom)

	summary := newSummary()
	rules := ingest.WalkRules{AllFiles: a.allFiles, MboxFormat: a.mboxFormat.value, MaxSize: setup.opts.MaxSize, Skipped: summary.skip}
	var observer engine.Observer = summary
	if progress != nil {
		countCtx, stopCount := context.WithCancel(ctx)
		defer stopCount()
		progress.countInBackground(countCtx, paths, rules)
		observer = progressObserver{summary, progress}
	}
	walk := ingest.NewWalk(paths, ingest.WalkOptions{Rules: rules})
	// With --workers 1, one message at a time, in order, as before.
	e := engine.New(pipeline, walk, engineReport, engine.Options{Workers: a.workers, InOrder: a.workers == 1,
		MaxSize: setup.opts.MaxSize, Logger: setup.logger, Observer: observer})
	runErr := e.Run(ctx)
	if progress != nil {
		progress.finish()
	}
	if err := syncRows(); err != nil && runErr == nil {
		runErr = err
	}
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
		summary.printSkipped(stderr)
	}
	summary.logSkipped(setup.logger)
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
	nUnread  int        // the read_errors, of which unread holds the first
	skipped  [3]skipped // by ingest.SkipReason
}

// skipped counts the files the walk left out for one reason, and names the
// first.
type skipped struct {
	n     int
	first []string
}

// maxSkippedNamed bounds the skipped files named for each reason.
const maxSkippedNamed = 5

// skip counts a file the walk left out (ingest.WalkRules.Skipped).
func (s *summary) skip(path string, why ingest.SkipReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(why) >= len(s.skipped) {
		return
	}
	sk := &s.skipped[why]
	sk.n++
	if len(sk.first) < maxSkippedNamed {
		sk.first = append(sk.first, path)
	}
}

// skipNotes says what was skipped, one sentence per reason.
func (s *summary) skipNotes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var notes []string
	for why, sk := range s.skipped {
		if sk.n == 0 {
			continue
		}
		var what string
		switch ingest.SkipReason(why) {
		case ingest.SkipNotMessage:
			what = "not .eml and not in a Maildir; --all-files takes every file"
		case ingest.SkipLink:
			what = "symbolic links, never followed inside a folder"
		case ingest.SkipNotRegular:
			what = "not regular files"
		}
		names := strings.Join(sk.first, ", ")
		if sk.n > len(sk.first) {
			names += fmt.Sprintf(", and %d more", sk.n-len(sk.first))
		}
		notes = append(notes, fmt.Sprintf("skipped %s (%s): %s", plural(sk.n, "file"), what, names))
	}
	return notes
}

// printSkipped says on w what the walk left out.
func (s *summary) printSkipped(w io.Writer) {
	for _, note := range s.skipNotes() {
		fmt.Fprintf(w, "certharvest scan: %s\n", note)
	}
}

// logSkipped says in the log what the walk left out.
func (s *summary) logSkipped(log *slog.Logger) {
	for _, note := range s.skipNotes() {
		log.Info(note)
	}
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

// plural returns n and word, in the plural unless n is 1: "1 message",
// "2 messages".
func plural[N int | int64](n N, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
