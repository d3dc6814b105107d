package verify

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// referenceReadPart is how readPart read a part before it took the part's
// bytes from the message where it could: a copy of the header as go-message
// reproduces it and of the body.
func referenceReadPart(p *textproto.Part) (*rawPart, error) {
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, p.Header); err != nil {
		return nil, err
	}
	headerLen := buf.Len()
	if _, err := io.Copy(&buf, p); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return &rawPart{Header: p.Header, raw: raw, body: raw[headerLen:]}, nil
}

// partsOf reads the first two parts of a multipart body the way
// readDetached does, with readPart, or with referenceReadPart when ref is
// set, and describes what it read.
func partsOf(boundary string, body []byte, ref bool) string {
	var out bytes.Buffer
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	at := partStart(body, boundary, 0)
	for range 3 {
		p, err := mr.NextPart()
		if err != nil {
			fmt.Fprintf(&out, "next: %v\n", err)
			break
		}
		var part *rawPart
		if ref {
			part, err = referenceReadPart(p)
		} else {
			part, err = readPart(p, body, at)
		}
		if err != nil {
			fmt.Fprintf(&out, "read: %v\n", err)
			break
		}
		fmt.Fprintf(&out, "part %q body %q\n", part.raw, part.body)
		if at >= 0 {
			at = partStart(body, boundary, at+len(part.raw))
		}
	}
	return out.String()
}

func TestReadPartUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const boundary = "b1"
	lines := []string{
		"--b1\r\n", "--b1 \r\n", "--b1--\r\n", "--b1\n", "\r\n", "\n", "\r",
		"Content-Type: text/plain\r\n", "Content-Type:  text/plain \r\n", " folded\r\n", "\tfolded\r\n",
		": empty key\r\n", "No colon\r\n", "X-A: 1\r\r\n", "X-B:\r\n", "X-C : spaced key\r\n",
		"body line\r\n", "--b1x\r\n", "---b1\r\n", "MIIB+/==\r\n", "a\x00b\r\n",
	}
	for i := range 20000 {
		var body []byte
		if i%2 == 0 { // mostly well formed
			body = []byte("preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--b1--\r\n")
			for range 1 + rng.IntN(3) {
				pos := rng.IntN(len(body) + 1)
				ins := lines[rng.IntN(len(lines))]
				body = append(body[:pos:pos], append([]byte(ins), body[pos:]...)...)
			}
		} else {
			for range rng.IntN(12) {
				body = append(body, lines[rng.IntN(len(lines))]...)
			}
		}
		want, got := partsOf(boundary, body, true), partsOf(boundary, body, false)
		if got != want {
			t.Fatalf("body %q:\n got %s\nwant %s", body, got, want)
		}
	}
}

// FuzzReadPart checks that readPart reads every part as go-message
// reproduces it, whether or not it could take the bytes from the message.
func FuzzReadPart(f *testing.F) {
	sample := loadFuzzSample(f)
	for _, raw := range sample.messages {
		m, err := parseMessage(raw, DefaultMaxSize, HeaderLimits{})
		if err != nil {
			continue
		}
		if _, params, err := parseContentType(m.header); err == nil && params["boundary"] != "" {
			f.Add(params["boundary"], m.body)
		}
	}
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		if boundary == "" {
			return
		}
		if want, got := partsOf(boundary, body, true), partsOf(boundary, body, false); got != want {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}
