package mbox_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/certharvest/certharvest/ingest/mbox"
)

var when = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// tricky are messages whose lines an mbox must quote, or must not touch.
var tricky = []string{
	"From: a@example.org\nSubject: plain\n\nHello.\n",
	"From: a@example.org\n\nFrom the start of a line.\n>From quoted once.\n>>From quoted twice.\n>>>Fro not quite.\n>\n>>\nFrom\nFrom \n",
	"From: a@example.org\n\n>From at the end without a newline",
	"From: a@example.org\r\nSubject: crlf\r\n\r\nFrom me, in CRLF.\r\n>From you.\r\n\r\n\r\n",
	"From: a@example.org\n\nends in blank lines\n\n\n",
	"From: a@example.org\n\n",
	"Subject: only a header\n\n>\n>F\n>Fr\n>Fro\n>From\n>From \n",
}

// wantIn is what reading msg back from a file of format, with CRLF lines or
// not, gives: a last line without its newline gets one, as every mbox
// writer adds it (qmail's mbox(5)); mboxcl2's messages have a
// Content-Length field added at the end of their header.
func wantIn(format mbox.Format, crlf bool, msg string) string {
	if msg != "" && !strings.HasSuffix(msg, "\n") {
		if crlf {
			msg += "\r\n"
		} else {
			msg += "\n"
		}
	}
	if format == mbox.CL2 {
		// Before the header's blank line.
		blank, eol := -1, ""
		for pos := 0; pos < len(msg); {
			i := strings.IndexByte(msg[pos:], '\n')
			if i < 0 {
				break
			}
			if line := msg[pos : pos+i]; line == "" || line == "\r" {
				blank, eol = pos, line+"\n"
				break
			}
			pos += i + 1
		}
		body := msg[blank+len(eol):]
		msg = msg[:blank] + fmt.Sprintf("Content-Length: %d%s", len(body), eol) + msg[blank:]
	}
	return msg
}

func write(t testing.TB, format mbox.Format, crlf bool, msgs ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := mbox.NewWriter(&b, format)
	w.CRLF = crlf
	for i, m := range msgs {
		if err := w.Write(fmt.Sprintf("s%d@example.org", i), when, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// readAll reads every message of file through src (the file itself when
// src is nil).
func readAll(t testing.TB, file []byte, src io.Reader, opts mbox.ReaderOptions) []*mbox.Message {
	t.Helper()
	if src == nil {
		src = bytes.NewReader(file)
	}
	r := mbox.NewReader(src, opts)
	var out []*mbox.Message
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, m)
		if len(out) > 1000 {
			t.Fatal("no end")
		}
	}
}

// sources are ways of reading one file: as a file (an io.ReaderAt), and as
// streams cut in small reads, which cut every line and "From " somewhere.
func sources(file []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"file":     bytes.NewReader(file),
		"onebyte":  iotest.OneByteReader(bytes.NewReader(file)),
		"halves":   iotest.HalfReader(bytes.NewReader(file)),
		"dataerr":  iotest.DataErrReader(bytes.NewReader(file)),
		"stream13": &chunked{r: bytes.NewReader(file), n: 13},
	}
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// Each variant gives back exactly what was written, read as a file or as
// a stream, with its line endings.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		format mbox.Format
		crlf   bool
		msgs   []string
	}{
		{mbox.RD, false, tricky},
		{mbox.RD, true, tricky},
		{mbox.CL2, false, tricky},
		// mboxo gives back exactly the messages without a line that
		// already began ">From ".
		{mbox.O, false, []string{tricky[0], "From: a@example.org\n\nFrom here.\n>>From there.\n", tricky[5]}},
	} {
		file := write(t, tc.format, tc.crlf, tc.msgs...)
		for name, src := range sources(file) {
			t.Run(fmt.Sprintf("%s/crlf=%v/%s", tc.format, tc.crlf, name), func(t *testing.T) {
				got := readAll(t, file, src, mbox.ReaderOptions{Format: tc.format})
				if len(got) != len(tc.msgs) {
					t.Fatalf("%d messages, want %d", len(got), len(tc.msgs))
				}
				for i, m := range got {
					if m.Err != nil || m.TooLarge {
						t.Fatalf("message %d: %v (too large %v)", i+1, m.Err, m.TooLarge)
					}
					if w := wantIn(tc.format, tc.crlf, tc.msgs[i]); string(m.Raw) != w {
						t.Errorf("message %d:\n got %q\nwant %q", i+1, m.Raw, w)
					}
					if m.Index != i+1 || !bytes.HasPrefix(file[m.Offset:], []byte("From s"+fmt.Sprint(i)+"@")) {
						t.Errorf("message %d: index %d, offset %d", i+1, m.Index, m.Offset)
					}
				}
			})
		}
	}
}

