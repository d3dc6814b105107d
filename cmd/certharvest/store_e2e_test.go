package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

// The end-to-end test of several instances on one PostgreSQL: two
// `serve` processes, each with its own spool, share one store. The test
// corpus, and signed messages of addresses of their own, are delivered
// half to each, over SMTP and the relay webhook, by senders that retry as
// an MTA does (a delivery not acknowledged is made again, as a new
// attempt). Two certificates for one address race, one to each instance.
// Mid-burst, one instance is killed with SIGKILL and started again, and
// PostgreSQL is stopped (until /healthz says "store unavailable") and
// started again. Then every acknowledged delivery has exactly one verdict
// row (and no delivery two), and the certificates are those of a scan by
// one instance of the same messages: store export writes the same
// <address>.crt files, byte for byte.
//
// It takes 20 to 60 s on a loaded 2-core machine: it runs when CI=true or
// CERTHARVEST_E2E=1, and is skipped otherwise (and with -short).
func TestStoreTwoInstances(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("CERTHARVEST_E2E") == "" {
		t.Skip("the two-instance end-to-end test runs with CI=true or CERTHARVEST_E2E=1 (20 to 60 s)")
	}
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("-short")
	}
	t.Parallel()
	dir := t.TempDir()
	corpus := newE2ECorpus(t, filepath.Join(dir, "corpus"))

	srv := pgtest.Start(t, pgtest.Options{})
	file := storeFile(t, srv.URL())
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 {
		t.Fatalf("store migrate: exit %d\n%s", r.code, r.stderr)
	}
	start := func(name string) *e2eInstance {
		in := &e2eInstance{name: name, dir: filepath.Join(dir, name)}
		os.MkdirAll(in.dir, 0o755)
		in.start(t, append([]string{"--store-file", file, "--http", "127.0.0.1:0", "--smtp", "127.0.0.1:0",
			"--smtp-domain", "inbound.example.org", "--retry-first", "200ms"}, corpus.flags...))
		return in
	}
	a, b := start("a"), start("b")

	// Half to each instance, every other one over SMTP; the racing
	// certificates first, one to each, at once.
	d := &e2eDeliveries{acked: map[string][]byte{}, byInstance: map[string]int{}}
	var work [4][]e2eMessage // a smtp, a webhook, b smtp, b webhook
	work[1] = append(work[1], corpus.race[0])
	work[3] = append(work[3], corpus.race[1])
	for i, m := range corpus.msgs {
		work[(i%2)*2+(i/2)%2] = append(work[(i%2)*2+(i/2)%2], m)
	}
	total := len(corpus.msgs) + 2
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i, list := range work {
		in, useSMTP := a, i%2 == 0
		if i >= 2 {
			in = b
		}
		wg.Go(func() {
			for _, m := range list {
				if err := d.deliver(in, m, useSMTP); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	// SIGKILL a mid-burst, then start it again on the same spool.
	d.waitAcked(t, a.name, len(work[0])/2)
	a.kill(t)
	time.Sleep(100 * time.Millisecond) // a few deliveries fail meanwhile
	a.start(t, nil)
	// Stop PostgreSQL mid-burst, until b says so, then start it again.
	d.waitAcked(t, b.name, (len(work[2])+len(work[3]))*2/3)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	b.waitHealth(t, 503, "store unavailable")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, in := range []*e2eInstance{a, b} {
		in.svc.waitDrained(t, 60*time.Second)
		in.waitHealth(t, 200, "ok")
		in.svc.stop(t)
	}
	t.Logf("%d messages, %d deliveries acknowledged (%d attempts not), a killed and restarted, PostgreSQL stopped and started",
		total, len(d.acked), d.failed)

	// One verdict row for each acknowledged delivery, none for two.
	rows := verdictAttempts(t, srv.URL())
	for key := range d.acked {
		if rows[key] != 1 {
			t.Errorf("delivery %s: %d verdict rows, want 1", key, rows[key])
		}
	}
	for key, n := range rows {
		if n > 1 {
			t.Errorf("delivery %s: %d verdict rows", key, n)
		}
	}
	if len(rows) < len(d.acked) {
		t.Errorf("%d deliveries have a verdict row, %d were acknowledged", len(rows), len(d.acked))
	}

	// The certificates of one instance scanning the same messages.
	msgs := filepath.Join(dir, "scanned")
	os.MkdirAll(msgs, 0o755)
	for key, data := range d.acked {
		os.WriteFile(filepath.Join(msgs, key+".eml"), data, 0o600)
	}
	folder := filepath.Join(dir, "folder")
	scan := append(append([]string{"scan", "--quiet", "--workers", "1"}, corpus.flags...),
		"--certs", folder, "--report", filepath.Join(dir, "scan.jsonl"), msgs)
	if r := runBinary(t, scan...); r.code != 0 {
		t.Fatalf("scan: exit %d\n%s", r.code, r.stderr)
	}
	export := filepath.Join(dir, "export")
	if r := runBinary(t, "store", "export", "--store-file", file, "--to", export); r.code != 0 {
		t.Fatalf("store export: exit %d\n%s", r.code, r.stderr)
	}
	sameCurrent(t, folder, export)
	race := loadPEM(t, filepath.Join(export, corpus.raceAddr+".crt"))
	if !race.NotBefore.Equal(corpus.raceNewer) {
		t.Errorf("the racing address has the certificate of %s, want the newer, of %s", race.NotBefore, corpus.raceNewer)
	}
}

// e2eCorpus is what the instances are given.
type e2eCorpus struct {
	flags     []string // --trust, --dkim-keys, --at
	msgs      []e2eMessage
	race      [2]e2eMessage // two certificates for raceAddr, the second newer
	raceAddr  string
	raceNewer time.Time
}

// e2eMessage is a message to deliver: n names it in the envelope.
type e2eMessage struct {
	n    int
	data []byte
}

// newE2ECorpus makes the test corpus (every case but the empty message,
// which SMTP cannot carry), messages of 40 addresses of their own, and
// the racing pair, and writes the trust bundle and DKIM keys under dir.
func newE2ECorpus(t *testing.T, dir string) *e2eCorpus {
	t.Helper()
	f, err := testcorpus.New()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	trust, keys := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "dkim-keys.txt")
	os.WriteFile(trust, f.TrustPEM(), 0o644)
	os.WriteFile(keys, f.KeysFile(), 0o644)
	c := &e2eCorpus{flags: []string{"--trust", trust, "--dkim-keys", keys, "--at", testcorpus.At.Format(time.RFC3339)}}
	add := func(data []byte) {
		if len(data) > 0 {
			c.msgs = append(c.msgs, e2eMessage{n: len(c.msgs) + 2, data: data})
		}
	}
	for _, cc := range f.Cases() {
		add(cc.Data)
	}
	var addrs []string
	for i := range 40 {
		addrs = append(addrs, testcorpus.BenchAddress(i))
	}
	minted, err := f.SignedMessages(addrs, testcorpus.ECIssuer())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range minted {
		add(m)
	}
	c.raceAddr = "race@" + testcorpus.DKIMDomains[0]
	c.raceNewer = testcorpus.NotBefore.Add(48 * time.Hour)
	for i, nb := range []time.Time{testcorpus.NotBefore.Add(24 * time.Hour), c.raceNewer} {
		data, err := f.SignedMessage(c.raceAddr, testcorpus.WithNotBefore(nb), testcorpus.ECIssuer())
		if err != nil {
			t.Fatal(err)
		}
		c.race[i] = e2eMessage{n: i, data: data}
	}
	return c
}

// e2eInstance is one serve, which may be killed and started again.
type e2eInstance struct {
	name, dir string
	args      []string

	mu         sync.Mutex
	svc        *service
	http, smtp string // its listeners' addresses
}

// start starts the instance, with args (nil: those of the last start).
func (in *e2eInstance) start(t *testing.T, args []string) {
	t.Helper()
	if args != nil {
		in.args = args
	}
	svc := startServe(t, in.dir, in.args...)
	http, smtp := svc.webhookAddr(t), svc.smtpAddr(t)
	in.mu.Lock()
	in.svc, in.http, in.smtp = svc, http, smtp
	in.mu.Unlock()
}

// kill kills the instance with SIGKILL.
func (in *e2eInstance) kill(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	svc := in.svc
	in.mu.Unlock()
	svc.cmd.Process.Kill()
	<-svc.exited
}

// addrs returns the listeners' addresses now.
func (in *e2eInstance) addrs() (http, smtp string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.http, in.smtp
}

// waitHealth waits until /healthz answers code with a body holding want.
func (in *e2eInstance) waitHealth(t *testing.T, code int, want string) {
	t.Helper()
	addr, _ := in.addrs()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := healthz(t, addr)
		if got == code && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz answers %d %s, want %d %s", in.name, got, body, code, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eDeliveries records the deliveries acknowledged, by key n.attempt.
type e2eDeliveries struct {
	mu         sync.Mutex
	acked      map[string][]byte // the bytes delivered
	byInstance map[string]int
	failed     int
}

// deliver delivers m to in until a delivery is acknowledged: each attempt
// is a message of its own (an X-E2E-Attempt field, and the envelope
// recipient e2e-N.ATTEMPT@inbound.example.org), as an MTA's retry is a
// new transaction.
func (d *e2eDeliveries) deliver(in *e2eInstance, m e2eMessage, useSMTP bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		key := fmt.Sprintf("%d.%d", m.n, attempt)
		data := withAttempt(m.data, key)
		rcpt := "e2e-" + key + "@inbound.example.org"
		httpAddr, smtpAddr := in.addrs()
		var err error
		if useSMTP {
			data = smtpCRLF(data)
			err = sendSMTPTo(smtpAddr, rcpt, data)
		} else {
			err = postWebhook(httpAddr, rcpt, data)
		}
		d.mu.Lock()
		if err == nil {
			d.acked[key] = data
			d.byInstance[in.name]++
		} else {
			d.failed++
		}
		d.mu.Unlock()
		if err == nil {
			return nil
		}
		if errors.Is(err, errRefused) || time.Now().After(deadline) {
			return fmt.Errorf("delivering message %d to %s: %w", m.n, in.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAcked waits until n deliveries to the instance are acknowledged.
func (d *e2eDeliveries) waitAcked(t *testing.T, instance string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d.mu.Lock()
		got := d.byInstance[instance]
		d.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d deliveries acknowledged, waiting for %d", instance, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// withAttempt puts an X-E2E-Attempt field at the top of a message, with
// the message's own line ending: it is signed by neither DKIM nor S/MIME.
func withAttempt(data []byte, key string) []byte {
	eol := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		eol = "\r\n"
	}
	return append([]byte("X-E2E-Attempt: "+key+eol), data...)
}

// errRefused is a delivery refused for good (5xx, 4xx on HTTP), which a
// sender would not try again.
var errRefused = errors.New("refused")

// sendSMTPTo delivers one message over SMTP.
func sendSMTPTo(addr, rcpt string, data []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			return fmt.Errorf("%w: %w", errRefused, err)
		}
		return err
	}
	c.Quit()
	return nil
}

// postWebhook delivers one message as SparkPost relays it (base64).
func postWebhook(addr, rcpt string, data []byte) error {
	body, _ := json.Marshal([]any{map[string]any{"msys": map[string]any{"relay_message": map[string]any{
		"content":  map[string]any{"email_rfc822": base64.StdEncoding.EncodeToString(data), "email_rfc822_is_base64": true},
		"msg_from": "sender@example.net", "rcpt_to": rcpt, "protocol": "smtp", "customer_id": "1",
	}}}})
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post("http://"+addr+"/", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 429:
		return fmt.Errorf("%w: webhook: %d %s", errRefused, resp.StatusCode, msg)
	case resp.StatusCode != 200:
		return fmt.Errorf("webhook: %d %s", resp.StatusCode, msg)
	}
	return nil
}

// verdictAttempts counts the verdict rows of each delivery, by the
// envelope recipient in the row's line.
func verdictAttempts(t *testing.T, url string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT line::text FROM verdicts")
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`e2e-(\d+\.\d+)@inbound\.example\.org`)
	counts := map[string]int{}
	for _, line := range lines {
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("a verdict row of no delivery: %s", line)
			continue
		}
		counts[m[1]]++
	}
	return counts
}

// sameCurrent fails unless the folders hold the same current
// certificates (<address>.crt), byte for byte, and every certificate in
// got's history is older than its address's current one. (The history
// depends on the order the certificates came in: a newer one first keeps
// the older out of it.)
func sameCurrent(t *testing.T, want, got string) {
	t.Helper()
	current := func(dir string) map[string][]byte {
		files, _ := filepath.Glob(filepath.Join(dir, "*.crt"))
		m := map[string][]byte{}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m[filepath.Base(f)] = data
		}
		return m
	}
	w, g := current(want), current(got)
	if len(w) < 40 {
		t.Errorf("%s holds %d certificates", want, len(w))
	}
	for name, data := range w {
		if !bytes.Equal(g[name], data) {
			t.Errorf("%s: differs, or is missing from the export", name)
		}
	}
	for name := range g {
		if w[name] == nil {
			t.Errorf("%s: in the export, not in the scan's folder", name)
		}
	}
	history, _ := filepath.Glob(filepath.Join(got, "history", "*", "*.crt"))
	for _, h := range history {
		addr := filepath.Base(filepath.Dir(h))
		if cur := g[addr+".crt"]; cur == nil || !loadPEM(t, h).NotBefore.Before(pemCert(t, cur).NotBefore) {
			t.Errorf("%s: not older than the current certificate of %s", h, addr)
		}
	}
}

// loadPEM reads a certificate file.
func loadPEM(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(t, data)
}

func pemCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal(errors.New("not PEM"))
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
