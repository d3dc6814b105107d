package mbox_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/certharvest/certharvest/ingest/mbox"
)

// Whatever a message holds, mboxrd gives it back exactly (a last line
// without a newline gets one), read as a file or as a stream.
func FuzzRoundTrip(f *testing.F) {
	for _, m := range tricky {
		f.Add([]byte(m), false)
	}
	f.Add([]byte(">>>>>>>From \n>>>>\n\r\n>From\r\n"), true)
	f.Fuzz(func(t *testing.T, msg []byte, crlf bool) {
		for _, format := range []mbox.Format{mbox.RD, mbox.CL2} {
			if format == mbox.CL2 && !cl2Header(msg) {
				continue
			}
			file := write(t, format, crlf, string(msg), "Subject: next\n\nx\n")
			for _, src := range []io.Reader{bytes.NewReader(file), iotest.HalfReader(bytes.NewReader(file))} {
				r := mbox.NewReader(src, mbox.ReaderOptions{Format: format})
				m, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if w := wantIn(format, crlf, string(msg)); string(m.Raw) != w {
					t.Fatalf("%s: got %q, want %q", format, m.Raw, w)
				}
			}
		}
	})
}

// cl2Header reports whether msg has a header mboxcl2 can carry a
// Content-Length in: one that ends in a blank line, without a "From " line
// (which would begin the next message).
func cl2Header(msg []byte) bool {
	for pos := 0; pos < len(msg); {
		i := bytes.IndexByte(msg[pos:], '\n')
		if i < 0 {
			return false
		}
		line := msg[pos : pos+i]
		if len(line) == 0 || string(line) == "\r" {
			return true
		}
		if bytes.HasPrefix(line, []byte("From ")) {
			return false
		}
		pos += i + 1
	}
	return false
}

// Any file: Next ends, and never holds more than MaxSize of a message.
func FuzzReader(f *testing.F) {
	f.Add([]byte("From a\nContent-Length: 3\n\nabc\nFrom b\n>From c\n"), 0)
	f.Add([]byte("From a\r\n\r\n>>From \r\nFrom "), 1)
	f.Add([]byte("From \nContent-Length: 99999999999\n\n"), 2)
	f.Fuzz(func(t *testing.T, file []byte, format int) {
		r := mbox.NewReader(bytes.NewReader(file), mbox.ReaderOptions{Format: mbox.Format(format & 3), MaxSize: 64})
		for range len(file) + 2 {
			m, err := r.Next()
			if errors.Is(err, io.EOF) || errors.Is(err, mbox.ErrNotMbox) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Raw) > 64 {
				t.Fatalf("held %d bytes", len(m.Raw))
			}
		}
		t.Fatal("Next did not end")
	})
}
