package ingest

// White-box tests of the webhook: its decoder and helpers alone.

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// unquoteJSON agrees with encoding/json on every valid UTF-8 string.
func FuzzWebhookUnquote(f *testing.F) {
	for _, s := range []string{`""`, `"abc"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u2603"`, `"\ud83d\ude00"`,
		`"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`, `"\uD83D\uDE00"`, "\"caf\u00e9\"", `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		var want string
		if !bytes.HasPrefix(data, []byte(`"`)) || json.Unmarshal(data, &want) != nil || !utf8.Valid(data) {
			return
		}
		got, err := unquoteJSON(data)
		if err != nil {
			t.Fatalf("unquoteJSON(%q): %v", data, err)
		}
		if string(got) != want {
			t.Fatalf("unquoteJSON(%q) = %q, want %q", data, got, want)
		}
	})
}

func TestDetailBeyond(t *testing.T) {
	for _, tt := range []struct{ msg, detail, want string }{
		{"Malformed JSON in request body: x", "malformed JSON in request body: x", ""},
		{"Request body not received in time", "read tcp: i/o timeout", "read tcp: i/o timeout"},
		{"Not Found", "", ""},
		{"Invalid token", "invalid token: token header missing", "token header missing"},
		{"Method Not Allowed", "method PUT", "method PUT"},
	} {
		if got := detailBeyond(tt.msg, tt.detail); got != tt.want {
			t.Errorf("detailBeyond(%q, %q) = %q, want %q", tt.msg, tt.detail, got, tt.want)
		}
	}
}

// The budget must hold the decoding of the largest request.
func TestWebhookBudgetTooSmall(t *testing.T) {
	if _, err := NewWebhook(nil, WebhookOptions{MaxRequestBytes: 1 << 20, Budget: NewMemoryBudget(2<<20 - 1)}); err == nil {
		t.Error("a budget under twice MaxRequestBytes was accepted")
	}
	h, err := NewWebhook(nil, WebhookOptions{MaxRequestBytes: 100 << 20})
	if err != nil || h.opts.Budget.Size() != 200<<20 {
		t.Errorf("default budget for 100 MiB requests: %v", err)
	}
}
