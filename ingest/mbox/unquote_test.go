package mbox

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// The in-place unquoting of a whole message and the streaming one, over
// chunks cut anywhere, agree, in both quoting variants.
func FuzzUnquote(f *testing.F) {
	f.Add([]byte(">From a\n>>From b\n>>>Fro\n>\nFrom c\n"), uint8(3))
	f.Add([]byte(">>From \r\n>From\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		for _, format := range []Format{RD, O} {
			var streamed []byte
			u := unquoter{format: format}
			out := func(p []byte) { streamed = append(streamed, p...) }
			n := int(cut%16) + 1
			for rest := b; len(rest) > 0; {
				k := min(n, len(rest))
				u.write(rest[:k], out)
				rest = rest[k:]
			}
			u.flush(out)
			whole := unquoteInPlace(bytes.Clone(b), format)
			if !bytes.Equal(whole, streamed) && !(len(whole) == 0 && len(streamed) == 0) {
				t.Fatalf("%s: in place %q, streamed %q", format, whole, streamed)
			}
		}
	})
}

// The window grown to check a large message's Content-Length ahead, in a
// stream, shrinks back once past it: memory stays flat after it.
func TestWindowShrinksBack(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b, CL2)
	big := append([]byte("Subject: big\n\n"), bytes.Repeat([]byte("x\n"), 3<<19)...)
	w.Write("", time.Time{}, big)
	for range 3 {
		w.Write("", time.Time{}, []byte("Subject: small\n\nx\n"))
	}
	r := NewReader(struct{ io.Reader }{&b}, ReaderOptions{Format: CL2, MaxSize: 4 << 20})
	var grown int
	for {
		m, err := r.Next()
		if err != nil {
			break
		}
		if m.Err != nil || m.TooLarge {
			t.Fatalf("message %d: %v", m.Index, m.Err)
		}
		grown = max(grown, len(r.buf))
	}
	if grown <= bufSize || len(r.buf) != bufSize {
		t.Errorf("window grew to %d, ended at %d; want more than %d, then %d", grown, len(r.buf), bufSize, bufSize)
	}
}
