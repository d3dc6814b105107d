package providers_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

func rawHarness(t *testing.T, maxRequest int64) *harness {
	return newHarness(t, nil, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		in.MaxRequestBytes = maxRequest
		return providers.NewRaw(sink, providers.RawOptions{Token: "t0ken", Input: in})
	})
}

// rawPost is the request of docs/WEBHOOKS.md's Cloudflare Email Worker.
func rawPost(msg []byte, token string, header ...string) *http.Request {
	h := append([]string{"Authorization", "Bearer " + token, providers.RawFromHeader, "bounce@example.com"}, header...)
	return post("/raw", "message/rfc822", msg, h...)
}

func TestRaw(t *testing.T) {
	hs := rawHarness(t, 0)
	expect(t, hs.do(rawPost(testMessage, "t0ken", providers.RawToHeader, "certs@inbound.example.org",
		providers.RawToHeader, "<other@inbound.example.org>, third@inbound.example.org")), http.StatusOK, "ok")
	env := hs.one(testMessage)
	if env.Source != "raw" || env.EnvelopeFrom != "bounce@example.com" ||
		fmt.Sprint(env.EnvelopeTo) != "[certs@inbound.example.org other@inbound.example.org third@inbound.example.org]" {
		t.Errorf("context %+v", env)
	}
}

// A message larger than what is held in memory is written to the spool as
// it arrives, and delivered byte for byte.
func TestRawLargeMessage(t *testing.T) {
	hs := rawHarness(t, 0)
	big := append(bytes.Clone(testMessage), bytes.Repeat([]byte("0123456789abcde\n"), (2*ingest.DefaultSpillBytes)/16)...)
	expect(t, hs.do(rawPost(big, "t0ken")), http.StatusOK, "ok")
	hs.one(big)
}

func TestRawRefusals(t *testing.T) {
	hs := rawHarness(t, 4<<10)
	for _, tt := range []struct {
		name   string
		r      *http.Request
		status int
		msg    string
	}{
		{"no token", post("/raw", "message/rfc822", testMessage), http.StatusUnauthorized, "Unauthorized"},
		{"wrong token", rawPost(testMessage, "t0ke"), http.StatusUnauthorized, "Unauthorized"},
		{"basic, not bearer", post("/raw", "message/rfc822", testMessage, "Authorization", "Basic dDBrZW4="), http.StatusUnauthorized, "Unauthorized"},
		{"not a message", post("/raw", "text/plain", testMessage, "Authorization", "Bearer t0ken"), http.StatusUnsupportedMediaType, "message/rfc822"},
		{"empty", rawPost(nil, "t0ken"), http.StatusBadRequest, "Empty message"},
		{"two senders", rawPost(testMessage, "t0ken", providers.RawFromHeader, "x@example.com"), http.StatusBadRequest, "Malformed envelope"},
		{"too large", rawPost(bytes.Repeat([]byte("x"), 8<<10), "t0ken"), http.StatusRequestEntityTooLarge, "larger than"},
		{"GET", httptestRequest(http.MethodGet, "/raw"), http.StatusMethodNotAllowed, "Method Not Allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := hs.do(tt.r)
			expect(t, w, tt.status, tt.msg)
			if tt.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != `Bearer realm="certharvest"` {
				t.Errorf("challenge %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	hs.none()
}
