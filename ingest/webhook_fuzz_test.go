package ingest

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/verify"
)

// FuzzWebhookDecode feeds any body to the relay decoder: an error or
// messages that each have bytes, never a panic, and never a message that
// was not in the body.
func FuzzWebhookDecode(f *testing.F) {
	msg := "From: a@example.com\r\n\r\nhello\r\n"
	f.Add([]byte(`[{"msys":{"relay_message":{"msg_from":"a@example.com","rcpt_to":"in@example.org","content":{"email_rfc822":"` +
		strings.ReplaceAll(msg, "\r\n", `\r\n`) + `","email_rfc822_is_base64":false}}}}]`))
	f.Add([]byte(`[{"msys":{"relay_message":{"content":{"email_rfc822":"` + base64.StdEncoding.EncodeToString([]byte(msg)) +
		`","email_rfc822_is_base64":true}}}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)))
	f.Add([]byte(`[{"msys":{"relay_message":{"content":{"email_rfc822":"\ud83d"}}}}]`))
	h, err := NewWebhook(nil, WebhookOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := h.decode(bytes.NewReader(body), verify.Envelope{Source: "webhook"})
		if err != nil {
			return
		}
		for _, m := range msgs {
			if len(m.Raw) == 0 {
				t.Fatal("an accepted relay message without bytes")
			}
			if m.Raw != nil && len(m.Raw) > len(body) {
				t.Fatalf("a message of %d bytes from a body of %d", len(m.Raw), len(body))
			}
		}
	})
}
