package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestCheckHeader(t *testing.T) {
	small := HeaderLimits{MaxBytes: 64, MaxFields: 3}
	tests := []struct {
		name   string
		msg    string
		limits HeaderLimits
		fields int // counted before the end or the cap
		err    string
	}{
		{"within", "A: 1\r\nB: 2\r\nC: 3\r\n\r\nD: not a field\r\nE: x\r\n", small, 3, ""},
		{"bare LF", "A: 1\nB: 2\nC: 3\n\nD: body\nE: body\n", small, 3, ""},
		{"continuation lines are one field", "A: 1\r\n 2\r\n\t3\r\nB: 4\r\n\r\n", small, 2, ""},
		{"one field too many", "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small, 4, "more than 3 fields"},
		{"too many bytes", "A: " + strings.Repeat("x", 80) + "\r\n\r\n", small, 1, "more than 64 bytes"},
		{"no end of header, too long", strings.Repeat("y", 65), small, 1, "more than 64 bytes"},
		{"a lone CR at a line's start", "A: 1\r\n\rB\r\n\r\n", small, 1, ""},
		{"empty header", "\r\nA: body\r\n", small, 0, ""},
		{"defaults", strings.Repeat("X: v\r\n", DefaultMaxHeaderFields) + "\r\n", HeaderLimits{}, DefaultMaxHeaderFields, ""},
		{"defaults, one more", strings.Repeat("X: v\r\n", DefaultMaxHeaderFields+1) + "\r\n", HeaderLimits{}, DefaultMaxHeaderFields + 1, "more than 10000 fields"},
		{"defaults, bytes", "X: " + strings.Repeat("v", DefaultMaxHeaderBytes) + "\r\n\r\n", HeaderLimits{}, 1, "more than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHeader([]byte(tt.msg), tt.limits)
			checkHeaderErr(t, err, tt.err)
			// Fed a byte, then a few bytes, at a time: the same verdict,
			// whatever the chunks.
			for _, step := range []int{1, 2, 3, 7} {
				c := NewHeaderCounter(tt.limits)
				var werr error
				for i := 0; i < len(tt.msg); i += step {
					if _, werr = c.Write([]byte(tt.msg[i:min(i+step, len(tt.msg))])); werr != nil {
						break
					}
				}
				checkHeaderErr(t, werr, tt.err)
				if c.Fields() != tt.fields {
					t.Errorf("step %d: %d fields, want %d", step, c.Fields(), tt.fields)
				}
				if tt.err == "" && !strings.HasPrefix(tt.name, "no end") && !c.Done() {
					t.Errorf("step %d: header not done", step)
				}
			}
		})
	}
}

func checkHeaderErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("err = %v, want nil", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("err = %v, want one containing %q", err, want)
	case want != "" && !errors.Is(err, ReasonMalformed):
		t.Errorf("err = %v, want a %s", err, ReasonMalformed)
	}
}

// The check reads no further than the cap: a message of 1.5 million tiny
// fields is refused after the 10,001st.
func BenchmarkCheckHeader(b *testing.B) {
	msg := []byte("From: a@example.com\r\nTo: b@example.org\r\nSubject: hello\r\nDate: Mon, 1 Jun 2026 00:00:00 +0000\r\n" +
		"Message-ID: <x@example.com>\r\nMIME-Version: 1.0\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s;\r\n h=from:to:subject:date;\r\n bh=AAAA;\r\n b=" + strings.Repeat("A", 344) + "\r\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=b\r\n\r\n" + strings.Repeat("body\r\n", 800))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := CheckHeader(msg, HeaderLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// headerReference counts a header section the obvious way, line by line:
// the reference FuzzHeaderCounter holds HeaderCounter to.
func headerReference(msg []byte, l HeaderLimits) (fields int, bytesOver, fieldsOver bool) {
	l = l.withDefaults()
	var n int64
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if string(line) == "\n" || string(line) == "\r\n" {
			n += int64(len(line))
			return fields, n > l.MaxBytes, false
		}
		// A line starting with a lone CR is no field (see HeaderCounter).
		if line[0] != ' ' && line[0] != '\t' && line[0] != '\r' {
			fields++
			if fields > l.MaxFields {
				return fields, false, true
			}
		}
		n += int64(len(line))
		if n > l.MaxBytes {
			return fields, true, false
		}
	}
	return fields, false, false
}

// HeaderCounter, fed in chunks of any size, agrees with the line-by-line
// reference on the fields counted and on which cap, if any, is exceeded.
func FuzzHeaderCounter(f *testing.F) {
	f.Add([]byte("A: 1\r\nB: 2\r\n 3\r\n\r\nbody"), uint8(3), uint16(64), uint8(5))
	f.Add([]byte("A: 1\nB: 2\n\nC: 3\n"), uint8(1), uint16(10), uint8(1))
	f.Add([]byte("\r\r\n\r\n"), uint8(2), uint16(8), uint8(2))
	f.Fuzz(func(t *testing.T, msg []byte, maxFields uint8, maxBytes uint16, step uint8) {
		l := HeaderLimits{MaxBytes: int64(maxBytes), MaxFields: int(maxFields)}
		c := NewHeaderCounter(l)
		s := max(int(step), 1)
		var err error
		for i := 0; i < len(msg) && err == nil; i += s {
			_, err = c.Write(msg[i:min(i+s, len(msg))])
		}
		if whole := CheckHeader(msg, l); (whole == nil) != (err == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", whole, s, err)
		}
		fields, bytesOver, fieldsOver := headerReference(msg, l)
		switch {
		case fieldsOver != (err != nil && strings.Contains(err.Error(), "fields")):
			t.Fatalf("reference fields over: %v, counter: %v", fieldsOver, err)
		case bytesOver != (err != nil && strings.Contains(err.Error(), "bytes")):
			t.Fatalf("reference bytes over: %v, counter: %v", bytesOver, err)
		case err == nil && fields != c.Fields():
			t.Fatalf("reference %d fields, counter %d", fields, c.Fields())
		}
	})
}

// A Message-ID goes into the report: a sender cannot make it longer than a
// header line may be.
func TestMessageIDBounded(t *testing.T) {
	long := strings.Repeat("x", 300_000)
	p, err := New(Options{Roots: x509.NewCertPool(), LookupTXT: func(context.Context, string) ([]string, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Verify(context.Background(), &Message{Raw: []byte("From: a@example.com\r\nMessage-ID: <" + long + "@example.com>\r\n\r\nbody\r\n")})
	if len(res.MessageID) > maxMessageIDLen+len("…") || !strings.HasPrefix(res.MessageID, "<xxx") {
		t.Errorf("Message-ID of %d bytes in the result: %.40q", len(res.MessageID), res.MessageID)
	}
}