// Auto reads mboxcl2 by its Content-Length when the first message's holds,
// and mboxrd otherwise; unquoting mboxrd read as mboxrd.
func TestAutoDetect(t *testing.T) {
	for _, format := range []mbox.Format{mbox.RD, mbox.CL2} {
		file := write(t, format, false, tricky...)
		for name, src := range sources(file) {
			r := mbox.NewReader(src, mbox.ReaderOptions{})
			var n int
			for {
				m, err := r.Next()
				if err != nil {
					break
				}
				if string(m.Raw) != wantIn(format, false, tricky[n]) {
					t.Errorf("%s/%s: message %d: %q", format, name, n+1, m.Raw)
				}
				n++
			}
			if n != len(tricky) || r.Format() != format {
				t.Errorf("%s/%s: %d messages, read as %s", format, name, n, r.Format())
			}
		}
	}
}

// mboxo's ambiguity: a message line that began ">From " comes back "From ",
// as a line "From " quoted does.
func TestMboxoAmbiguity(t *testing.T) {
	msg := "Subject: x\n\n>From me.\nFrom you.\n>>From them.\n"
	file := write(t, mbox.O, false, msg)
	if !strings.Contains(string(file), "\n>From me.\n>From you.\n>>From them.\n") {
		t.Fatalf("written %q", file)
	}
	got := readAll(t, file, nil, mbox.ReaderOptions{Format: mbox.O})
	if string(got[0].Raw) != "Subject: x\n\nFrom me.\nFrom you.\n>>From them.\n" {
		t.Errorf("mboxo read %q", got[0].Raw)
	}
	got = readAll(t, file, nil, mbox.ReaderOptions{Format: mbox.RD})
	if string(got[0].Raw) != "Subject: x\n\nFrom me.\nFrom you.\n>From them.\n" {
		t.Errorf("mboxo read as mboxrd: %q", got[0].Raw)
	}
}

// The mboxrd examples by hand: one '>' off every quoted line, and a "From "
// line anywhere ends a message, even without a blank line before it.
func TestMboxrdByHand(t *testing.T) {
	file := "From a Mon Jun  1 00:00:00 2026\nSubject: 1\n\n>From x\n>>From y\n>From\n> From z\nFrom b Mon Jun  1 00:00:00 2026\nSubject: 2\n\nbody\n\n\nFrom c\n"
	got := readAll(t, []byte(file), nil, mbox.ReaderOptions{Format: mbox.RD})
	wants := []string{"Subject: 1\n\nFrom x\n>From y\n>From\n> From z\n", "Subject: 2\n\nbody\n\n", ""}
	if len(got) != len(wants) {
		t.Fatalf("%d messages", len(got))
	}
	for i, m := range got {
		if string(m.Raw) != wants[i] || m.Raw == nil {
			t.Errorf("message %d: %q, want %q", i+1, m.Raw, wants[i])
		}
	}
}

// A file that does not begin with a "From " line is no mbox; an empty one
// has no messages.
func TestNotMbox(t *testing.T) {
	for name, file := range map[string]string{"header": "Subject: x\n\nFrom y\n", "blank": "\nFrom a b\n", "short": "Fro"} {
		if _, err := mbox.NewReader(strings.NewReader(file), mbox.ReaderOptions{}).Next(); !errors.Is(err, mbox.ErrNotMbox) {
			t.Errorf("%s: %v, want ErrNotMbox", name, err)
		}
	}
	if _, err := mbox.NewReader(strings.NewReader(""), mbox.ReaderOptions{}).Next(); err != io.EOF {
		t.Errorf("empty: %v, want io.EOF", err)
	}
}

