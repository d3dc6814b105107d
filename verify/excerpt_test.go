package verify

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExcerpt(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", `"short"`},
		{"tab\tand \x00 and \xff", `"tab\tand \x00 and \xff"`},
		{strings.Repeat("a", 100), `"` + strings.Repeat("a", maxExcerpt) + `"…`},
		// Not cut in the middle of a character.
		{strings.Repeat("a", maxExcerpt-1) + "é and more", `"` + strings.Repeat("a", maxExcerpt-1) + `"…`},
	} {
		if got := Excerpt(tc.in); got != tc.want {
			t.Errorf("Excerpt(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if got := Excerpt(tc.in); !utf8.ValidString(got) {
			t.Errorf("Excerpt(%q) = %q: not UTF-8", tc.in, got)
		}
	}
}

// A malformed header line is quoted in the detail by a short escaped
// excerpt, never whole: whatever a file that is not a message (or a hostile
// sender) puts there does not travel to the report and the log.
func TestMalformedHeaderExcerpt(t *testing.T) {
	line := "SECRET-FIRST-LINE " + strings.Repeat("password=hunter2 ", 20) + "\x1b[31m"
	p, err := New(Options{Roots: x509.NewCertPool(), LookupTXT: func(context.Context, string) ([]string, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Verify(context.Background(), &Message{Raw: []byte(line + "\r\nFrom: a@example.com\r\n\r\nbody\r\n")})
	if res.Reason != ReasonMalformed {
		t.Fatalf("reason %s (%s), want %s", res.Reason, res.Detail, ReasonMalformed)
	}
	if strings.Count(res.Detail, "hunter2") > 1 || strings.Contains(res.Detail, "\x1b") || len(res.Detail) > 120 {
		t.Errorf("detail quotes too much of the line: %q", res.Detail)
	}
	if !strings.Contains(res.Detail, `"SECRET-FIRST-LINE`) {
		t.Errorf("detail %q does not show the start of the line", res.Detail)
	}
}
