// Package queue is the seam between the engine that verifies messages
// (internal/engine) and where they wait: the Queue interface, which the
// Maildir spool (ingest/maildir) and scan's walk of files and folders
// (ingest) implement, and which a queue on another system (a distributed
// log, a database) would implement in turn. It holds no code, only the
// contract, so that an implementation and the engine depend on it and not
// on each other.
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// Queue is where the engine (internal/engine) takes messages from and
// gives their verdicts back: the Maildir spool of serve (maildir.Queue),
// the files and folders of scan (ingest.Walk). A message is named by an id of the queue's own (a file
// name in new/, a path).
//
// A message the engine takes goes through Next, then Load, then Ack (its
// verdict is durable) or RetryAt (a temporary failure) or neither (no
// verdict: it was gone, it changed while it was verified, or the shutdown
// cut its verification off), and at last Release.
//
// The methods are called from several goroutines at once. An error that a
// later attempt may not have (a network queue that is unreachable) should
// say so by wrapping ErrTemporary: the engine then asks Next again a
// second later, where any other error of Next stops the reader. The errors
// of Ack, RetryAt and Sync are logged, and lose nothing: a message not
// acked is offered again.
type Queue interface {
	// Next waits for the next message to verify and returns its id. It
	// returns ErrClosed once the queue offers no more (a stopped watcher,
	// the end of a walk): the engine then finishes what it took and
	// returns.
	Next(ctx context.Context) (string, error)
	// Load reads message id. Its bytes are counted by opts.Reserve once
	// their size is known, before they are read. The message is returned
	// with what is known of it (its path, source and, when the message
	// was too large to read, its id) even with an error, which is then
	// its verdict (read_error, message_too_large); but an error wrapping
	// ErrGone means the message left the queue meanwhile (another process
	// handled it): there is no verdict, and Load has already forgotten it.
	Load(ctx context.Context, id string, opts LoadOptions) (*verify.Message, error)
	// Unchanged returns nil when message id is still what Load read, or
	// else an error that says how it changed (its writer was not done):
	// the queue then offers it again once it settles, and the verdict on
	// what was read is dropped. A message gone meanwhile is unchanged (its
	// verdict stands).
	Unchanged(ctx context.Context, id string) error
	// Ack takes messages whose verdicts are durable (their report lines
	// synced) out of the queue, into its archive. The move needs to be
	// durable only once Sync returns.
	Ack(ctx context.Context, acks []Ack) error
	// RetryAt offers message id again at t: a temporary failure.
	RetryAt(ctx context.Context, id string, at time.Time) error
	// Release ends the engine's hold of messages it took, with or without
	// a verdict, for a queue that remembers what is in flight (see
	// Suspects). It is called once for a batch.
	Release(ids ...string)
	// Sync makes the acks so far durable.
	Sync(ctx context.Context) error
	// Suspects returns the messages that were in flight when the process
	// last crashed, the most crashes first (nil when it stopped in order):
	// the engine verifies each alone before any other, and quarantines
	// those in flight in QuarantineAfterCrashes crashes in a row.
	Suspects() []Suspect
	// Quarantine sets message id aside for good, out of the queue. Its
	// report line (internal_error) is durable before it is called.
	Quarantine(ctx context.Context, id string) error
}

// LoadOptions say how Queue.Load reads a message.
type LoadOptions struct {
	// MaxSize is the largest message read; a larger one is not read, and
	// its verdict is message_too_large.
	MaxSize int64
	// Reserve, when not nil, is called once with the bytes about to be
	// read into memory, before they are; the memory of the messages in
	// flight is bounded there. A queue that reads messages ahead itself
	// (scan's walk of an mbox, a stream read once, front to back) bounds
	// what it holds on its own, and calls Reserve before it hands a
	// message over.
	Reserve func(size int64)
}

// Ack is a message whose verdict is durable.
type Ack struct {
	ID       string
	Accepted bool
	// Result is the verdict, for a queue that records it with the
	// message (the Maildir's archive stamps its DKIM result); the engine
	// always gives it.
	Result *verify.Result
}

// Suspect is a message that was in flight when the process crashed.
type Suspect struct {
	ID string
	// Crashes is the number of consecutive crashes it was in flight in.
	Crashes int
	// Path is where it is, for the log; QuarantinePath where Quarantine
	// puts it, for its report line.
	Path, QuarantinePath string
}

var (
	// ErrClosed is returned by Queue.Next once the queue offers no more.
	ErrClosed = errors.New("queue closed")
	// ErrGone is wrapped by Queue.Load's error for a message no longer in
	// the queue.
	ErrGone = errors.New("message no longer in the queue")
	// ErrTemporary is wrapped by a queue's error that a later attempt may
	// not have.
	ErrTemporary = errors.New("temporary queue failure")
)
