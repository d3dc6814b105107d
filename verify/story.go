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
	mu      *sync.Mutex  // serialises the blocks written record by record
	id      string
	prefix  bool
	records []slog.Record
	// pool, if not nil, lends the records' arrays (*[]slog.Record) and
	// takes them back once written.
	pool *sync.Pool
	// cache, if not nil, keeps the words of the lines about CA
	// certificates (storycache.go).
	cache *storyCache
}

// maxPooledRecords bounds the arrays a story gives back to its pool, so
// that one long story does not keep a large array alive.
const maxPooledRecords = 64

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
		s.records = s.newRecords()
	}
	s.records = append(s.records, r)
}

// newRecords returns an empty array for the records, the pool's if it has
// one.
func (s *story) newRecords() []slog.Record {
	if s.pool != nil {
		if recs, ok := s.pool.Get().(*[]slog.Record); ok {
			return *recs
		}
	}
	// An accepted message's story has about fifteen records.
	return make([]slog.Record, 0, 16)
}

func (s *story) Info(msg string, args ...any)  { s.add(slog.LevelInfo, msg, args) }
func (s *story) Warn(msg string, args ...any)  { s.add(slog.LevelWarn, msg, args) }
func (s *story) Error(msg string, args ...any) { s.add(slog.LevelError, msg, args) }

// flush writes the block.
func (s *story) flush(ctx context.Context) {
	if s.handler == nil || len(s.records) == 0 {
		return
	}
	if sh, ok := s.handler.(storyHandler); ok {
		// One write: no other block can come in between.
		prefix := ""
		if s.prefix {
			prefix = "| "
		}
		_ = sh.HandleStory(ctx, s.id, prefix, s.records)
	} else {
		h := s.handler.WithAttrs([]slog.Attr{slog.String("id", s.id)})
		s.mu.Lock()
		for i, r := range s.records {
			if s.prefix && i > 0 {
				r.Message = "| " + r.Message
			}
			_ = h.Handle(ctx, r)
		}
		s.mu.Unlock()
	}
	clear(s.records) // nothing kept alive from the pool
	if s.pool != nil && cap(s.records) <= maxPooledRecords {
		recs := s.records[:0]
		s.pool.Put(&recs)
	}
	s.records = nil
}

// storyHandler is a handler that writes a story itself, as one block:
// output.LogHandler writes it in one write, without copying the handler for
// the id or the messages for their prefix.
type storyHandler interface {
	// HandleStory writes records as
	// h.WithAttrs([]slog.Attr{slog.String("id", id)}) would, each after
	// the first with prefix before its message, in one write, safe for
	// concurrent use.
	HandleStory(ctx context.Context, id, prefix string, records []slog.Record) error
}
