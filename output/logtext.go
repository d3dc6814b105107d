package output

import (
	"context"
	"io"
	"log/slog"
	"strconv"
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
	bp := logBufPool.Get().(*[]byte)
	b := h.appendRecord((*bp)[:0], &r, h.id, "", nil)
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	*bp = b
	logBufPool.Put(bp)
	return err
}

// HandleBlock writes records as Handle would, one after the other, in one
// write: the story of a message (see verify) reaches the log whole, without
// a line of another writer in between, and for the cost of one system call.
func (h *LogHandler) HandleBlock(_ context.Context, records []slog.Record) error {
	return h.writeRecords(records, h.id, "")
}

// HandleStory writes the story of one message as
// h.WithAttrs([]slog.Attr{slog.String("id", id)}).HandleBlock would, with
// the message of every record after the first prefixed by prefix ("| " in
// the human-readable log), but without copying the handler or the
// messages.
func (h *LogHandler) HandleStory(_ context.Context, id, prefix string, records []slog.Record) error {
	if h.group != "" {
		// Within a group, the id is an ordinary attribute.
		h = h.WithAttrs([]slog.Attr{slog.String("id", id)}).(*LogHandler)
		id = h.id
	}
	return h.writeRecords(records, id, prefix)
}

// writeRecords writes records in one write, each with the message id id
// unless it has its own, and from the second on with prefix before its
// message.
func (h *LogHandler) writeRecords(records []slog.Record, id, prefix string) error {
	bp := logBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	// The records of a story are usually of one second: its time stamp's
	// date and time are formatted once.
	var stamps stampCache
	for i := range records {
		p := prefix
		if i == 0 {
			p = ""
		}
		b = h.appendRecord(b, &records[i], id, p, &stamps) // a record is 288 bytes: not copied
	}
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	if cap(b) <= 64<<10 {
		*bp = b
		logBufPool.Put(bp)
	}
	return err
}

// logBufPool holds the buffers lines are formatted in.
var logBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// timeLayout is the layout of a line's time stamp, in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z"

// appendRecord appends the line of a record: id is the message id unless
// the record has its own, and prefix is written before the message. stamps,
// if not nil, keeps the time stamp's second from one record to the next.
func (h *LogHandler) appendRecord(b []byte, r *slog.Record, id, prefix string, stamps *stampCache) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	if stamps != nil {
		b = stamps.append(b, t)
	} else {
		b = appendTimestamp(b, t)
	}
	b = append(b, ' ')
	level := r.Level.String()
	b = append(b, level...)
	for i := len(level); i < 5; i++ {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	if h.group == "" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "id" {
				id = a.Value.String()
			}
			return true
		})
	}
	if id != "" {
		b = append(b, '[')
		b = append(b, id...)
		b = append(b, "] "...)
	}
	b = appendEscaped(b, prefix)
	b = appendEscaped(b, r.Message)
	for _, a := range h.attrs {
		b = appendAttr(b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "id" && h.group == "" {
			return true
		}
		if h.group != "" {
			a.Key = h.group + "." + a.Key
		}
		b = appendAttr(b, "", a)
		return true
	})
	return append(b, '\n')
}

// appendTimestamp appends t in UTC in timeLayout, as
// t.UTC().AppendFormat(b, timeLayout) does, without parsing the layout.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3) // truncated, as the layout's .000
	return append(b, 'Z')
}

// stampCache appends time stamps as appendTimestamp does, keeping the
// part before the milliseconds ("2006-01-02T15:04:05.") of the last one:
// for another time of the same second only the milliseconds are
// formatted.
type stampCache struct {
	sec    int64    // the Unix second of prefix
	prefix [32]byte // prefix[:n]: the time stamp of sec up to its "."
	n      int      // 0: nothing kept
}

func (c *stampCache) append(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if c.n > 0 && sec == c.sec {
		b = append(b, c.prefix[:c.n]...)
		b = appendDigits(b, t.Nanosecond()/1e6, 3)
		return append(b, 'Z')
	}
	start := len(b)
	b = appendTimestamp(b, t)
	// Whatever the year's width, the stamp ends in ".000Z"; what comes
	// before depends on the second alone.
	if n := len(b) - start - len(".000Z"); n > 0 && n < len(c.prefix) {
		c.sec, c.n = sec, copy(c.prefix[:], b[start:start+n+1])
	}
	return b
}

// appendDigits appends the n last decimal digits of v >= 0, zero padded.
func appendDigits(b []byte, v, n int) []byte {
	start := len(b)
	for range n {
		b = append(b, '0')
	}
	for i := len(b) - 1; i >= start && v > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			b = appendAttr(b, prefix+a.Key+".", g)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindInt64:
		// Digits and a minus sign: never quoted.
		return strconv.AppendInt(b, a.Value.Int64(), 10)
	case slog.KindTime:
		s = a.Value.Time().UTC().Format(time.RFC3339)
	default:
		s = a.Value.String()
	}
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// appendEscaped appends s with control characters and invalid UTF-8
// escaped, so that text from a message can neither forge a log line nor
// garble the terminal.
func appendEscaped(b []byte, s string) []byte {
	for len(s) > 0 {
		// Printable ASCII, the usual case, as it is.
		i := printableASCII(s)
		b = append(b, s[:i]...)
		s = s[i:]
		if len(s) == 0 {
			break
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b = appendHexEscape(b, s[0])
		case r < 0x20 || r == 0x7f:
			b = appendHexEscape(b, byte(r))
		default:
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}

// printableASCII returns the length of the run of printable ASCII bytes
// (0x20 to 0x7e) at the start of s, looking at eight bytes at a time.
func printableASCII(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8] // one bounds check, and the bytes load as one word
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// A byte below 0x20 (exact for a bound of at most 0x80), or one
		// of 0x7f or above (its high bit set, or set by adding one; a
		// carry out of 0xff comes from a byte found already).
		if (x-0x20*ones)&^x&highs != 0 || (x|(x+ones))&highs != 0 {
			break
		}
	}
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	return i
}

// plainASCII returns a length of a prefix of s, a multiple of eight bytes,
// in which every byte is printable ASCII other than a space, a quote and
// '=': what needsQuoting need not look at one by one.
func plainASCII(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) bool { return (v-ones)&^v&highs != 0 }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// A byte up to a space, or of 0x7f or above (as printableASCII),
		// or a quote, or '='.
		if (x-0x21*ones)&^x&highs != 0 || (x|(x+ones))&highs != 0 || hasZero(x^'"'*ones) || hasZero(x^'='*ones) {
			break
		}
	}
	return i
}

// appendHexEscape appends \xNN.
func appendHexEscape(b []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	ascii := true
	for i := plainASCII(s); i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		// ASCII: a space, a quote, '=' or a control character.
		if c <= ' ' || c == '"' || c == '=' || c == 0x7f {
			return true
		}
	}
	if ascii {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}
