package verify

import (
	"strings"
	"testing"
)

// A certificate address names From under ASCII case folding only: Unicode
// folding would let ſam@ (U+017F) stand for sam@ and Kelvin-sign-ate@
// (U+212A) for kate@ (issue 13, item 5).
func TestCertAddressMatches(t *testing.T) {
	for _, tc := range []struct {
		cert, from string
		want       bool
	}{
		{"sam@example.com", "sam@example.com", true},
		{"Sam@Example.COM", "sam@example.com", true},
		{"KATE@EXAMPLE.COM", "kate@example.com", true},
		{" sam@example.com\t", "sam@example.com", true},
		{"sam@example.co", "sam@example.com", false},
		{"", "sam@example.com", false},
		{"\u017Fam@example.com", "sam@example.com", false},
		{"\u212Aate@example.com", "kate@example.com", false},
		// Unicode white space is not trimmed: a non-ASCII byte anywhere
		// asks for identity.
		{"sam@example.com\u00a0", "sam@example.com", false},
		{"sam@exampl\u0435.com", "sam@example.com", false}, // Cyrillic е
		{"\u017Fam@example.com", "\u017Fam@example.com", true},
		{"\u017Fam@example.com", "\u017FAM@example.com", false},
	} {
		if got := certAddressMatches(tc.cert, tc.from); got != tc.want {
			t.Errorf("certAddressMatches(%q, %q) = %v, want %v", tc.cert, tc.from, got, tc.want)
		}
	}
	// The Unicode cases above are the ones strings.EqualFold gets wrong.
	for _, pair := range [][2]string{{"\u017Fam@example.com", "sam@example.com"}, {"\u212Aate@example.com", "kate@example.com"}} {
		if !strings.EqualFold(pair[0], pair[1]) {
			t.Errorf("strings.EqualFold(%q, %q) = false: the case tests nothing", pair[0], pair[1])
		}
	}
}
