package engine

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/certharvest/certharvest/internal/queue"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Defaults of Options.
const (
	// DefaultBatch is the most report lines made durable by one sync.
	DefaultBatch = 512
	// DefaultRetryFirst is the first retry's delay after a temporary
	// failure; it doubles up to MaxRetryDelay.
	DefaultRetryFirst = time.Minute
	// MaxRetryDelay is the longest delay between two attempts.
	MaxRetryDelay = time.Hour
	// DefaultStallAfter: see HealthOptions.StallAfter.
	DefaultStallAfter = time.Minute
)

// Options configure an Engine. The zero value of each field means its
// default.
type Options struct {
	// Workers is how many messages are verified at once (CPU slots);
	// default: the cores (GOMAXPROCS).
	Workers int
	// InOrder, with one worker, takes one message at a time, in the
	// queue's order (scan --workers 1); else up to SlotWaiters more are
	// read, and wait for the disk or DNS, beside the workers.
	InOrder bool
	// Batch is the most verdicts committed by one report sync (group
	// commit); default DefaultBatch.
	Batch int
	// MaxSize is the largest message read; default verify.DefaultMaxSize.
	// It sizes the bytes held in memory (see InFlightBytes).
	MaxSize int64
	// RetryFor is how long a temporary failure is retried, from the later
	// of the message's delivery and its first temporary failure; 0 reports
	// it at once (scan).
	RetryFor time.Duration
	// RetryFirst is the first retry's delay; default DefaultRetryFirst.
	RetryFirst time.Duration
	// Durable makes each batch's report lines durable (synced) before its
	// messages are acked, and tries a report that cannot be written again,
	// with back-off, holding its messages, until it can (serve). Without
	// it (scan, whose acks lose nothing) the lines are written, synced
	// only at the end, and a failure is returned by Run after the rest is
	// processed.
	Durable bool
	// Now is the clock of retries, report times and health; default
	// time.Now. (Certificate validity is the pipeline's own clock.)
	Now func() time.Time
	// Logger receives the engine's own log lines (retries, failures); the
	// pipeline logs each message's story itself. Default: discard.
	Logger *slog.Logger
	// Observer is told of each message's progress, for metrics and
	// summaries; nil tells nothing.
	Observer Observer
	// Health configures the health check (Engine.Alive).
	Health HealthOptions
}

// Observer is told of each message's progress. Its methods are called
// from several goroutines at once.
type Observer interface {
	// Verified: the pipeline gave res for m (before any retry decision).
	Verified(m *verify.Message, res *verify.Result)
	// Reported: rec was written to the report (synced when Durable).
	Reported(rec *output.Record, res *verify.Result)
	// ReportFailed: writing or syncing the report failed.
	ReportFailed(err error)
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.MaxSize <= 0 {
		o.MaxSize = verify.DefaultMaxSize
	}
	if o.RetryFirst <= 0 {
		o.RetryFirst = DefaultRetryFirst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Health.StallAfter <= 0 {
		o.Health.StallAfter = DefaultStallAfter
	}
	return o
}

type nopObserver struct{}

func (nopObserver) Verified(*verify.Message, *verify.Result) {}
func (nopObserver) Reported(*output.Record, *verify.Result)  {}
func (nopObserver) ReportFailed(error)                       {}

// Report is where verdicts are written: an *output.Report.
type Report interface {
	Write(rec *output.Record) error
	Sync() error
}

// Engine runs the verification pipeline over a queue: Options.Workers
// messages verified at once, their bytes in memory bounded, their verdicts
// committed to the report in batches and then acked to the queue, a
// temporary failure retried with back-off. One engine runs once.
type Engine struct {
	pipeline *verify.Pipeline
	queue    queue.Queue
	report   Report
	opts     Options
	log      *slog.Logger
	slots    *cpuSlots
	health   *pipelineHealth
	stopping chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex
	attempts  map[string]retryState // messages that failed temporarily, by id
	processed int
	accepted  int
	reportErr error // the first report failure, without Durable
}

// New returns an engine running pipeline over q, reporting to report.
// The pipeline's store and DKIM lookup should be wrapped by WithSlotWaits,
// so that a message waiting for the disk or DNS lets another use its CPU.
func New(pipeline *verify.Pipeline, q queue.Queue, report Report, opts Options) *Engine {
	opts = opts.withDefaults()
	e := &Engine{
		pipeline: pipeline,
		queue:    q,
		report:   report,
		opts:     opts,
		log:      opts.Logger,
		slots:    newCPUSlots(opts.Workers),
		stopping: make(chan struct{}),
		attempts: map[string]retryState{},
	}
	e.health = newPipelineHealth(opts.Health.StallAfter)
	e.health.now = opts.Now
	e.health.queueTurn = opts.Health.QueueTurn
	return e
}

// Stop makes the engine take no new suspect of a crash (see
// queue.Queue.Suspects); the queue's Next ending (queue.ErrClosed) is what
// ends Run.
func (e *Engine) Stop() { e.stopOnce.Do(func() { close(e.stopping) }) }

// Counts returns the messages reported so far, and how many were accepted.
func (e *Engine) Counts() (processed, accepted int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.processed, e.accepted
}

// Run verifies the queue's messages until Next returns queue.ErrClosed and
// every message taken is committed. Cancelling ctx abandons the messages in
// flight: their verifications are cut off and they are not reported (they
// stay in the queue for the next start). The error is a report that could
// not be written, without Options.Durable.
func (e *Engine) Run(ctx context.Context) error {
	e.health.setRunning(true)
	defer e.health.setRunning(false)
	e.process(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reportErr
}
