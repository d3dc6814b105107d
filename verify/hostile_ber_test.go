package verify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHostileBERReencoding: a few kilobytes of text labelled
// application/pkcs7-mime (a forwarded message, from the mutated corpus of
// scripts/mutate) made pkcs7.Parse's BER-to-DER re-encoding read the same
// bytes again at every level of a nesting its lengths fake: over half an
// hour of CPU and 14 GB before it failed. checkBER refuses it first, in
// linear time, and the verdict is signature_malformed.
func TestHostileBERReencoding(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hostile-ber-reencoding.p7"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBER(data); err == nil {
		t.Fatal("checkBER accepted text whose lengths run past their enclosing element")
	}
	done := make(chan error, 1)
	go func() {
		_, err := verifyCMSWithPKCS7(&signedEntity{cms: data, opaque: true}, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ReasonSignatureMalformed) {
			t.Fatalf("verdict %v, want %s", err, ReasonSignatureMalformed)
		}
	case <-time.After(time.Minute):
		// A guard against the hang, not a measurement: it takes
		// microseconds.
		t.Fatal("the CMS parser still runs after a minute")
	}
}

// TestCheckBER: well-formed BER passes whatever its lengths' forms; an
// element running past its parent, an unterminated indefinite length and
// too deep a nesting do not.
func TestCheckBER(t *testing.T) {
	nest := func(depth int, indefinite bool) []byte {
		b := []byte{0x04, 0x01, 0x2a} // OCTET STRING 2a
		for range depth {
			if indefinite {
				b = append(append([]byte{0x30, 0x80}, b...), 0, 0)
			} else {
				b = append([]byte{0x30, byte(len(b))}, b...)
			}
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"definite", []byte{0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0x00}, true},
		{"long-form length", append([]byte{0x30, 0x81, 0x03}, 0x02, 0x01, 0x05), true},
		{"indefinite", []byte{0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00}, true},
		{"nested indefinite", nest(maxBERDepth-1, true), true},
		{"nested definite", nest(40, false), true},
		{"trailing bytes", []byte{0x30, 0x03, 0x02, 0x01, 0x05, 0xff, 0xff}, true},
		{"child past its parent", []byte{0x30, 0x03, 0x30, 0x03, 0x02, 0x01, 0x05}, false},
		{"unterminated indefinite", []byte{0x30, 0x80, 0x02, 0x01, 0x05}, false},
		{"indefinite primitive", []byte{0x04, 0x80, 0x00, 0x00}, false},
		{"too deep", nest(maxBERDepth+2, true), false},
		{"empty", nil, false},
	} {
		err := checkBER(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: checkBER(% x) = %v, want ok=%v", tc.name, truncateBytes(tc.in, 16), err, tc.ok)
		}
	}
	// Many nested indefinite elements side by side, each as deep as
	// allowed: each level is walked a bounded number of times.
	unit := nest(maxBERDepth-2, true)
	wide := append([]byte{0x30, 0x80}, append(bytes.Repeat(unit, 200), 0, 0)...)
	if err := checkBER(wide); err != nil {
		t.Fatalf("wide nesting within the limit: %v", err)
	}
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
