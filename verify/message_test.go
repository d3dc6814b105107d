package verify

import (
	"bytes"
	"strings"
	"testing"
)

func TestCanonicalCRLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"\n", "\r\n"},
		{"a\r\nb\nc", "a\r\nb\r\nc"},
		{"a\rb\n", "a\rb\r\n"},
	}
	for _, tt := range tests {
		if got := canonicalCRLF([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("canonicalCRLF(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Already canonical input is returned as is, not copied.
	in := []byte("a\r\nb\r\n")
	if got := canonicalCRLF(in); &got[0] != &in[0] {
		t.Error("canonical input was copied")
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		max    int64
		reason Reason
		body   string
	}{
		{"crlf", "From: a@example.com\r\n\r\nbody\r\n", 0, ReasonOK, "body\r\n"},
		{"lf", "From: a@example.com\n\nbody\n", 0, ReasonOK, "body\r\n"},
		{"header only", "From: a@example.com\r\n", 0, ReasonOK, ""},
		{"empty", "", 0, ReasonMalformed, ""},
		{"blank", " \r\n\r\n", 0, ReasonMalformed, ""},
		{"binary", "\x00\x01\x02\xff\xfe garbage", 0, ReasonMalformed, ""},
		{"text without header", "hello world\n", 0, ReasonMalformed, ""},
		{"continuation first", " folded: x\r\n\r\n", 0, ReasonMalformed, ""},
		{"too large", "From: a@example.com\r\n\r\n0123456789", 20, ReasonTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMessage([]byte(tt.raw), tt.max, HeaderLimits{})
			if r := ReasonOf(err); r != tt.reason {
				t.Fatalf("reason = %s (%v), want %s", r, err, tt.reason)
			}
			if err == nil && !bytes.Equal(m.body, []byte(tt.body)) {
				t.Errorf("body = %q, want %q", m.body, tt.body)
			}
		})
	}
}

// An mbox file given as one message is malformed, and the detail says
// what it looks like; a header that merely begins with "From:" is not.
func TestParseMessageMbox(t *testing.T) {
	mbox := "From alice@example.com Mon Jun  1 00:00:00 2026\nFrom: alice@example.com\n\nhi\n\nFrom bob@example.com Mon Jun  1 00:00:01 2026\nFrom: bob@example.com\n\nho\n"
	_, err := parseMessage([]byte(mbox), 0, HeaderLimits{})
	if ReasonOf(err) != ReasonMalformed || !strings.Contains(err.Error(), "looks like an mbox file") {
		t.Errorf("mbox: %v, want message_malformed saying it looks like an mbox", err)
	}
	_, err = parseMessage([]byte("Fromage: brie\n\nbody\n"), 0, HeaderLimits{})
	if err != nil {
		t.Errorf("a field named Fromage: %v", err)
	}
	_, err = parseMessage([]byte("Frobnicate this\n"), 0, HeaderLimits{})
	if err == nil || strings.Contains(err.Error(), "mbox") {
		t.Errorf("text without header: %v, want malformed without the mbox hint", err)
	}
}
