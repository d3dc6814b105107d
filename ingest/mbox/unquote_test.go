package mbox

import (
	"bytes"
	"testing"
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
