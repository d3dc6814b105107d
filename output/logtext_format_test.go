package output

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The log format is a contract with the people who read it: the faster
// LogHandler must write exactly what the original wrote.
func TestLogHandlerFormatUnchanged(t *testing.T) {
	texts := []string{"", "plain", "two words", "a=b", `say "hi"`, "tab\there", "nl\nforged", "cr\r", "\x00nul", "del\x7f",
		"esc \x1b[31mred", "bad \xff\xfe utf8", "truncated \xe2\x82", "caf\u00e9", "nbsp\u00a0x", "nel\u0085x", "ls\u2028x",
		"zero\u200bwidth", "emoji \U0001F600", "| accepted: certificate stored for a@example.com", strings.Repeat("long ", 100),
		"\u00e9=", "\u00e9\"", "\u00e9 ", "ok\u00e9"}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2, slog.LevelError + 4}
	when := time.Date(2026, 6, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	for i, msg := range texts {
		for j, level := range levels {
			r := slog.NewRecord(when, level, msg, 0)
			r.AddAttrs(
				slog.String("k", texts[(i+j)%len(texts)]),
				slog.Int("n", i-j),
				slog.Time("at", when),
				slog.Duration("d", time.Duration(i)*time.Millisecond),
				slog.Bool("b", j%2 == 0),
				slog.Any("err", fmt.Errorf("boom %d", i)),
				slog.Group("g", slog.String("x", texts[j%len(texts)]), slog.Int("y", j)),
				slog.Attr{},
			)
			if i%3 == 0 {
				r.AddAttrs(slog.String("id", "rec-id"))
			}
			var handlers []*LogHandler
			base := NewLogHandler(io.Discard, slog.LevelDebug)
			handlers = append(handlers, base,
				base.WithAttrs([]slog.Attr{slog.String("id", "abc123"), slog.String("pre", texts[i])}).(*LogHandler),
				base.WithGroup("grp").(*LogHandler),
				base.WithGroup("grp").WithAttrs([]slog.Attr{slog.String("id", "x"), slog.Int("z", 1)}).(*LogHandler))
			if i%2 == 1 {
				r.Time = time.Time{}
			}
			for k, h := range handlers {
				var want, got, block bytes.Buffer
				if err := h.referenceHandle(&want, r); err != nil {
					t.Fatal(err)
				}
				h.w = &got
				if err := h.Handle(context.Background(), r); err != nil {
					t.Fatal(err)
				}
				h.w = &block
				if err := h.HandleBlock(context.Background(), []slog.Record{r, r}); err != nil {
					t.Fatal(err)
				}
				// The story of a message: the id as WithAttrs gives it, the
				// second record's message prefixed.
				var story, wantStory bytes.Buffer
				idh := h.WithAttrs([]slog.Attr{slog.String("id", "story-id")}).(*LogHandler)
				if err := idh.referenceHandle(&wantStory, r); err != nil {
					t.Fatal(err)
				}
				r2 := r.Clone()
				r2.Message = "| " + r2.Message
				if err := idh.referenceHandle(&wantStory, r2); err != nil {
					t.Fatal(err)
				}
				h.w = &story
				if err := h.HandleStory(context.Background(), "story-id", "| ", []slog.Record{r, r}); err != nil {
					t.Fatal(err)
				}
				if r.Time.IsZero() {
					// The line is stamped with the current time: compare the rest.
					want, got = *bytes.NewBufferString(want.String()[24:]), *bytes.NewBufferString(got.String()[24:])
					block = *bytes.NewBufferString(strings.Repeat(want.String(), 2))
					lines := strings.SplitAfter(story.String(), "\n")
					story = *bytes.NewBufferString(lines[0][24:] + lines[1][24:])
					lines = strings.SplitAfter(wantStory.String(), "\n")
					wantStory = *bytes.NewBufferString(lines[0][24:] + lines[1][24:])
				}
				if story.String() != wantStory.String() {
					t.Errorf("text %d level %d handler %d: HandleStory wrote\n%q\nwant\n%q", i, j, k, story.String(), wantStory.String())
				}
				if got.String() != want.String() {
					t.Errorf("text %d level %d handler %d:\n got %q\nwant %q", i, j, k, got.String(), want.String())
				}
				if block.String() != strings.Repeat(want.String(), 2) {
					t.Errorf("text %d level %d handler %d: HandleBlock wrote %q", i, j, k, block.String())
				}
			}
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 999999999), time.Unix(1780308000, 1e6-1), time.Unix(1780308000, 1e6),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(999, 2, 3, 4, 5, 6, 7e6, time.FixedZone("Y", -7*3600)),
	}
	for i := range 10000 {
		times = append(times, time.Unix(int64(i)*987654321%(1<<36)-(1<<34), int64(i)*7919*1e5%1e9))
	}
	for _, tm := range times {
		want := tm.UTC().Format(timeLayout)
		if got := string(appendTimestamp([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("%v: got %q, want %q", tm, got, "x"+want)
		}
	}
}

// referenceHandle is LogHandler.Handle as it was before it was made
// faster: the output must not change.
func (h *LogHandler) referenceHandle(w io.Writer, r slog.Record) error {
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
	refWriteEscaped(&b, r.Message)
	for _, a := range attrs {
		refWriteAttr(&b, "", a)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func refWriteAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			refWriteAttr(b, prefix+a.Key+".", g)
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
	if refNeedsQuoting(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

// writeEscaped writes s with control characters and invalid UTF-8 escaped,
// so that text from a message can neither forge a log line nor garble the
// terminal.
func refWriteEscaped(b *strings.Builder, s string) {
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

func refNeedsQuoting(s string) bool {
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
