package output

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The time stamps of a story, formatted with a stampCache, are
// appendTimestamp's: for times in the same second, the next, the one
// before, and far apart, in every year width.
func TestStampCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bases := []time.Time{
		time.Unix(1780308000, 0), time.Unix(0, 0), time.Unix(-1, 999999999),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-12345, 6, 7, 8, 9, 10, 0, time.FixedZone("Y", -7*3600)),
	}
	for _, base := range bases {
		var c stampCache
		tm := base
		for range 2000 {
			switch rng.IntN(4) {
			case 0:
				tm = tm.Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
			case 1:
				tm = tm.Add(-time.Duration(rng.IntN(1500)) * time.Millisecond)
			case 2:
				tm = tm.Add(time.Duration(rng.Int64N(1e15)) - 5e14)
			default:
				tm = base.Add(time.Duration(rng.IntN(3e9)))
			}
			want := appendTimestamp([]byte("x"), tm)
			if got := c.append([]byte("x"), tm); string(got) != string(want) {
				t.Fatalf("%v: got %q, want %q", tm, got, want)
			}
		}
	}
}

// printableASCII finds the run appendEscaped copies as it is: every byte
// from 0x20 to 0x7e, in words of eight bytes and the rest.
func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{"", "plain text of more than eight bytes", "tab\there", "del\x7fx", "\xff\xfe",
		"caf\u00e9 au lait", "0123456~\x7f", " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want strings.Builder
		refWriteEscaped(&want, s)
		if got := string(appendEscaped(nil, s)); got != want.String() {
			t.Fatalf("appendEscaped(%q) = %q, want %q", s, got, want.String())
		}
		n := printableASCII(s)
		for i := range n {
			if s[i] < 0x20 || s[i] >= 0x7f {
				t.Fatalf("printableASCII(%q) = %d, past byte %#x at %d", s, n, s[i], i)
			}
		}
		if n < len(s) && s[n] >= 0x20 && s[n] < 0x7f {
			t.Fatalf("printableASCII(%q) = %d, stops before the printable %q", s, n, s[n])
		}
	})
}

// plainASCII skips only bytes needsQuoting would pass over, and
// needsQuoting says what the original did.
func FuzzNeedsQuoting(f *testing.F) {
	for _, s := range []string{"", "example.com", "two words", "a=b", `say "hi"`, "0123456789abcdef=", "caf\u00e9", "\x7fdel", "nbsp\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := needsQuoting(s), refNeedsQuoting(s); got != want {
			t.Fatalf("needsQuoting(%q) = %v, want %v", s, got, want)
		}
		for i := range plainASCII(s) {
			if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '=' {
				t.Fatalf("plainASCII(%q) skips %q at %d", s, c, i)
			}
		}
	})
}
