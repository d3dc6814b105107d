package output

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// LogHandler is a slog.Handler for people: one line per record,
//
//	2026-06-01T10:00:00.000Z INFO  [3f2a9c01d4e5] | DKIM passed domain=example.com selector=s1
//
// with the message id in brackets and the other attributes as key=value,
// quoted when needed.
type LogHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	id    string
	attrs []slog.Attr
	group string
}

// NewLogHandler returns a LogHandler writing to w records at level and
// above.
func NewLogHandler(w io.Writer, level slog.Leveler) *LogHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &LogHandler{mu: &sync.Mutex{}, w: w, level: level}
}

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler. An "id" attribute becomes the bracketed
// message id.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		if a.Key == "id" && h.group == "" {
			h2.id = a.Value.String()
			continue
		}
		if h.group != "" {
			a.Key = h.group + "." + a.Key
		}
		h2.attrs = append(h2.attrs, a)
	}
	return &h2
}

// WithGroup implements slog.Handler by prefixing keys.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	if h.group != "" {
		name = h.group + "." + name
	}
	h2.group = name
	return &h2
}

// Handle implements slog.Handler.
func (h *LogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteByte(' ')
	fmt.Fprintf(&b, "%-5s ", r.Level.String())
	id := h.id
	var attrs []slog.Attr
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "id" && h.group == "" {
			id = a.Value.String()
			return true
		}
		if h.group != "" {
			a.Key = h.group + "." + a.Key
		}
		attrs = append(attrs, a)
		return true
	})
	if id != "" {
		b.WriteString("[" + id + "] ")
	}
	writeEscaped(&b, r.Message)
	for _, a := range attrs {
		writeAttr(&b, "", a)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	var s string
	switch a.Value.Kind() {
	case slog.KindTime:
		s = a.Value.Time().UTC().Format(time.RFC3339)
	default:
		s = a.Value.String()
	}
	if needsQuoting(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

// writeEscaped writes s with control characters and invalid UTF-8 escaped,
// so that text from a message can neither forge a log line nor garble the
// terminal.
func writeEscaped(b *strings.Builder, s string) {
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(b, "\\x%02x", s[0])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, "\\x%02x", r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}
