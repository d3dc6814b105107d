package verify

import (
	"errors"
	"strings"
	"testing"
)

// Internationalised addresses: what is accepted, in which form, and the
// hostile spellings refused, each for its reason.
func TestNormalizeAddressIntl(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "": refused
		why      string // a word the error must hold
	}{
		// Accepted: the domain in A-labels, the local part as written.
		{in: "jörg@bücher.example", want: "jörg@xn--bcher-kva.example"},
		{in: "Jörg@Bücher.EXAMPLE", want: "Jörg@xn--bcher-kva.example"}, // no case folding of a UTF-8 local part
		{in: "jörg@xn--bcher-kva.example", want: "jörg@xn--bcher-kva.example"},
		{in: "jörg@XN--BCHER-KVA.EXAMPLE", want: "jörg@xn--bcher-kva.example"},
		{in: "Anna@Bücher.example", want: "anna@xn--bcher-kva.example"}, // ASCII local part: folded
		{in: "jörg.müller+news@example.com", want: "jörg.müller+news@example.com"},
		{in: "straße@example.de", want: "straße@example.de"},
		{in: "δοκιμή@παράδειγμα.δοκιμή", want: "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp"},
		{in: "李雷@例え.jp", want: "李雷@xn--r8jz45g.jp"},
		{in: "山田たろう@example.jp", want: "山田たろう@example.jp"}, // Han and Hiragana: Japanese
		{in: "阿Q正传@example.com", want: "阿Q正传@example.com"}, // Han and Latin
		{in: "박지성@example.kr", want: "박지성@example.kr"},
		{in: "иван@пример.рф", want: "иван@xn--e1afmkfd.xn--p1ai"},
		{in: "محمد@example.com", want: "محمد@example.com"},
		{in: "उदाहरण@example.in", want: "उदाहरण@example.in"}, // combining vowel signs
		{in: "anna@xn--bcher-kva.中国", want: "anna@xn--bcher-kva.xn--fiqs8s"},

		// Not UTF-8, or not what it seems.
		{in: "j\xf6rg@example.com", why: "UTF-8"}, // Latin-1
		{in: "\xc0\xafetc@example.com", why: "UTF-8"},
		{in: "jörg@b\xfccher.example", why: "UTF-8"},
		{in: "jo\u0308rg@example.com", why: "Normalization Form C"},
		{in: "\u212Aate@example.com", why: "Normalization Form C"},  // Kelvin sign, NFC: K
		{in: "\u017Fam@example.com", why: "U+017F"},                 // long s: a compatibility character
		{in: "\u2126mega@example.com", why: "Normalization Form C"}, // Ohm sign, NFC: Ω
		{in: "ｊｏｒｇ@example.com", why: "full-width"},
		{in: "ﬁle.ö@example.com", why: "RFC 8265"}, // the ligature ﬁ (a compatibility character)
		// Invisible, bidirectional, spaces, controls.
		{in: "jörg\u202egpj.exe@example.com", why: "bidirectional"},
		{in: "jö\u200drg@example.com", why: "bidirectional"}, // zero-width joiner (format)
		{in: "jö\u200brg@example.com", why: "bidirectional"}, // zero-width space
		{in: "jö\u00adrg@example.com", why: "bidirectional"}, // soft hyphen
		{in: "\ufeffjörg@example.com", why: "bidirectional"}, // BOM
		{in: "jö\u00a0rg@example.com", why: "space"},
		{in: "jörg\u3000@example.com", why: "space"},
		{in: "jö\u0085rg@example.com", why: "control"},
		{in: "jö\x00rg@example.com", why: "not allowed"},
		{in: "jö\nrg@example.com", why: "not allowed"},
		// Paths: separators, look-alikes of them, dot segments.
		{in: "jö/rg@example.com", why: "not allowed"},
		{in: `jö\rg@example.com`, why: "not allowed"},
		{in: "jö\u2215rg@example.com", why: "symbol"},      // division slash
		{in: "jö\u2044rg@example.com", why: "symbol"},      // fraction slash
		{in: "jö\uff0frg@example.com", why: "punctuation"}, // full-width solidus
		{in: "..ö@example.com", why: "dot"},
		{in: ".ö@example.com", why: "dot"},
		{in: "ö.@example.com", why: "dot"},
		{in: "ö..x@example.com", why: "dot"},
		{in: "ö\u2024x@example.com", why: "punctuation"}, // one dot leader
		{in: "jörg@bücher.example/..", why: "domain"},
		{in: "jörg@bücher.example.", why: "domain"},
		// Look-alikes: mixed scripts, symbols.
		{in: "p\u0430ypal@example.com", why: "scripts"},   // Cyrillic а
		{in: "\u03bfpen@example.com", why: "scripts"},     // Greek ο
		{in: "b\u0966b@example.in", why: "scripts"},       // Devanagari zero
		{in: "user\u0661@example.com", why: "Bidi Rule"},  // Arabic-Indic one
		{in: "ivan.иванов@example.com", why: "scripts"},   // Latin and Cyrillic words
		{in: "jörg\U0001F600@example.com", why: "symbol"}, // emoji
		{in: "ö\u2460@example.com", why: "number"},        // circled digit one
		{in: "ö\u00b7x@example.com", why: "punctuation"},  // middle dot
		{in: "a@ex\u0430mple.com", why: "scripts"},
		{in: "a@☃.com", why: "symbol"},
		{in: "a@ｅｘａｍｐｌｅ.com", why: "IDNA2008"},
		{in: "a@exam\u00adple.com", why: "U+00AD"},
		{in: "a@bücher\u3002example", why: "U+3002"},    // ideographic full stop
		{in: "a@BÜCHER.example", why: "IDNA2008"},       // an upper-case U-label is not one
		{in: "a@bu\u0308cher.example", why: "IDNA2008"}, // NFD
		{in: "a@bücher", why: "fully qualified"},
		{in: "a@bücher..example", why: "IDNA2008"},
		{in: "a@-bücher.example", why: "IDNA2008"},
		// Over-long.
		{in: strings.Repeat("ö", 33) + "@example.com", why: "octets"},
		{in: "ö@" + strings.Repeat("ü", 60) + ".example", why: "domain"},
		{in: strings.Repeat("ö", 32) + "@" + strings.Repeat(strings.Repeat("ü", 10)+".", 12) + "example", why: "octets"},
		{in: strings.Repeat("ö", 1000) + "@example.com", why: "octets"},
		{in: "ö@" + strings.Repeat("ü", 1000) + ".example", why: "longer"},
		{in: "jörg@@example.com", why: "@"},
		{in: "jörg", why: "@"},
	} {
		got, err := NormalizeAddress(tt.in)
		switch {
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.want != "":
			if again, err := NormalizeAddress(got); err != nil || again != got {
				t.Errorf("NormalizeAddress(%q) = %q, %v: not idempotent", got, again, err)
			}
		case err == nil:
			t.Errorf("NormalizeAddress(%q) = %q, want an error (%s)", tt.in, got, tt.why)
		case !errors.Is(err, ErrInvalidAddress) || !strings.Contains(err.Error(), tt.why):
			t.Errorf("NormalizeAddress(%q): %v; want ErrInvalidAddress saying %q", tt.in, err, tt.why)
		}
	}
}

// The SmtpUTF8Mailbox comparison of RFC 9598 §5: local parts octet for
// octet, domains as A-labels ignoring ASCII case.
func TestSmtpUTF8Matches(t *testing.T) {
	from := "jörg@xn--bcher-kva.example"
	for _, tt := range []struct {
		box  string
		want bool
	}{
		{"jörg@xn--bcher-kva.example", true},
		{"jörg@XN--BCHER-KVA.example", true},
		{"Jörg@xn--bcher-kva.example", false},
		{"jo\u0308rg@xn--bcher-kva.example", false}, // NFD: not normalised
		{"jörg@bücher.example", false},              // U-label (RFC 8398)
		{"jörg@xn--bcher-kva.example.", false},
		{" jörg@xn--bcher-kva.example", false},
		{"jörg", false},
		{"", false},
		{"\"jörg\"@xn--bcher-kva.example", false},
	} {
		if got := smtpUTF8Matches(tt.box, from); got != tt.want {
			t.Errorf("smtpUTF8Matches(%q, %q) = %v, want %v", tt.box, from, got, tt.want)
		}
	}
}
