package verify_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/verify"
)

// Headers within the caps whose DKIM reading go-msgauth v0.7.0 does in time
// quadratic in their size, and internal/dkimfast in linear time: a field of
// many continuation lines (go-msgauth appends each line to the field's
// string, copying it: 250,000 lines of 4 bytes are 125 GB of copying),
// and a signature naming many fields of a header of many (go-msgauth
// compares every name with every field from the bottom up: 100,000 names
// and 9,000 fields, 900 million comparisons).
func TestHostileDKIMHeader(t *testing.T) {
	f := testFixture(t)
	p, _ := newPipeline(t, f, nil)
	const head = "From: dkim@example.com\r\nTo: in@example.org\r\nSubject: hostile\r\n"
	const body = "\r\nbody\r\n"

	t.Run("a field of 250,000 continuation lines", func(t *testing.T) {
		raw := "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=" + testcorpus.Selector + "; h=from; bh=AAAA; b=AAAA\r\n" +
			head + "X-Long: a\r\n" + strings.Repeat(" b\r\n", 250_000) + body
		res := checkBounded(t, p, []byte(raw), verify.ReasonDKIMInvalid, 5*time.Second, 64<<20)
		if !strings.Contains(res.Detail, "body hash did not verify") {
			t.Errorf("detail %q: the header was not read to the end", res.Detail)
		}
	})

	t.Run("a signature naming 100,000 fields of a header of 9,000", func(t *testing.T) {
		fields := head + strings.Repeat("X-A: 1\r\n", 9_000)
		// The body hash of a real signature, so that the header is hashed.
		signed, err := f.DKIMSign([]byte(fields+body), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		bh := regexp.MustCompile(`bh=([^;]+);`).FindSubmatch(signed)
		if bh == nil {
			t.Fatalf("no bh= in %q", signed[:200])
		}
		sig := "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=" + testcorpus.Selector +
			"; h=from" + strings.Repeat(":x-a", 100_000) + "; bh=" + string(bytes.TrimSpace(bh[1])) + "; b=AAAA\r\n"
		res := checkBounded(t, p, []byte(sig+fields+body), verify.ReasonDKIMInvalid, 5*time.Second, 64<<20)
		if !strings.Contains(res.Detail, "signature did not verify") {
			t.Errorf("detail %q: the header was not hashed", res.Detail)
		}
	})
}
