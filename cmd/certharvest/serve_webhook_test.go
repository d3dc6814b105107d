package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// webhookAddr reads the webhook's address from the service's log.
func (s *service) webhookAddr(t *testing.T) string {
	t.Helper()
	return s.listeningAddr(t, "webhook listening on ")
}

// relayed is a sample message as SparkPost relays it.
type relayed struct {
	file   string // in testdata/sample/messages
	raw    []byte // the message itself, instead of file
	base64 bool
	rcptTo string
}

// sparkPostPayload builds a relay webhook request body from sample
// messages, with every field SparkPost sends: the From address as
// msg_from, the header fields as a list of single-key objects, the text
// part, and the message as relayed.
func sparkPostPayload(t *testing.T, msgs ...relayed) []byte {
	t.Helper()
	var items []any
	for i, m := range msgs {
		raw := m.raw
		if raw == nil {
			var err error
			if raw, err = os.ReadFile(filepath.Join(sampleDir, "messages", m.file)); err != nil {
				t.Fatal(err)
			}
		}
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%s: %v", m.file, err)
		}
		text, _ := io.ReadAll(tp.R)
		from, err := mail.ParseAddress(hdr.Get("From"))
		if err != nil {
			t.Fatalf("%s: From: %v", m.file, err)
		}
		var headers []map[string]string
		for k, vs := range hdr {
			for _, v := range vs {
				headers = append(headers, map[string]string{k: v})
			}
		}
		content := map[string]any{
			"headers":                headers,
			"html":                   "",
			"text":                   string(text),
			"subject":                hdr.Get("Subject"),
			"to":                     []string{m.rcptTo},
			"email_rfc822_is_base64": m.base64,
			"email_rfc822":           string(raw),
		}
		if m.base64 {
			content["email_rfc822"] = base64.StdEncoding.EncodeToString(raw)
		}
		items = append(items, map[string]any{"msys": map[string]any{"relay_message": map[string]any{
			"content":       content,
			"customer_id":   "1337",
			"friendly_from": from.String(),
			"msg_from":      from.Address,
			"protocol":      "smtp",
			"rcpt_to":       m.rcptTo,
			"webhook_id":    fmt.Sprintf("204936083760%d", i),
		}}})
	}
	body, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func postRelay(t *testing.T, client *http.Client, url, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SparkPost")
	if token != "" {
		req.Header.Set("X-MessageSystems-Webhook-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// The built binary takes relay webhook requests: a token read from a file,
// base64 and plain messages, one accepted and one rejected, with Go's client
// and with curl; every message is reported with source webhook and the
// relay's context, byte for byte as relayed.
func TestServeWebhook(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("  tok-7f3a9c\n"), 0o600)
	s := startServe(t, dir, "--http", "127.0.0.1:0", "--http-path", "/relay", "--webhook-token-file", tokenFile)
	url := "http://" + s.webhookAddr(t) + "/relay"
	client := &http.Client{Timeout: 30 * time.Second}
	const rcpt = "certs@inbound.example.org"
	want := expectedSample(t)

	body := sparkPostPayload(t,
		relayed{file: "01-ok-rsa-detached.eml", base64: true, rcptTo: rcpt},
		relayed{file: "26-cert-untrusted.eml", rcptTo: rcpt})
	if code, resp := postRelay(t, client, url, "wrong", body); code != 400 || !strings.Contains(resp, "Invalid X-MessageSystems-Webhook-Token in request headers") {
		t.Errorf("wrong token: %d %s", code, resp)
	}
	if code, resp := postRelay(t, client, url, "tok-7f3a9c", body); code != 200 || strings.TrimSpace(resp) != `{"message":"ok"}` {
		t.Fatalf("relay POST: %d %s", code, resp)
	}
	files := map[string]string{"rsa.detached@example.com": "01-ok-rsa-detached.eml", "untrusted@example.com": "26-cert-untrusted.eml"}

	if curl, err := exec.LookPath("curl"); err == nil {
		payload := filepath.Join(dir, "payload.json")
		os.WriteFile(payload, sparkPostPayload(t, relayed{file: "02-ok-ecdsa-detached.eml", rcptTo: rcpt}), 0o600)
		out, err := exec.Command(curl, "-sS", "-w", " %{http_code}", "-H", "Content-Type: application/json",
			"-H", "X-MessageSystems-Webhook-Token: tok-7f3a9c", "--data-binary", "@"+payload, url).CombinedOutput()
		if err != nil || strings.Join(strings.Fields(string(out)), " ") != `{"message":"ok"} 200` {
			t.Errorf("curl: %v: %s", err, out)
		}
		files["ecdsa.detached@example.com"] = "02-ok-ecdsa-detached.eml"
	} else {
		t.Log("curl is not installed: Go's client only")
	}
	resp, err := client.Get("http://" + s.webhookAddr(t) + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	recs := readReport(t, s.report)
	if len(recs) != len(files) {
		t.Fatalf("%d report lines, want %d", len(recs), len(files))
	}
	for _, rec := range recs {
		file := files[rec.EnvelopeFrom]
		if file == "" {
			t.Errorf("unexpected report line for %q", rec.EnvelopeFrom)
			continue
		}
		if rec.Source != "webhook" || len(rec.EnvelopeTo) != 1 || rec.EnvelopeTo[0] != rcpt ||
			!strings.HasPrefix(rec.RemoteAddr, "127.0.0.1:") {
			t.Errorf("%s: source %q, envelope to %q, remote %q", file, rec.Source, rec.EnvelopeTo, rec.RemoteAddr)
		}
		if rec.Context["customer_id"] != "1337" || !strings.HasPrefix(rec.Context["webhook_id"], "204936083760") ||
			rec.Context["protocol"] != "smtp" || !strings.Contains(rec.Context["friendly_from"], rec.EnvelopeFrom) {
			t.Errorf("%s: context %v", file, rec.Context)
		}
		if string(rec.Reason) != want[file] {
			t.Errorf("%s: reason %s (%s), want %s", file, rec.Reason, rec.Detail, want[file])
		}
		if rec.Outcome == output.OutcomeAccepted {
			checkPEM(t, rec.CertFile, rec.Cert.SHA256)
			if filepath.Base(rec.CertFile) != rec.EnvelopeFrom+".crt" {
				t.Errorf("%s: certificate file %s", file, rec.CertFile)
			}
		}
		// The archived message is the relayed one, byte for byte, under
		// serve's Authentication-Results field.
		orig, _ := os.ReadFile(filepath.Join(sampleDir, "messages", file))
		got, err := os.ReadFile(filepath.Join(s.maildir, "cur", curName(filepath.Base(rec.Path), rec.Outcome == output.OutcomeAccepted)))
		if err != nil || !bytes.Equal(unstamped(t, got, rec), orig) {
			t.Errorf("%s: archived message differs from the relayed one (%v)", file, err)
		}
	}

	log, _ := os.ReadFile(s.log)
	for _, re := range []string{
		`webhook listening on 127\.0\.0\.1:\d+ scheme=http path=/relay token=true`,
		`\[(req-[0-9a-f]{8})\] Request from 127\.0\.0\.1,scheme=http,path=/relay\n.*\[req-[0-9a-f]{8}\] \| 400 Invalid X-MessageSystems-Webhook-Token in request headers: token does not match\n`,
		`\[(req-[0-9a-f]{8})\] \| len\(headers\)=\d+,len\(body\)=` + fmt.Sprint(len(body)) + `\n`,
		`\[req-[0-9a-f]{8}\] \| msg_from=rsa\.detached@example\.com,rcpt_to=certs@inbound\.example\.org,len\(email_rfc822\)=\d+ message=[0-9a-f]{12}\n`,
		`\[req-[0-9a-f]{8}\] \| msg_from=untrusted@example\.com,rcpt_to=certs@inbound\.example\.org,len\(email_rfc822\)=\d+ message=[0-9a-f]{12}\n`,
		`\[req-[0-9a-f]{8}\] \| spooled 2 messages: \S+ \S+\n`,
		`Message from webhook,path=\S+/Maildir/new/\S+,remote=127\.0\.0\.1:\d+,msg_from=rsa\.detached@example\.com,rcpt_to=certs@inbound\.example\.org`,
	} {
		if !regexp.MustCompile(re).Match(log) {
			t.Errorf("log lacks %s", re)
		}
	}
	if bytes.Contains(log, []byte("tok-7f3a9c")) {
		t.Error("the log shows the token")
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// A relayed message over --max-size is acknowledged (the limit is the
// pipeline's, not the webhook's) and reported as message_too_large with
// where it came from, under the id the webhook's log gave it.
func TestServeWebhookMessageTooLarge(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--http", "127.0.0.1:0", "--max-size", "8KiB")
	url := "http://" + s.webhookAddr(t) + "/"
	const file, rcpt = "07-ok-ber-opaque-chunked.eml", "certs@inbound.example.org"
	raw, err := os.ReadFile(filepath.Join(sampleDir, "messages", file))
	if err != nil || len(raw) <= 8<<10 {
		t.Fatalf("%s: %d bytes, %v; want more than 8 KiB", file, len(raw), err)
	}
	body := sparkPostPayload(t, relayed{file: file, rcptTo: rcpt})
	if code, resp := postRelay(t, &http.Client{Timeout: 30 * time.Second}, url, "", body); code != 200 {
		t.Fatalf("relay POST: %d %s", code, resp)
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	recs := readReport(t, s.report)
	if len(recs) != 1 {
		t.Fatalf("%d report lines, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Reason != verify.ReasonTooLarge || rec.Source != "webhook" || len(rec.EnvelopeTo) != 1 || rec.EnvelopeTo[0] != rcpt ||
		rec.EnvelopeFrom == "" || !strings.HasPrefix(rec.RemoteAddr, "127.0.0.1:") {
		t.Errorf("report line: reason %s, source %q, from %q, to %q, remote %q", rec.Reason, rec.Source, rec.EnvelopeFrom, rec.EnvelopeTo, rec.RemoteAddr)
	}
	if want := verify.MessageIDFor(&verify.Message{Raw: raw}); rec.ID != want {
		t.Errorf("report id %q, want %q (the relayed bytes')", rec.ID, want)
	}
	log, _ := os.ReadFile(s.log)
	for _, re := range []string{
		`len\(email_rfc822\)=\d+ .*message=` + rec.ID + `\n`,
		`\[` + rec.ID + `\] rejected: message_too_large: message is \d+ bytes, the limit is 8192 `,
	} {
		if !regexp.MustCompile(re).Match(log) {
			t.Errorf("log lacks %s", re)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// With --tls-cert and --tls-key the webhook speaks HTTPS itself.
func TestServeWebhookHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTLSPair(t, dir, "127.0.0.1")
	s := startServe(t, dir, "--http", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	url := "https://" + s.webhookAddr(t) + "/"
	body := sparkPostPayload(t, relayed{file: "03-ok-opaque.eml", base64: true, rcptTo: "certs@inbound.example.org"})
	// HTTP/2 (what a client negotiates when offered), then HTTP/1.1.
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
		resp, err := client.Get(strings.TrimSuffix(url, "/") + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want {
			t.Errorf("HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
		}
		if code, resp := postRelay(t, client, url, "", body); code != 200 {
			t.Fatalf("relay POST over HTTPS (HTTP/2 %v): %d %s", h2, code, resp)
		}
	}
	// Plain HTTP to the HTTPS port is refused (an answer 400, or the
	// connection reset while the body is sent).
	plain, err := http.Post("http://"+s.webhookAddr(t)+"/", "application/json", bytes.NewReader(body))
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Error("plain HTTP accepted on the HTTPS listener")
		}
	}
	s.waitDrained(t, 30*time.Second)
	s.stop(t)
	recs := readReport(t, s.report)
	if len(recs) != 2 {
		t.Fatalf("%d report lines, want 2", len(recs))
	}
	for _, rec := range recs {
		if rec.Source != "webhook" || rec.Outcome != output.OutcomeAccepted {
			t.Errorf("report line %+v, want an accepted webhook line", rec)
		}
	}
	log, _ := os.ReadFile(s.log)
	if !regexp.MustCompile(`Request from 127\.0\.0\.1,scheme=https,path=/\n`).Match(log) {
		t.Errorf("log lacks the HTTPS request:\n%s", log)
	}
}

func TestServeWebhookUsage(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("t"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--http", "127.0.0.1:0", "--webhook-token", "t", "--webhook-token-file", tokenFile}, exitUsage, "not both"},
		{[]string{"--http", "127.0.0.1:0", "--http-path", "/healthz"}, exitUsage, "--http-path"},
		{[]string{"--http", "127.0.0.1:0", "--max-request-bytes", "lots"}, exitUsage, "--max-request-bytes"},
		{[]string{"--http", "127.0.0.1:0", "--input-memory", "64MiB"}, exitUsage, "--input-memory (67108864 bytes) must be at least twice --max-request-bytes"},
		{[]string{"--http", "127.0.0.1:0", "--input-memory", "0"}, exitUsage, "input-memory"},
		{[]string{"--http", "127.0.0.1:0", "--webhook-token-file", empty}, exitOperational, "is empty"},
		{[]string{"--http", "127.0.0.1:0", "--webhook-token-file", filepath.Join(dir, "missing")}, exitOperational, "webhook token"},
	} {
		args := append([]string{"serve", "--maildir", filepath.Join(dir, "Maildir")}, tt.args...)
		r := runBinary(t, append(args, sampleFlags()...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tt.args, r.code, tt.code, tt.want, r.stderr)
		}
	}
}

// serve warns at start-up when the webhook listens beyond loopback without
// a token: anyone who can reach it can then post messages.
func TestServeWebhookWarnsWithoutToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("tok-7f3a9c\n"), 0o600)
	for _, tt := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--http", "0.0.0.0:0"}, true},
		{[]string{"--http", "0.0.0.0:0", "--webhook-token-file", tokenFile}, false},
		{[]string{"--http", "127.0.0.1:0"}, false},
	} {
		s := startServe(t, t.TempDir(), tt.args...)
		s.webhookAddr(t)
		s.stop(t)
		log := s.ownLog()
		if got := bytes.Contains(log, []byte("WARN  webhook: --http listens beyond loopback without a webhook token")); got != tt.warn {
			t.Errorf("%v: warning %v, want %v\n%s", tt.args, got, tt.warn, log)
		}
	}
}
