package mbox_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/ingest/mbox"
)

// BenchmarkReader measures reading an mbox of 45 KB messages with quoted
// lines, per byte (the walk's own work for each message of an mbox).
//
//	go test -run '^$' -bench Reader -benchmem ./ingest/mbox/
func BenchmarkReader(b *testing.B) {
	var body strings.Builder
	for i := 0; body.Len() < 45000; i++ {
		if i%40 == 39 {
			fmt.Fprintf(&body, "From the archive, line %d: a line an mbox must quote.\r\n", i)
		} else {
			fmt.Fprintf(&body, "Line %d of the padding, to make the message the size of real mail.\r\n", i)
		}
	}
	msg := []byte("From: a@example.org\r\nSubject: bench\r\n\r\n" + body.String())
	var file bytes.Buffer
	w := mbox.NewWriter(&file, mbox.RD)
	for range 500 {
		if err := w.Write("a@example.org", when, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(file.Len()))
	for b.Loop() {
		r := mbox.NewReader(bytes.NewReader(file.Bytes()), mbox.ReaderOptions{})
		n := 0
		for {
			m, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || len(m.Raw) != len(msg) {
				b.Fatal(err, len(m.Raw))
			}
			n++
		}
		if n != 500 {
			b.Fatal(n)
		}
	}
}
