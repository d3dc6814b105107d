package providers_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

const (
	mandrillKey = "Ja2Q2Mzk3MGI4ZDE4YjY"
	// mandrillURL is the webhook URL as given to Mandrill: the signature
	// covers it, credentials included, though the request does not carry
	// it (behind a proxy, its host and scheme are others).
	mandrillURL = "https://hook:pw@certharvest.example.org/mandrill"
)

// mandrillPost builds Mandrill's POST of events, signed with key over url.
func mandrillPost(t *testing.T, key, url0 string, events []map[string]any) *http.Request {
	b, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write([]byte(url0 + "mandrill_events" + string(b)))
	body := "mandrill_events=" + url.QueryEscape(string(b))
	return post("/mandrill", "application/x-www-form-urlencoded", []byte(body),
		providers.MandrillSignatureHeader, base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// mandrillInbound is an inbound event of raw to rcpt, with the parsed
// fields Mandrill adds.
func mandrillInbound(raw []byte, rcpt string) map[string]any {
	return map[string]any{"event": "inbound", "ts": 1780315200, "msg": map[string]any{
		"raw_msg": string(raw), "email": rcpt, "from_email": "bob@example.com", "from_name": "Bob",
		"headers": map[string]any{"From": "Bob <bob@example.com>", "Subject": "signed"},
		"text":    "hello", "html": "<p>hello</p>", "subject": "signed", "tags": []string{}, "sender": nil,
		"spam_report":  map[string]any{"score": 0.1, "matched_rules": []any{}},
		"dkim":         map[string]any{"signed": true, "valid": true},
		"spf":          map[string]any{"result": "pass", "detail": "sender SPF authorized"},
		"attachments":  map[string]any{"smime.p7s": map[string]any{"name": "smime.p7s", "type": "application/pkcs7-signature", "content": "MIIB", "base64": true}},
		"to":           [][]any{{rcpt, nil}},
		"spf_detailed": nil,
	}}
}

func mandrillHarness(t *testing.T) *harness {
	return newHarness(t, nil, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		return providers.NewMandrill(sink, providers.MandrillOptions{WebhookKey: mandrillKey, URL: mandrillURL, Input: in})
	})
}

// Inbound events are delivered, the others (a route's tracking events)
// skipped.
func TestMandrill(t *testing.T) {
	hs := mandrillHarness(t)
	r := mandrillPost(t, mandrillKey, mandrillURL, []map[string]any{
		mandrillInbound(utf8Message, "certs@inbound.example.org"),
		{"event": "send", "ts": 1780315200, "msg": map[string]any{"email": "x@example.com"}},
	})
	expect(t, hs.do(r), http.StatusOK, "ok")
	env := hs.one(utf8Message)
	if env.Source != "mandrill" || fmt.Sprint(env.EnvelopeTo) != "[certs@inbound.example.org]" {
		t.Errorf("context %+v", env)
	}
	if !strings.Contains(hs.log.String(), "1 event not inbound: ignored") {
		t.Errorf("log:\n%s", hs.log)
	}
}

// Mandrill checks a new URL with HEAD; a signature over another URL or
// with another key is refused, but for the empty test batch.
func TestMandrillChecks(t *testing.T) {
	hs := mandrillHarness(t)
	expect(t, hs.do(httptestRequest(http.MethodHead, "/mandrill")), http.StatusOK, "")
	w := hs.do(httptestRequest(http.MethodGet, "/mandrill"))
	expect(t, w, http.StatusMethodNotAllowed, "Method Not Allowed")
	if w.Header().Get("Allow") != "POST, HEAD" {
		t.Errorf("Allow %q", w.Header().Get("Allow"))
	}
	events := []map[string]any{mandrillInbound(utf8Message, "certs@inbound.example.org")}
	expect(t, hs.do(mandrillPost(t, mandrillKey, "https://certharvest.example.org/mandrill", events)), http.StatusUnauthorized, "Unauthorized")
	expect(t, hs.do(mandrillPost(t, "test-webhook", mandrillURL, events)), http.StatusUnauthorized, "Unauthorized")
	expect(t, hs.do(mandrillPost(t, "test-webhook", mandrillURL, []map[string]any{})), http.StatusOK, "ok")
	r := mandrillPost(t, mandrillKey, mandrillURL, events)
	r.Header.Del(providers.MandrillSignatureHeader)
	expect(t, hs.do(r), http.StatusUnauthorized, "Unauthorized")
	bad := mandrillPost(t, mandrillKey, mandrillURL, []map[string]any{{"event": "inbound", "msg": map[string]any{"email": "a@b"}}})
	expect(t, hs.do(bad), http.StatusBadRequest, "raw_msg is missing")
	hs.none()
}

func httptestRequest(method, path string) *http.Request {
	return httptest.NewRequest(method, path, nil)
}
