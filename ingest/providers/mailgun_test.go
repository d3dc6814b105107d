package providers_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

const mailgunKey = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"

// mailgunFields are the fields a route's forward() to a URL ending in
// "mime" posts, signed at ts with token.
func mailgunFields(msg []byte, ts time.Time, token string) [][2]string {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(mailgunKey))
	mac.Write([]byte(stamp + token))
	return [][2]string{
		{"recipient", "certs@inbound.example.org"},
		{"sender", "bounce@example.com"},
		{"subject", "signed"},
		{"from", "Bob <bob@example.com>"},
		{"X-Mailgun-Incoming", "Yes"},
		{"body-mime", string(msg)},
		{"timestamp", stamp},
		{"token", token},
		{"signature", hex.EncodeToString(mac.Sum(nil))},
	}
}

// mailgunURLEncoded is Mailgun's POST without attachments.
func mailgunURLEncoded(fields [][2]string) ([]byte, string) {
	v := url.Values{}
	for _, f := range fields {
		v.Add(f[0], f[1])
	}
	return []byte(v.Encode()), "application/x-www-form-urlencoded"
}

// mailgunMultipart is Mailgun's POST of a message with attachments.
func mailgunMultipart(t *testing.T, fields [][2]string) ([]byte, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return b.Bytes(), w.FormDataContentType()
}

func mailgunHarness(t *testing.T, wrap func(ingest.Sink) ingest.Sink, opts providers.MailgunOptions) *harness {
	if opts.SigningKey == "" {
		opts.SigningKey = mailgunKey
	}
	return newHarness(t, wrap, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		opts.Input = in
		return providers.NewMailgun(sink, opts)
	})
}

func TestMailgunForms(t *testing.T) {
	for _, tt := range []struct {
		name  string
		build func([][2]string) ([]byte, string)
	}{
		{"urlencoded", mailgunURLEncoded},
		{"multipart", func(f [][2]string) ([]byte, string) { return mailgunMultipart(t, f) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := mailgunHarness(t, nil, providers.MailgunOptions{})
			body, ct := tt.build(mailgunFields(testMessage, testNow.Add(-time.Minute), "tok"+tt.name))
			expect(t, hs.do(post("/mailgun/mime", ct, body)), http.StatusOK, "ok")
			env := hs.one(testMessage)
			if env.Source != "mailgun" || env.EnvelopeFrom != "bounce@example.com" || fmt.Sprint(env.EnvelopeTo) != "[certs@inbound.example.org]" {
				t.Errorf("context %+v", env)
			}
		})
	}
}

// A request seen before is refused for good (406), and so is one signed
// too long ago or from too far in the future; a wrong signature gets 401,
// which Mailgun retries.
func TestMailgunRefusals(t *testing.T) {
	hs := mailgunHarness(t, nil, providers.MailgunOptions{})
	first, ct := mailgunURLEncoded(mailgunFields(testMessage, testNow, "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"))
	expect(t, hs.do(post("/mailgun/mime", ct, first)), http.StatusOK, "ok")
	expect(t, hs.do(post("/mailgun/mime", ct, first)), http.StatusNotAcceptable, "Replayed")

	stale, _ := mailgunURLEncoded(mailgunFields(testMessage, testNow.Add(-providers.DefaultMailgunMaxAge-time.Second), "t2"))
	expect(t, hs.do(post("/mailgun/mime", ct, stale)), http.StatusNotAcceptable, "Stale")
	future, _ := mailgunURLEncoded(mailgunFields(testMessage, testNow.Add(6*time.Minute), "t3"))
	expect(t, hs.do(post("/mailgun/mime", ct, future)), http.StatusNotAcceptable, "Stale")

	fields := mailgunFields(testMessage, testNow, "t4")
	fields[len(fields)-1][1] = hex.EncodeToString(make([]byte, 32))
	forged, _ := mailgunURLEncoded(fields)
	expect(t, hs.do(post("/mailgun/mime", ct, forged)), http.StatusUnauthorized, "Unauthorized")

	parsed, _ := mailgunURLEncoded(append(mailgunFields(nil, testNow, "t5")[:5], mailgunFields(nil, testNow, "t5")[6:]...))
	expect(t, hs.do(post("/mailgun/mime", ct, parsed)), http.StatusNotAcceptable, `must end in \"mime\"`)

	if raws, _ := hs.spooled(); len(raws) != 1 {
		t.Errorf("%d messages spooled, want the first alone", len(raws))
	}
	if _, err := providers.NewMailgun(nil, providers.MailgunOptions{SigningKey: "k", Path: "/mailgun"}); err == nil {
		t.Error("a path not ending in mime was taken")
	}
}

// A request the spool could not take (503) is taken when Mailgun retries
// it, with the same token.
func TestMailgunRetryAfterFailure(t *testing.T) {
	hs := mailgunHarness(t, func(s ingest.Sink) ingest.Sink { return &failingSink{Sink: s, n: 1} }, providers.MailgunOptions{})
	body, ct := mailgunURLEncoded(mailgunFields(testMessage, testNow.Add(-time.Minute), "retried"))
	expect(t, hs.do(post("/mailgun/mime", ct, body)), http.StatusServiceUnavailable, "retry later")
	expect(t, hs.do(post("/mailgun/mime", ct, body)), http.StatusOK, "ok")
	hs.one(testMessage)
}

// Beyond MaxTokens tokens within the window, requests wait (503).
func TestMailgunTokenMemoryFull(t *testing.T) {
	hs := mailgunHarness(t, nil, providers.MailgunOptions{MaxTokens: 1})
	a, ct := mailgunURLEncoded(mailgunFields(testMessage, testNow, "a"))
	b, _ := mailgunURLEncoded(mailgunFields(testMessage, testNow, "b"))
	expect(t, hs.do(post("/mailgun/mime", ct, a)), http.StatusOK, "ok")
	w := hs.do(post("/mailgun/mime", ct, b))
	expect(t, w, http.StatusServiceUnavailable, "retry later")
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
