package providers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

// postmarkInbound builds Postmark's inbound JSON with "Include raw email
// content in JSON payload" on: the parsed fields, and RawEmail.
func postmarkInbound(t *testing.T, raw []byte, edit func(map[string]any)) []byte {
	m := map[string]any{
		"FromName":          "Bob",
		"MessageStream":     "inbound",
		"From":              "bob@example.com",
		"FromFull":          map[string]string{"Email": "bob@example.com", "Name": "Bob", "MailboxHash": ""},
		"To":                "certs@inbound.example.org",
		"ToFull":            []map[string]string{{"Email": "certs@inbound.example.org", "Name": "", "MailboxHash": ""}},
		"OriginalRecipient": "certs@inbound.example.org",
		"Subject":           "signed",
		"MessageID":         "22c74902-a0c1-4511-804f2-341342852c90",
		"Date":              "Mon, 1 Jun 2026 12:00:00 +0000",
		"MailboxHash":       "",
		"TextBody":          "hello",
		"HtmlBody":          "<p>hello</p>",
		"StrippedTextReply": "",
		"Tag":               "",
		"Headers": []map[string]string{
			{"Name": "Return-Path", "Value": "<bounce@example.com>"},
			{"Name": "X-Spam-Status", "Value": "No"},
			{"Name": "DKIM-Signature", "Value": "v=1; a=rsa-sha256; d=example.com"},
		},
		"Attachments": []map[string]any{{"Name": "smime.p7s", "Content": "MIIB", "ContentType": "application/pkcs7-signature", "ContentLength": 3}},
		"RawEmail":    string(raw),
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postmarkHarness(t *testing.T, configure func(*ingest.HTTPInputOptions)) *harness {
	return newHarness(t, nil, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		if configure != nil {
			configure(&in)
		}
		return providers.NewPostmark(sink, providers.PostmarkOptions{BasicAuth: "postmark:s3cret", Input: in})
	})
}

func postmarkPost(body []byte, user, pass string) *http.Request {
	r := post("/postmark", "application/json", body)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	return r
}

func TestPostmark(t *testing.T) {
	hs := postmarkHarness(t, nil)
	expect(t, hs.do(postmarkPost(postmarkInbound(t, utf8Message, nil), "postmark", "s3cret")), http.StatusOK, "ok")
	env := hs.one(utf8Message)
	if env.Source != "postmark" || env.EnvelopeFrom != "bounce@example.com" || fmt.Sprint(env.EnvelopeTo) != "[certs@inbound.example.org]" ||
		env.Extra["message_id"] != "22c74902-a0c1-4511-804f2-341342852c90" {
		t.Errorf("context %+v", env)
	}
}

// Without the right credentials: 401 with a challenge (Postmark retries);
// without RawEmail, another record type or too large: 403, which stops
// Postmark's retries.
func TestPostmarkRefusals(t *testing.T) {
	hs := postmarkHarness(t, func(in *ingest.HTTPInputOptions) { in.MaxRequestBytes = 16 << 10 })
	good := postmarkInbound(t, utf8Message, nil)
	for _, tt := range []struct {
		name       string
		r          *http.Request
		status     int
		msg        string
		challenged bool
	}{
		{"no credentials", postmarkPost(good, "", ""), http.StatusUnauthorized, "Unauthorized", true},
		{"wrong password", postmarkPost(good, "postmark", "s3cre"), http.StatusUnauthorized, "Unauthorized", true},
		{"no RawEmail", postmarkPost(postmarkInbound(t, nil, func(m map[string]any) { delete(m, "RawEmail") }), "postmark", "s3cret"),
			http.StatusForbidden, "Include raw email content in JSON payload", false},
		{"a bounce", postmarkPost(postmarkInbound(t, utf8Message, func(m map[string]any) { m["RecordType"] = "Bounce" }), "postmark", "s3cret"),
			http.StatusForbidden, "Not an inbound message", false},
		{"too large", postmarkPost(postmarkInbound(t, bytes.Repeat([]byte("x"), 20<<10), nil), "postmark", "s3cret"),
			http.StatusForbidden, "larger than", false},
		{"malformed", postmarkPost([]byte(`{"RawEmail":"x","RawEmail":"y"}`), "postmark", "s3cret"), http.StatusForbidden, "Malformed JSON", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := hs.do(tt.r)
			expect(t, w, tt.status, tt.msg)
			if got := w.Header().Get("WWW-Authenticate") != ""; got != tt.challenged {
				t.Errorf("challenge %v, want %v", got, tt.challenged)
			}
		})
	}
	hs.none()
	if strings.Contains(hs.log.String(), "s3cre") {
		t.Error("the log shows a password")
	}
}