// A message over MaxSize is not held: TooLarge, its size counted, its
// digest that of its bytes, unquoted; the messages around it are read.
func TestTooLarge(t *testing.T) {
	// Stored as ">>From" in mboxrd: the digest is of ">From".
	big := "Subject: big\n\n" + strings.Repeat(">From the quoted line.\n", 1000)
	for _, format := range []mbox.Format{mbox.RD, mbox.CL2} {
		file := write(t, format, false, tricky[0], big, tricky[1])
		unquoted := wantIn(format, false, big)
		for name, src := range sources(file) {
			digest := func(i int) hash.Hash {
				h := sha256.New()
				fmt.Fprintf(h, "%d:", i)
				return h
			}
			got := readAll(t, file, src, mbox.ReaderOptions{Format: format, MaxSize: 1000, Digest: digest})
			if len(got) != 3 || got[0].Raw == nil || string(got[2].Raw) != wantIn(format, false, tricky[1]) {
				t.Fatalf("%s/%s: %d messages", format, name, len(got))
			}
			m := got[1]
			sum := sha256.Sum256([]byte("2:" + unquoted))
			if !m.TooLarge || m.Raw != nil || m.Size != int64(len(unquoted)) || !bytes.Equal(m.Digest, sum[:]) {
				t.Errorf("%s/%s: too large %v, %d bytes held, size %d (want %d), digest ok %v",
					format, name, m.TooLarge, len(m.Raw), m.Size, len(unquoted), bytes.Equal(m.Digest, sum[:]))
			}
		}
	}
}

// A message exactly at MaxSize once unquoted is held, though its stored
// form is larger.
func TestMaxSizeUnquoted(t *testing.T) {
	msg := "Subject: x\n\n" + strings.Repeat("From \n", 50)
	file := write(t, mbox.RD, false, msg)
	got := readAll(t, file, nil, mbox.ReaderOptions{Format: mbox.RD, MaxSize: int64(len(msg))})
	if got[0].TooLarge || string(got[0].Raw) != msg {
		t.Errorf("at the limit: too large %v", got[0].TooLarge)
	}
	got = readAll(t, file, nil, mbox.ReaderOptions{Format: mbox.RD, MaxSize: int64(len(msg)) - 1})
	if !got[0].TooLarge {
		t.Errorf("one byte over: not too large")
	}
}

// Past MaxSkip bytes of one message (a decompression bomb), the reading
// stops: the message is too large and one last Message says the rest is
// not read.
func TestMaxSkip(t *testing.T) {
	file := write(t, mbox.RD, false, tricky[0], "Subject: zeros\n\n"+strings.Repeat("0", 1<<20), tricky[1])
	for name, src := range sources(file) {
		if name == "onebyte" {
			continue // a megabyte a byte at a time: slow, and no different
		}
		got := readAll(t, file, src, mbox.ReaderOptions{Format: mbox.RD, MaxSize: 1000, MaxSkip: 64 << 10})
		if len(got) != 3 || !got[1].TooLarge || !errors.Is(got[2].Err, mbox.ErrStopped) || got[2].Index != 3 {
			t.Fatalf("%s: %d messages: %+v", name, len(got), got)
		}
		if got[1].Size > 64<<10+bufSizeForTest {
			t.Errorf("%s: read %d bytes of the bomb", name, got[1].Size)
		}
	}
}

// bufSizeForTest bounds what is read past MaxSkip: the rest of the window.
const bufSizeForTest = 1 << 20

// A stream that fails mid-file: the message it cut is an error, the last.
func TestStreamError(t *testing.T) {
	file := write(t, mbox.RD, false, tricky...)
	cut := bytes.Index(file, []byte("CRLF"))
	broken := errors.New("disk on fire")
	src := io.MultiReader(bytes.NewReader(file[:cut]), iotest.ErrReader(broken))
	got := readAll(t, file, src, mbox.ReaderOptions{})
	last := got[len(got)-1]
	if len(got) != 4 || !errors.Is(last.Err, broken) || last.Index != 4 || !strings.Contains(last.Err.Error(), "message 4 at byte") {
		t.Fatalf("%d messages, last %+v", len(got), last)
	}
	for _, m := range got[:3] {
		if m.Err != nil {
			t.Errorf("message %d: %v", m.Index, m.Err)
		}
	}
}

