package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/internal/metrics"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const lookupTestToken = "lk-7c2e9a.Zq+/=="

// newTestLookup returns the lookup API over a certificate folder holding
// bob@example.com's certificate, for lookupTestToken.
func newTestLookup(t *testing.T) *lookup.Handler {
	t.Helper()
	dir := t.TempDir()
	storeTestCert(t, dir, "bob@example.com")
	store, err := output.ReadCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := lookup.NewHandler(output.FolderReader{Store: store}, lookup.Options{Token: lookupTestToken})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func lookupRequest(h http.Handler, method, target, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "198.51.100.7:50000"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLookupFlags(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		return path
	}
	for _, tt := range []struct {
		name  string
		flags lookupFlags
		want  string
		err   string // "": no error
		usage bool
	}{
		{"off", lookupFlags{}, "", "", false},
		{"token", lookupFlags{token: "abc-123"}, "abc-123", "", false},
		{"file, trimmed", lookupFlags{tokenFile: file("ok", "  abc+/=\n")}, "abc+/=", "", false},
		{"both", lookupFlags{token: "a", tokenFile: file("both", "b")}, "", "not both", true},
		{"token with a space", lookupFlags{token: "a b"}, "", "--lookup-token", true},
		{"only padding", lookupFlags{token: "=="}, "", "--lookup-token", true},
		{"empty file", lookupFlags{tokenFile: file("empty", " \n")}, "", "is empty", false},
		{"missing file", lookupFlags{tokenFile: filepath.Join(dir, "missing")}, "", "lookup token", false},
		{"file with a quote", lookupFlags{tokenFile: file("quote", `a"b`)}, "", "lookup token file", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.flags.load()
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("load = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var usage usageError
			if err == nil || !strings.Contains(err.Error(), tt.err) || errors.As(err, &usage) != tt.usage {
				t.Fatalf("load error %v, want one with %q (usage error: %v)", err, tt.err, tt.usage)
			}
		})
	}
}

// The --http listener routes /certs/ to the lookup and /metrics to the
// metrics, when they are on, both for the lookup token's holders alone;
// everything else, and those paths when they are off, to the webhook.
func TestHTTPRoutes(t *testing.T) {
	h := newTestLookup(t)
	spool, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	m := metrics.New(metrics.Options{Logger: discardLogger()})
	webhook, err := ingest.NewWebhook(spool, ingest.WebhookOptions{ObserveResponse: m.WebhookResponse})
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + lookupTestToken
	all := &httpRoutes{lookup: h, metrics: bearerOnly(h, m.Handler())}
	for _, tt := range []struct {
		name   string
		routes *httpRoutes
		method string
		path   string
		auth   string
		status int
		body   string // in the answer
	}{
		{"lookup", &httpRoutes{lookup: h}, "GET", "/certs/bob@example.com", bearer, 200, "BEGIN CERTIFICATE"},
		{"lookup off", &httpRoutes{}, "GET", "/certs/bob@example.com", bearer, 404, lookupOffAnswer},
		{"lookup off, no routes", nil, "GET", "/certs/bob@example.com", bearer, 404, lookupOffAnswer},
		{"/certs itself", &httpRoutes{lookup: h}, "GET", "/certs", bearer, 404, `{"message":"Not Found"}`},
		{"metrics", all, "GET", "/metrics", bearer, 200, "certharvest_certificates_stored_total"},
		{"metrics without a token", all, "GET", "/metrics", "", 401, "bearer token is required"},
		{"metrics with another token", all, "GET", "/metrics", "Bearer " + lookupTestToken + "x", 401, "bearer token is required"},
		{"metrics with a webhook-style header", all, "GET", "/metrics", lookupTestToken, 401, "bearer token is required"},
		{"metrics posted", all, "POST", "/metrics", bearer, 405, "Method Not Allowed"},
		{"metrics elsewhere", &httpRoutes{lookup: h}, "GET", "/metrics", bearer, 404, `{"message":"Not Found"}`},
		{"metrics without a lookup", &httpRoutes{}, "GET", "/metrics", "", 404, `{"message":"Not Found"}`},
		{"health", all, "GET", "/healthz", "", 200, `{"message":"ok"}`},
		{"webhook", all, "POST", "/", bearer, 400, "Content-Type"},
		{"other path", all, "GET", "/certsx/bob@example.com", bearer, 404, "Not Found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := lookupRequest(tt.routes.mux(webhook), tt.method, tt.path, tt.auth)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.body)
			}
			if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// lookupGet fetches a lookup URL with a token ("" for none).
func lookupGet(t *testing.T, client *http.Client, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// The built binary, with --http and a lookup token file: a message posted
// to the webhook is harvested, its certificate is then served at
// /certs/ADDRESS to a client with the token, and /metrics counts it, for
// that client alone.
func TestServeLookupAndMetrics(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "lookup-token")
	os.WriteFile(tokenFile, []byte("lk-5e1f0c9d\n"), 0o600)
	s := startServe(t, dir, "--http", "127.0.0.1:0", "--lookup-token-file", tokenFile)
	base := "http://" + s.webhookAddr(t)
	client := &http.Client{Timeout: 30 * time.Second}
	const addr = "rsa.detached@example.com"

	if code, _, body := lookupGet(t, client, base+"/certs/"+addr, "lk-5e1f0c9d"); code != 404 {
		t.Errorf("before the message: %d %s, want 404", code, body)
	}
	body := sparkPostPayload(t, relayed{file: "01-ok-rsa-detached.eml", base64: true, rcptTo: "certs@inbound.example.org"})
	if code, resp := postRelay(t, client, base+"/", "", body); code != 200 {
		t.Fatalf("relay POST: %d %s", code, resp)
	}
	s.waitDrained(t, 30*time.Second)
	waitLines(t, s.report, 1)
	recs := readReport(t, s.report)
	if len(recs) != 1 || recs[0].Reason != verify.ReasonOK {
		t.Fatalf("report %+v, want one accepted line", recs)
	}

	certFile, err := os.ReadFile(filepath.Join(s.certs, addr+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	code, hdr, pemBody := lookupGet(t, client, base+"/certs/RSA.Detached@Example.com", "lk-5e1f0c9d")
	if code != 200 || hdr.Get("Content-Type") != "application/pem-certificate-chain" || !bytes.Equal(pemBody, certFile) {
		t.Errorf("lookup: %d %s\n%s\nwant the certificate file\n%s", code, hdr.Get("Content-Type"), pemBody, certFile)
	}
	code, _, jsonBody := lookupGet(t, client, base+"/certs/"+addr+"?format=json", "lk-5e1f0c9d")
	var info lookup.StoredCert
	if err := json.Unmarshal(jsonBody, &info); code != 200 || err != nil || info.Address != addr ||
		info.CertInfo == nil || info.SHA256 != recs[0].Cert.SHA256 || info.File != recs[0].CertFile {
		t.Errorf("lookup as JSON: %d %s (%v), want the report's certificate", code, jsonBody, err)
	}
	if code, hdr, _ := lookupGet(t, client, base+"/certs/"+addr, ""); code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("without the token: %d %q, want 401 with a Bearer challenge", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _ := lookupGet(t, client, base+"/certs/"+addr, "lk-wrong"); code != 401 {
		t.Errorf("with a wrong token: %d, want 401", code)
	}
	if code, _, _ := lookupGet(t, client, base+"/healthz", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}

	for _, token := range []string{"", "lk-wrong"} {
		if code, hdr, body := lookupGet(t, client, base+"/metrics", token); code != 401 ||
			!strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || bytes.Contains(body, []byte("certharvest_")) {
			t.Errorf("/metrics with token %q: %d %q %s, want 401 with a Bearer challenge", token, code, hdr.Get("WWW-Authenticate"), body)
		}
	}
	code, _, metricsBody := lookupGet(t, client, base+"/metrics", "lk-5e1f0c9d")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`certharvest_messages_total{outcome="accepted",reason="ok",source="webhook"} 1`,
		`certharvest_webhook_responses_total{code="200"} 1`,
		`certharvest_certificates_stored_total{action="stored"} 1`,
		`certharvest_pipeline_duration_seconds_count{source="webhook"} 1`,
		`certharvest_spool_messages 0`,
		`certharvest_spool_oldest_message_age_seconds 0`,
	} {
		if !bytes.Contains(metricsBody, []byte("\n"+want+"\n")) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The lookup's answers are not the webhook's.
	if bytes.Contains(metricsBody, []byte(`certharvest_webhook_responses_total{code="404"}`)) ||
		bytes.Contains(metricsBody, []byte(`certharvest_webhook_responses_total{code="401"}`)) {
		t.Error("lookup answers counted as webhook responses")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metricsBody)
	}
	s.stop(t)
	log, _ := os.ReadFile(s.log)
	if !regexp.MustCompile(`webhook listening on 127\.0\.0\.1:\d+ .*lookup=true metrics=bearer`).Match(log) {
		t.Errorf("log lacks the listener's endpoints:\n%s", log)
	}
	if bytes.Contains(log, []byte("lk-5e1f0c9d")) {
		t.Error("the log shows the token")
	}
}

var metricsListeningRE = regexp.MustCompile(`metrics listening on (\S+)`)

// --metrics serves /metrics on a listener of its own, and then not on
// --http; messages dropped into new/ are counted with source maildir; with
// no lookup token, /certs/ is not served.
func TestServeMetricsListener(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--metrics", "127.0.0.1:0", "--http", "127.0.0.1:0")
	s.waitLog(t, "metrics listening on ")
	data, _ := os.ReadFile(s.log)
	m := metricsListeningRE.FindSubmatch(data)
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", data)
	}
	metricsURL := "http://" + string(m[1]) + "/metrics"
	client := &http.Client{Timeout: 30 * time.Second}

	msgs := sampleMessages(t)
	deliver(t, s.maildir, "1780308000.M1P1Q1.test", msgs["01-ok-rsa-detached.eml"])
	deliver(t, s.maildir, "1780308000.M1P1Q2.test", msgs["26-cert-untrusted.eml"])
	s.waitDrained(t, 30*time.Second)
	waitLines(t, s.report, 2)

	code, hdr, body := lookupGet(t, client, metricsURL, "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`certharvest_messages_total{outcome="accepted",reason="ok",source="maildir"} 1`,
		`certharvest_messages_total{outcome="rejected",reason="cert_untrusted",source="maildir"} 1`,
		`certharvest_pipeline_duration_seconds_count{source="maildir"} 2`,
		`certharvest_certificates_stored_total{action="stored"} 1`,
	} {
		if !bytes.Contains(body, []byte("\n"+want+"\n")) {
			t.Errorf("/metrics lacks %s\n%s", want, body)
		}
	}
	if !bytes.Contains(body, []byte("\ngo_goroutines ")) || !bytes.Contains(body, []byte("\nprocess_cpu_seconds_total ")) {
		t.Error("/metrics lacks the Go and process collectors")
	}
	if code, _, _ := lookupGet(t, client, strings.TrimSuffix(metricsURL, "metrics")+"other", ""); code != 404 {
		t.Errorf("another path on the metrics listener: %d, want 404", code)
	}
	if code, _, _ := lookupGet(t, client, "http://"+s.webhookAddr(t)+"/metrics", ""); code != 404 {
		t.Errorf("/metrics on --http with --metrics: %d, want 404", code)
	}
	// Without a lookup token there is no lookup, and the 404 says so.
	if code, _, body := lookupGet(t, client, "http://"+s.webhookAddr(t)+"/certs/rsa.detached@example.com", "x"); code != 404 ||
		strings.TrimSpace(string(body)) != lookupOffAnswer {
		t.Errorf("/certs/ without a lookup token: %d %s, want a 404 saying the lookup API is off", code, body)
	}
	s.stop(t)
}

// Without a lookup token the --http listener does not serve /metrics at
// all: whoever posts a message must not read its verdict off
// certharvest_messages_total. The answer is the webhook's 404, as for any
// path it does not know.
func TestServeMetricsNeedLookupToken(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--http", "127.0.0.1:0")
	base := "http://" + s.webhookAddr(t)
	client := &http.Client{Timeout: 30 * time.Second}
	body := sparkPostPayload(t, relayed{file: "26-cert-untrusted.eml", base64: true, rcptTo: "certs@inbound.example.org"})
	if code, resp := postRelay(t, client, base+"/", "", body); code != 200 {
		t.Fatalf("relay POST: %d %s", code, resp)
	}
	s.waitDrained(t, 30*time.Second)
	waitLines(t, s.report, 1)
	for _, token := range []string{"", "anything"} {
		code, _, got := lookupGet(t, client, base+"/metrics", token)
		if code != 404 || strings.TrimSpace(string(got)) != `{"message":"Not Found"}` {
			t.Errorf("/metrics with token %q: %d %s, want the webhook's 404", token, code, got)
		}
	}
	s.stop(t)
	log, _ := os.ReadFile(s.log)
	if !regexp.MustCompile(`webhook listening on 127\.0\.0\.1:\d+ .*lookup=false metrics=off`).Match(log) ||
		!bytes.Contains(log, []byte("metrics are not served")) {
		t.Errorf("log does not say that the metrics are off:\n%s", log)
	}
}

func TestServeLookupUsage(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("t0k"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--http", "127.0.0.1:0", "--lookup-token", "t0k", "--lookup-token-file", tokenFile}, exitUsage, "not both"},
		{[]string{"--lookup-token-file", tokenFile}, exitUsage, "give --http too"},
		{[]string{"--http", "127.0.0.1:0", "--lookup-token", "t 0k"}, exitUsage, "--lookup-token"},
		{[]string{"--http", "127.0.0.1:0", "--lookup-token-file", empty}, exitOperational, "is empty"},
		{[]string{"--http", "127.0.0.1:0", "--http-path", "/metrics"}, exitUsage, "--http-path"},
		{[]string{"--http", "127.0.0.1:0", "--http-path", "/certs/relay"}, exitUsage, "--http-path"},
		{[]string{"--metrics", "256.0.0.1:0"}, exitOperational, "metrics"},
	} {
		args := append([]string{"serve", "--maildir", filepath.Join(dir, "Maildir"), "--certs", filepath.Join(dir, "certs"),
			"--report", filepath.Join(dir, "report.jsonl")}, tt.args...)
		r := runBinary(t, append(args, sampleFlags()...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tt.args, r.code, tt.code, tt.want, r.stderr)
		}
	}
}

// The lookup's "expired" is judged by the pipeline's clock, which --at
// sets, not by the wall clock: served by the built binary with --at before
// the certificate's end, a certificate that ended in 2021 is not expired.
func TestServeLookupExpiredFollowsAt(t *testing.T) {
	dir := t.TempDir()
	cert := selfSigned(t, &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "Old"},
		EmailAddresses: []string{"old@example.com"},
		NotBefore:      time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)})
	tokenFile := filepath.Join(dir, "lookup-token")
	os.WriteFile(tokenFile, []byte("lk-at-test\n"), 0o600)
	client := &http.Client{Timeout: 30 * time.Second}

	for i, tt := range []struct {
		at      string
		expired bool
	}{
		{"2020-06-01T00:00:00Z", false},
		{"2021-06-01T00:00:00Z", true},
	} {
		runDir := filepath.Join(dir, strconv.Itoa(i))
		store, err := output.OpenCertStore(filepath.Join(runDir, "certs"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Store(context.Background(), "old@example.com", cert); err != nil {
			t.Fatal(err)
		}
		store.Close()
		// The last --at given wins over sampleFlags' own.
		s := startServe(t, runDir, "--http", "127.0.0.1:0", "--lookup-token-file", tokenFile, "--at", tt.at)
		code, _, body := lookupGet(t, client, "http://"+s.webhookAddr(t)+"/certs/old@example.com?format=json", "lk-at-test")
		var info lookup.StoredCert
		if err := json.Unmarshal(body, &info); code != 200 || err != nil || info.Expired != tt.expired {
			t.Errorf("--at %s: %d %s (%v), want expired %v", tt.at, code, body, err, tt.expired)
		}
		s.stop(t)
	}
}
