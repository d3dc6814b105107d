package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// Every signer kind of the corpus (RSASSA-PSS, Ed25519, ECDSA P-384 and
// P-521, in every S/MIME form), its altered messages and the weak ones get
// their verdict from each live input into one running service, in-process:
// the SMTP listener, the relay webhook and a Maildir delivery (a file
// renamed into new/, as an MTA does), all into the spool serve's engine
// takes its messages from.
func TestServeSignerKinds(t *testing.T) {
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	var cases []testcorpus.Case
	for _, c := range f.Cases() {
		for _, k := range f.SignerKinds() {
			if strings.HasPrefix(c.Name, "ok-"+k.Name+"-") || c.Name == "signature-invalid-"+k.Name {
				cases = append(cases, c)
			}
		}
		if strings.Contains(c.Name, "-weak-") {
			cases = append(cases, c)
		}
	}
	// Six forms and an altered message per kind, four weak messages.
	if n := 7*len(f.SignerKinds()) + 4; len(cases) != n {
		t.Fatalf("%d signer cases in the corpus, want %d", len(cases), n)
	}
	lookup := func(_ context.Context, name string) ([]string, error) { return f.LookupTXT(name) }
	s, spool := newTestServer(t, f, lookup, serveOptions(2, 64, time.Hour, time.Minute))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := ingest.NewSMTPServer(spool, ingest.SMTPOptions{Addr: "127.0.0.1:0", Domains: []string{"inbound.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hook, err := ingest.NewWebhook(spool, ingest.WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(hook)
	defer web.Close()

	client, err := smtp.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var relay []any
	byFrom := map[string]testcorpus.Case{}
	for i, c := range cases {
		from := headerFrom(t, c.Data)
		byFrom[from] = c
		if err := client.SendMail(from, []string{"certs@inbound.example.org"}, bytes.NewReader(c.Data)); err != nil {
			t.Fatalf("%s over SMTP: %v", c.Name, err)
		}
		content := map[string]any{"email_rfc822": string(c.Data)}
		if i%2 == 0 {
			content = map[string]any{"email_rfc822": base64.StdEncoding.EncodeToString(c.Data), "email_rfc822_is_base64": true}
		}
		relay = append(relay, map[string]any{"msys": map[string]any{"relay_message": map[string]any{
			"content": content, "msg_from": from, "rcpt_to": "certs@inbound.example.org", "protocol": "smtp",
		}}})
		tmp := filepath.Join(spool.Dir(), "tmp", c.Name)
		if err := os.WriteFile(tmp, c.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(spool.Dir(), "new", c.Name)); err != nil {
			t.Fatal(err)
		}
	}
	client.Quit()
	body, err := json.Marshal(relay)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(web.URL+"/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("relay POST: %s", resp.Status)
	}

	go s.watcher.Run(ctx)
	done := make(chan struct{})
	go func() { s.process(context.Background()); close(done) }()
	want := 3 * len(cases)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if archived(t, spool.Dir()) >= want {
			break
		}
	}
	cancel()
	<-done
	s.report.Close()
	seen := map[string]int{}
	for _, rec := range readReport(t, filepath.Join(filepath.Dir(spool.Dir()), "report.jsonl")) {
		c, ok := byFrom[rec.From]
		if !ok {
			t.Errorf("a report line from %q (%s): %s %s", rec.From, rec.Source, rec.Reason, rec.Detail)
			continue
		}
		seen[rec.Source]++
		if string(rec.Reason) != c.Reason {
			t.Errorf("%s from %s: %s (%s), want %s", c.Name, rec.Source, rec.Reason, rec.Detail, c.Reason)
		}
	}
	for _, source := range []string{"smtp", "webhook", "maildir"} {
		if seen[source] != len(cases) {
			t.Errorf("%d report lines from %s, want %d (all: %v)", seen[source], source, len(cases), seen)
		}
	}
}

// headerFrom returns the From address of a corpus message, lower case.
func headerFrom(t *testing.T, msg []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(msg), "\r\n") {
		if v, ok := strings.CutPrefix(line, "From: "); ok {
			return strings.ToLower(strings.TrimSpace(v))
		}
		if line == "" {
			break
		}
	}
	t.Fatalf("no From in %.200q", msg)
	return ""
}

// archived counts the messages in the spool's cur/.
func archived(t *testing.T, spool string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(spool, "cur"))
	if err != nil {
		t.Fatal(fmt.Errorf("reading cur/: %w", err))
	}
	return len(entries)
}
