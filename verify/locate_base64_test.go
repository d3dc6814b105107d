package verify

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// referenceBase64 is how decodeTransfer decoded base64 before its one-pass
// fast path: the fast path must give the same bytes, and leave the same
// errors.
func referenceBase64(body []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, body)
	out, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean)))
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return out, nil
}

func TestDecodeBase64Unchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	noise := []string{"\r\n", "\n", "\r", " ", "\t", "=", "==", "-", "_", "\x00", "\xff", "é", "A", "AB", "ABC"}
	for i := range 20000 {
		data := make([]byte, rng.IntN(300))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		enc := []byte(base64.StdEncoding.EncodeToString(data))
		var body []byte
		lineLen := 1 + rng.IntN(80)
		for len(enc) > 0 {
			n := min(lineLen, len(enc))
			body = append(body, enc[:n]...)
			enc = enc[n:]
			body = append(body, []string{"\r\n", "\n", " \r\n", "\t\n", "\r\n\r\n"}[rng.IntN(5)]...)
		}
		switch i % 4 {
		case 1: // one random change
			if len(body) > 0 {
				pos := rng.IntN(len(body))
				body = append(body[:pos:pos], append([]byte(noise[rng.IntN(len(noise))]), body[pos+1:]...)...)
			}
		case 2: // something appended
			body = append(body, noise[rng.IntN(len(noise))]...)
		case 3: // a random alphabet character replaced, or two padded blocks
			if len(body) > 0 && rng.IntN(2) == 0 {
				body[rng.IntN(len(body))] = alphabet[rng.IntN(len(alphabet))]
			} else {
				body = append(body, []byte(base64.StdEncoding.EncodeToString([]byte("xy")))...)
			}
		}
		want, wantErr := referenceBase64(body)
		got, gotErr := decodeTransfer(base64Header(), body)
		if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || !bytes.Equal(want, got) {
			t.Fatalf("body %q:\n got %x, %v\nwant %x, %v", body, got, gotErr, want, wantErr)
		}
	}
}

func base64Header() textproto.Header {
	var h textproto.Header
	h.Set("Content-Transfer-Encoding", "base64")
	return h
}
