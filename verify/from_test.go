package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means invalid
	}{
		{"bob@example.com", "bob@example.com"},
		{"Carol.Mixed@Example.COM", "carol.mixed@example.com"},
		{"first.last+tag@sub.example.org", "first.last+tag@sub.example.org"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		{"x_y-z=1!#$%&*?^`{|}~@example.com", "x_y-z=1!#$%&*?^`{|}~@example.com"},
		{"../../etc/passwd@example.com", ""},
		{"a/b@example.com", ""},
		{`a\b@example.com`, ""},
		{".leading@example.com", ""},
		{"trailing.@example.com", ""},
		{"dou..ble@example.com", ""},
		{"quoted local@example.com", ""},
		{"nul\x00@example.com", ""},
		{"tab\t@example.com", ""},
		{"ünï@example.com", "ünï@example.com"}, // RFC 6532; more in address_test.go
		{"u\u0308ni\u0308@example.com", ""},    // the same, not in NFC
		{"bob@localhost", ""},
		{"bob@example..com", ""},
		{"bob@-example.com", ""},
		{"bob@exa_mple.com", ""},
		{"bob@example.com/..", ""},
		{"bob@@example.com", ""},
		{"bob", ""},
		{"@example.com", ""},
		{strings.Repeat("a", 65) + "@example.com", ""},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 60) + ".com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeAddress(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizeAddress(%q) = %q, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrInvalidAddress) {
					t.Errorf("error %v does not wrap ErrInvalidAddress", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFromAddress(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		reason Reason
	}{
		{"plain", "From: bob@example.com\r\n", "bob@example.com", ReasonOK},
		{"display name", "From: Bob Example <Bob@Example.com>\r\n", "bob@example.com", ReasonOK},
		{"encoded name in unknown charset", "From: =?x-unknown?q?B=F6b?= <bob@example.com>\r\n", "bob@example.com", ReasonOK},
		{"no From", "To: bob@example.com\r\n", "", ReasonInvalidFrom},
		{"two From fields", "From: bob@example.com\r\nFrom: eve@example.com\r\n", "", ReasonMultipleFrom},
		{"two mailboxes", "From: bob@example.com, eve@example.com\r\n", "", ReasonInvalidFrom},
		{"quoted local part", "From: \"bob smith\"@example.com\r\n", "", ReasonInvalidFrom},
		{"quoted dot-atom", "From: <\"bob\"@example.com>\r\n", "", ReasonInvalidFrom},
		{"traversal", "From: <../x@example.com>\r\n", "", ReasonInvalidFrom},
		{"garbage", "From: <<<>>>\r\n", "", ReasonInvalidFrom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMessage([]byte(tt.header+"Subject: x\r\n\r\nbody\r\n"), 0, HeaderLimits{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := fromAddress(m)
			if r := ReasonOf(err); r != tt.reason {
				t.Fatalf("reason = %s (%v), want %s", r, err, tt.reason)
			}
			if got != tt.want {
				t.Errorf("address = %q, want %q", got, tt.want)
			}
		})
	}
}
