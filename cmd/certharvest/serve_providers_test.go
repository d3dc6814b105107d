package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
)

// The providers' webhooks are served by the binary on --http beside the
// SparkPost webhook, each enabled by its secret: a message posted to each
// the way the provider posts it is spooled, verified, reported with the
// provider as its source, and its certificate stored.
func TestServeProviders(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, value string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	s := startServe(t, dir, "--http", "127.0.0.1:0",
		"--raw-token-file", secret("raw", "raw-tok-1"),
		"--mailgun-signing-key-file", secret("mailgun", "key-mg-2"),
		"--postmark-basic-auth-file", secret("postmark", "pm:pw-3"))
	base := "http://" + s.webhookAddr(t)
	client := &http.Client{Timeout: 30 * time.Second}
	sample := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(sampleDir, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	post := func(req *http.Request, want int) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", req.URL.Path, resp.StatusCode, want)
		}
	}

	// Raw: the message as the body, the envelope in header fields.
	req, _ := http.NewRequest("POST", base+"/raw", bytes.NewReader(sample("01-ok-rsa-detached.eml")))
	req.Header.Set("Content-Type", "message/rfc822")
	req.Header.Set("Authorization", "Bearer raw-tok-1")
	req.Header.Set("X-Envelope-To", "certs@inbound.example.org")
	post(req, 200)
	req, _ = http.NewRequest("POST", base+"/raw", bytes.NewReader(sample("01-ok-rsa-detached.eml")))
	req.Header.Set("Content-Type", "message/rfc822")
	req.Header.Set("Authorization", "Bearer wrong")
	post(req, 401)

	// Mailgun: a route's forward() to a URL ending in mime, signed.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte("key-mg-2"))
	mac.Write([]byte(ts + "tok-abc"))
	for _, f := range [][2]string{{"recipient", "certs@inbound.example.org"}, {"sender", "ecdsa.detached@example.com"},
		{"timestamp", ts}, {"token", "tok-abc"}, {"signature", hex.EncodeToString(mac.Sum(nil))},
		{"body-mime", string(sample("02-ok-ecdsa-detached.eml"))}} {
		mw.WriteField(f[0], f[1])
	}
	mw.Close()
	req, _ = http.NewRequest("POST", base+"/mailgun/mime", bytes.NewReader(form.Bytes()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	post(req, 200)

	// Postmark: JSON with the raw message, basic auth in the URL.
	body, _ := json.Marshal(map[string]any{"MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
		"OriginalRecipient": "certs@inbound.example.org", "RawEmail": string(sample("03-ok-opaque.eml"))})
	req, _ = http.NewRequest("POST", base+"/postmark", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("pm", "pw-3")
	post(req, 200)

	s.waitDrained(t, 30*time.Second)
	s.stop(t)
	bySource := map[string]output.Record{}
	for _, rec := range readReport(t, s.report) {
		bySource[rec.Source] = rec
	}
	for source, file := range map[string]string{"raw": "01-ok-rsa-detached.eml", "mailgun": "02-ok-ecdsa-detached.eml", "postmark": "03-ok-opaque.eml"} {
		rec, ok := bySource[source]
		if !ok {
			t.Errorf("no report line with source %s (%v)", source, bySource)
			continue
		}
		if rec.Outcome != output.OutcomeAccepted {
			t.Errorf("%s (%s): %s %s", source, file, rec.Reason, rec.Detail)
			continue
		}
		checkPEM(t, rec.CertFile, rec.Cert.SHA256)
	}
	if len(bySource) != 3 {
		t.Errorf("report sources %v, want raw, mailgun and postmark once each", bySource)
	}
}

// sesTopicARN is an SNS topic's ARN for the flags.
const sesTopicARN = "arn:aws:sns:us-east-1:123456789012:ses-inbound"

// A provider's secret without --http, or a path taken already, is a usage
// error naming the cause.
func TestServeProvidersUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	os.WriteFile(tok, []byte("t"), 0o600)
	for _, tt := range []struct {
		args []string
		say  string
	}{
		{[]string{"--raw-token-file", tok}, "the raw webhook needs --http"},
		{[]string{"--http", "127.0.0.1:0", "--raw-token-file", tok, "--raw-path", "/healthz"}, `--raw-path "/healthz" is taken already`},
		{[]string{"--http", "127.0.0.1:0", "--raw-token-file", tok, "--raw-path", "/certs/x"}, `--raw-path "/certs/x" is taken already`},
		{[]string{"--http", "127.0.0.1:0", "--mandrill-webhook-key-file", tok}, "needs both --mandrill-webhook-key-file and --mandrill-url"},
		{[]string{"--http", "127.0.0.1:0", "--postmark-basic-auth-file", filepath.Join(dir, "missing")}, "--postmark-basic-auth-file"},
		{[]string{"--http", "127.0.0.1:0", "--ses-s3-bucket", "b-1"}, "Amazon SES needs --ses-topic-arn"},
		{[]string{"--http", "127.0.0.1:0", "--ses-topic-arn", sesTopicARN, "--ses-s3-delete"}, "need --ses-s3-bucket"},
		{[]string{"--http", "127.0.0.1:0", "--ses-topic-arn", sesTopicARN, "--ses-s3-bucket", "b-1", "--ses-s3-key-file", tok}, "want one line ACCESS_KEY_ID:SECRET"},
		{[]string{"--http", "127.0.0.1:0", "--ses-topic-arn", sesTopicARN, "--ses-s3-bucket", "b-1", "--ses-s3-endpoint", "http://s3.example.net:9000"}, "plain http beyond loopback"},
	} {
		args := append([]string{"serve", "--maildir", filepath.Join(dir, "Maildir"), "--certs", filepath.Join(dir, "certs")}, tt.args...)
		r := runBinary(t, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.say) {
			t.Errorf("%v: exit %d, want an error saying %q:\n%s", tt.args, r.code, tt.say, r.stderr)
		}
	}
}