// A Content-Length that lies, in a file read as mboxcl2: that message is
// an error that says so, and the messages after it are read, found at the
// next "From " line after a blank line.
func TestContentLengthLies(t *testing.T) {
	msgs := []string{tricky[0], "Subject: liar\n\nline one\nFrom here, unquoted in mboxcl2.\nline three\n", tricky[5]}
	file := string(write(t, mbox.CL2, false, msgs...))
	right := "Content-Length: 52\n"
	if !strings.Contains(file, right) {
		t.Fatalf("no %q in %q", right, file)
	}
	for name, cl := range map[string]string{
		"short":   "5",    // lands mid-line
		"long":    "80",   // lands in the next message
		"pasteof": "4000", // past the end of the file
		"huge":    "1" + strings.Repeat("0", 12),
	} {
		lied := strings.Replace(file, right, "Content-Length: "+cl+"\n", 1)
		for src, r := range sources([]byte(lied)) {
			got := readAll(t, []byte(lied), r, mbox.ReaderOptions{Format: mbox.CL2})
			if name == "huge" && src != "file" {
				// Over MaxSize, read through to be checked, in a
				// stream that cannot be gone back in.
				if len(got) != 2 || got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "does not end it at a \"From \" line or the end of the file; the rest of the file is not read") {
					t.Errorf("%s/%s: %d messages: %+v", name, src, len(got), got)
				}
				continue
			}
			if len(got) != 3 {
				t.Errorf("%s/%s: %d messages: %+v", name, src, len(got), got)
				continue
			}
			liar := got[1]
			if liar.Err == nil || !strings.Contains(liar.Err.Error(), "message 2 at byte ") ||
				!strings.Contains(liar.Err.Error(), "its Content-Length, "+cl+", does not end it") || liar.Raw != nil {
				t.Errorf("%s/%s: message 2: %v", name, src, liar.Err)
			}
			if string(got[0].Raw) != wantIn(mbox.CL2, false, msgs[0]) || string(got[2].Raw) != wantIn(mbox.CL2, false, msgs[2]) {
				t.Errorf("%s/%s: the other messages: %q, %q", name, src, got[0].Raw, got[2].Raw)
			}
		}
	}
	// A Content-Length that ends the message at a "From " line cannot be
	// told from the truth, and one that is not a number is none: the
	// message ends at the next "From " line. Either way the body's
	// unquoted "From " line begins a message, and nothing is an error.
	for name, cl := range map[string]string{"at-from": "9", "not-a-number": "52 bytes"} {
		lied := strings.Replace(file, right, "Content-Length: "+cl+"\n", 1)
		for src, r := range sources([]byte(lied)) {
			got := readAll(t, []byte(lied), r, mbox.ReaderOptions{Format: mbox.CL2})
			if len(got) != 4 || got[1].Err != nil || string(got[2].Raw) != "line three\n" {
				t.Errorf("%s/%s: %d messages: %+v", name, src, len(got), got)
			}
		}
	}
}

// A Content-Length claiming more than MaxSize, in a stream: read through,
// then found to lie: an error, and the rest is not read (it cannot be gone
// back to).
func TestContentLengthLiesTooLargeStream(t *testing.T) {
	body := strings.Repeat("x", 5000) + "\n"
	msgs := []string{tricky[0], "Subject: big\n\n" + body, tricky[5]}
	file := string(write(t, mbox.CL2, false, msgs...))
	right := fmt.Sprintf("Content-Length: %d\n", len(body))
	lied := strings.Replace(file, right, "Content-Length: 5010\n", 1)
	got := readAll(t, []byte(lied), &chunked{r: strings.NewReader(lied), n: 4096}, mbox.ReaderOptions{Format: mbox.CL2, MaxSize: 1000})
	if len(got) != 2 || got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "the rest of the file is not read") {
		t.Fatalf("%d messages: %+v", len(got), got)
	}
	// As a file, the landing is read where it is: the rest is read.
	got = readAll(t, []byte(lied), nil, mbox.ReaderOptions{Format: mbox.CL2, MaxSize: 1000})
	if len(got) != 3 || got[1].Err == nil || got[2].Err != nil {
		t.Fatalf("as a file: %d messages: %+v", len(got), got)
	}
	// Told the truth, the message is too large and the rest is read.
	got = readAll(t, []byte(file), &chunked{r: strings.NewReader(file), n: 4096}, mbox.ReaderOptions{Format: mbox.CL2, MaxSize: 1000})
	if len(got) != 3 || !got[1].TooLarge || got[1].Err != nil || got[2].Raw == nil {
		t.Fatalf("truthful: %d messages: %+v", len(got), got)
	}
}
