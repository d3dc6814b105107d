// Command loadgen-webhook loads certharvest's SparkPost relay webhook: from
// -c concurrent connections, for -d, it posts realistic single-message relay
// payloads (about 10 KB: a sample message base64-encoded, with the header
// list and text part SparkPost adds) and reports requests per second and the
// latency distribution. Only a 200 counts as acknowledged.
//
//	loadgen-webhook -url http://127.0.0.1:8080/ -c 32 -d 10s
//
// The last line is machine-readable, for scripts/bench-webhook.sh:
//
//	result requests=N acknowledged=N failed=N rps=F p50_ms=F p99_ms=F
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	var (
		url      = flag.String("url", "http://127.0.0.1:8080/", "webhook `URL`")
		conc     = flag.Int("c", 32, "concurrent connections")
		dur      = flag.Duration("d", 10*time.Second, "how long to send")
		sample   = flag.String("sample", "testdata/sample", "sample `folder`: messages/ and expected.tsv (its accepted messages are posted)")
		token    = flag.String("token", "", "X-MessageSystems-Webhook-Token `value`")
		reqLimit = flag.Duration("timeout", 30*time.Second, "timeout of one request")
	)
	flag.Parse()
	payloads, err := buildPayloads(*sample)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-webhook:", err)
		os.Exit(1)
	}
	total := 0
	for _, p := range payloads {
		total += len(p)
	}
	fmt.Printf("webhook load: %s, %d connections for %s, %d payloads of %.1f KB on average\n",
		*url, *conc, *dur, len(payloads), float64(total)/float64(len(payloads))/1000)

	client := &http.Client{
		Timeout: *reqLimit,
		Transport: &http.Transport{
			MaxIdleConns:        *conc,
			MaxIdleConnsPerHost: *conc,
			MaxConnsPerHost:     *conc,
			DisableCompression:  true,
		},
	}
	results := make([]workerResult, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*dur)
	for i := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = work(stop, client, *url, *token, payloads, i)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var (
		lat      []time.Duration
		statuses = map[string]int{}
		ack      int
	)
	for _, r := range results {
		lat = append(lat, r.latencies...)
		ack += r.acked
		for k, v := range r.statuses {
			statuses[k] += v
		}
	}
	slices.Sort(lat)
	n := len(lat)
	rps := float64(ack) / elapsed.Seconds()
	fmt.Printf("requests:      %d in %.2fs\n", n, elapsed.Seconds())
	fmt.Printf("acknowledged:  %d (%.0f/s)\n", ack, rps)
	var keys []string
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "200" {
			fmt.Printf("  not acknowledged: %s x %d\n", k, statuses[k])
		}
	}
	if n > 0 {
		fmt.Printf("latency:       p50 %s  p90 %s  p99 %s  max %s\n",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[n-1].Round(time.Microsecond))
	}
	fmt.Printf("result requests=%d acknowledged=%d failed=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f\n",
		n, ack, n-ack, rps, ms(pct(lat, 50)), ms(pct(lat, 99)))
}

type workerResult struct {
	latencies []time.Duration
	acked     int
	statuses  map[string]int
}

// work posts payloads one after the other until stop. The requests in
// flight then are finished, not cut: the service may have spooled them, and
// the bench counts every acknowledged one.
func work(stop time.Time, client *http.Client, url, token string, payloads [][]byte, offset int) workerResult {
	res := workerResult{statuses: map[string]int{}}
	for i := offset; time.Now().Before(stop); i++ {
		body := payloads[i%len(payloads)]
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "SparkPost")
		if token != "" {
			req.Header.Set("X-MessageSystems-Webhook-Token", token)
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			res.statuses["error: "+shortErr(err)]++
			res.latencies = append(res.latencies, time.Since(t0))
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.latencies = append(res.latencies, time.Since(t0))
		res.statuses[fmt.Sprint(resp.StatusCode)]++
		if resp.StatusCode == http.StatusOK {
			res.acked++
		}
	}
	return res
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// buildPayloads makes one relay payload per accepted sample message, the
// way SparkPost sends it.
func buildPayloads(sample string) ([][]byte, error) {
	tsv, err := os.ReadFile(filepath.Join(sample, "expected.tsv"))
	if err != nil {
		return nil, err
	}
	var payloads [][]byte
	for i, line := range strings.Split(strings.TrimSpace(string(tsv)), "\n")[1:] {
		f := strings.Split(line, "\t")
		if len(f) < 2 || f[1] != "ok" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(sample, f[0]))
		if err != nil {
			return nil, err
		}
		p, err := payload(raw, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f[0], err)
		}
		payloads = append(payloads, p)
	}
	if len(payloads) == 0 {
		return nil, fmt.Errorf("no accepted message in %s/expected.tsv", sample)
	}
	return payloads, nil
}

// textPart stands for the text part SparkPost extracts: the body's first
// kilobyte.
func textPart(body []byte) string {
	return string(body[:min(len(body), 1024)])
}

func payload(raw []byte, i int) ([]byte, error) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	text, _ := io.ReadAll(tp.R)
	from, err := mail.ParseAddress(hdr.Get("From"))
	if err != nil {
		return nil, err
	}
	var headers []map[string]string
	for k, vs := range hdr {
		for _, v := range vs {
			headers = append(headers, map[string]string{k: v})
		}
	}
	const rcpt = "certs@inbound.example.org"
	item := map[string]any{"msys": map[string]any{"relay_message": map[string]any{
		"content": map[string]any{
			"email_rfc822":           base64.StdEncoding.EncodeToString(raw),
			"email_rfc822_is_base64": true,
			"headers":                headers,
			"html":                   "",
			"subject":                hdr.Get("Subject"),
			"text":                   textPart(text),
			"to":                     []string{rcpt},
		},
		"customer_id":   "1337",
		"friendly_from": from.String(),
		"msg_from":      from.Address,
		"protocol":      "smtp",
		"rcpt_to":       rcpt,
		"webhook_id":    fmt.Sprintf("2049360837609%03d", i),
	}}}
	return json.Marshal([]any{item})
}
