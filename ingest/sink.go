package ingest

import (
	"context"
	"fmt"

	"github.com/certharvest/certharvest/verify"
)

// Sink is where a network input (SMTP, the webhook) delivers the messages it
// receives: durably, before it acknowledges them (250, 200), so that a
// message acknowledged is never lost. The Maildir spool (maildir.Spool) is
// one.
type Sink interface {
	// NewWriter returns a writer to receive a message into as its bytes
	// arrive: held in memory within its budget, or written to a file of
	// the sink's own (the spool's tmp/), from which Deliver takes it
	// without a copy.
	NewWriter(opts MessageWriterOptions) *MessageWriter
	// Deliver makes every message of msgs durable and returns their
	// names, or, on error, keeps none of them. It closes the messages'
	// writers. Concurrent deliveries may share their syncs.
	Deliver(ctx context.Context, msgs ...Incoming) ([]string, error)
	// Room reports whether a delivery of size more bytes (0: of any
	// message) could succeed now: nil, a *NoRoomError when the sink has
	// less room than that for mail, or why it cannot take messages. It
	// may first make room, as a delivery would.
	Room(ctx context.Context, size int64) error
}

// Incoming is a message to deliver: its bytes, or the writer that received
// them, with the context it arrived with.
type Incoming struct {
	// Raw is the message, unless Writer holds it.
	Raw []byte
	// Writer, when not nil, holds the message (Raw is unused): a writer of
	// the same sink's NewWriter, which Deliver closes.
	Writer *MessageWriter
	// Envelope is stored with the message.
	Envelope verify.Envelope
}

// NoRoomError is Sink.Room's error when the sink has less room for mail
// than was asked for.
type NoRoomError struct {
	Free uint64 // bytes free for mail
	Need int64  // bytes asked for
}

func (e *NoRoomError) Error() string {
	return fmt.Sprintf("%d bytes free, less than %d", e.Free, e.Need)
}
