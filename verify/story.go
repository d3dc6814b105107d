package verify

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// story collects one message's log records and writes them as one block when
// the message is done, so that under concurrency each message still reads as
// a contiguous story. The first record is written as it is; the following
// ones are prefixed "| ", as the original service's log did.
type story struct {
	handler slog.Handler // nil: discard
	mu      *sync.Mutex  // serialises blocks between messages
	id      string
	prefix  bool
	records []slog.Record
}

func (s *story) enabled() bool {
	return s.handler != nil && s.handler.Enabled(context.Background(), slog.LevelInfo)
}

func (s *story) add(level slog.Level, msg string, args []any) {
	if s.handler == nil || !s.handler.Enabled(context.Background(), level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.Add(args...)
	if s.records == nil {
		// An accepted message's story has about fifteen records.
		s.records = make([]slog.Record, 0, 16)
	}
	s.records = append(s.records, r)
}

func (s *story) Info(msg string, args ...any)  { s.add(slog.LevelInfo, msg, args) }
func (s *story) Warn(msg string, args ...any)  { s.add(slog.LevelWarn, msg, args) }
func (s *story) Error(msg string, args ...any) { s.add(slog.LevelError, msg, args) }

// flush writes the block.
func (s *story) flush(ctx context.Context) {
	if s.handler == nil || len(s.records) == 0 {
		return
	}
	h := s.handler.WithAttrs([]slog.Attr{slog.String("id", s.id)})
	if s.prefix {
		for i := 1; i < len(s.records); i++ {
			s.records[i].Message = "| " + s.records[i].Message
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bh, ok := h.(blockHandler); ok {
		_ = bh.HandleBlock(ctx, s.records)
	} else {
		for _, r := range s.records {
			_ = h.Handle(ctx, r)
		}
	}
	s.records = s.records[:0]
}

// blockHandler is a handler that can write several records as one block:
// output.LogHandler writes a message's story in one write.
type blockHandler interface {
	HandleBlock(ctx context.Context, records []slog.Record) error
}
