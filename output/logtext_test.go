package output

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(&buf, slog.LevelInfo))
	log.With("id", "abc123").Info("DKIM passed", "domain", "example.com", "detail", "two words")
	log.Debug("hidden")
	log.Warn("no id", "n", 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `INFO  [abc123] DKIM passed domain=example.com detail="two words"`) {
		t.Errorf("line 1 = %q", lines[0])
	}
	if !strings.Contains(lines[1], "WARN  no id n=3") {
		t.Errorf("line 2 = %q", lines[1])
	}
}

func TestLogHandlerEscapesMessage(t *testing.T) {
	var buf bytes.Buffer
	slog.New(NewLogHandler(&buf, slog.LevelInfo)).Info("from=evil\n2026 INFO forged \x1b[31m\xff")
	got := buf.String()
	if strings.Count(got, "\n") != 1 || strings.Contains(got, "\x1b") || !strings.Contains(got, `evil\x0a2026`) || !strings.Contains(got, `\xff`) {
		t.Errorf("not escaped: %q", got)
	}
}
