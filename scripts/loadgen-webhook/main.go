// Command loadgen-webhook loads certharvest's SparkPost relay webhook: from
// -c concurrent connections, for -d, it posts realistic single-message relay
// payloads (about 10 KB: a sample message base64-encoded, with the header
// list and text part SparkPost adds) and reports requests per second and the
// latency distribution. Only a 200 counts as acknowledged.
//
//	loadgen-webhook -url http://127.0.0.1:8080/ -c 32 -d 10s
//
// That is a closed loop: each connection sends its next request when the
// last is answered, so a slow service is sent less, and its latency under
// a given load is hidden. With -rate R it is an open loop instead: a
// request is started every 1/R seconds whatever the answers, on up to -c
// connections, and each latency is counted from the time its request was
// due, so a request that had to wait for a free connection counts its
// wait (no coordinated omission). A request due while all -c are busy
// waits for one; the result says how many were late by more than 10 ms.
//
//	loadgen-webhook -url http://127.0.0.1:8080/ -c 256 -d 10s -rate 1000
//
// The last line is machine-readable, for scripts/bench-webhook.sh:
//
//	result requests=N acknowledged=N failed=N rps=F p50_ms=F p99_ms=F late=N
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
		rate     = flag.Float64("rate", 0, "open loop: start this many requests per second (0: closed loop, -c connections back to back)")
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
	mode := "closed loop"
	if *rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f requests/s", *rate)
	}
	fmt.Printf("webhook load: %s, %s, %d connections for %s, %d payloads of %.1f KB on average\n",
		*url, mode, *conc, *dur, len(payloads), float64(total)/float64(len(payloads))/1000)

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
	var due chan time.Time
	if *rate > 0 {
		due = make(chan time.Time, 1<<16)
		go schedule(due, start, stop, *rate)
	}
	for i := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if due != nil {
				results[i] = workOpen(due, client, *url, *token, payloads, i, *conc)
			} else {
				results[i] = work(stop, client, *url, *token, payloads, i)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var (
		lat      []time.Duration
		statuses = map[string]int{}
		ack      int
		late     int
	)
	for _, r := range results {
		lat = append(lat, r.latencies...)
		ack += r.acked
		late += r.late
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
	if due != nil {
		fmt.Printf("started late:  %d of %d (more than 10 ms after due: all %d connections were busy)\n", late, n, *conc)
	}
	if n > 0 {
		fmt.Printf("latency:       p50 %s  p90 %s  p99 %s  max %s\n",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[n-1].Round(time.Microsecond))
	}
	fmt.Printf("result requests=%d acknowledged=%d failed=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f late=%d\n",
		n, ack, n-ack, rps, ms(pct(lat, 50)), ms(pct(lat, 99)), late)
}

type workerResult struct {
	latencies []time.Duration
	acked     int
	statuses  map[string]int
	// late counts the requests of the open loop started more than 10 ms
	// after they were due.
	late int
}

// schedule sends on due the time each request of the open loop is due:
// one every 1/rate seconds from start until stop, then closes it.
func schedule(due chan<- time.Time, start, stop time.Time, rate float64) {
	defer close(due)
	interval := time.Duration(float64(time.Second) / rate)
	for t := start; t.Before(stop); t = t.Add(interval) {
		if d := time.Until(t); d > 0 {
			time.Sleep(d)
		}
		due <- t
	}
}

// workOpen sends a request for each due time it takes from due, and counts
// its latency from that time.
func workOpen(due <-chan time.Time, client *http.Client, url, token string, payloads [][]byte, offset, stride int) workerResult {
	res := workerResult{statuses: map[string]int{}}
	i := offset
	for t := range due {
		if time.Since(t) > 10*time.Millisecond {
			res.late++
		}
		status, err := post(client, url, token, payloads[i%len(payloads)])
		res.latencies = append(res.latencies, time.Since(t))
		res.record(status, err)
		i += stride
	}
	return res
}

// post sends one relay payload and reads the answer.
func post(client *http.Client, url, token string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SparkPost")
	if token != "" {
		req.Header.Set("X-MessageSystems-Webhook-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// record counts one answer.
func (res *workerResult) record(status int, err error) {
	if err != nil {
		res.statuses["error: "+shortErr(err)]++
		return
	}
	res.statuses[fmt.Sprint(status)]++
	if status == http.StatusOK {
		res.acked++
	}
}

// work posts payloads one after the other until stop. The requests in
// flight then are finished, not cut: the service may have spooled them, and
// the bench counts every acknowledged one.
func work(stop time.Time, client *http.Client, url, token string, payloads [][]byte, offset int) workerResult {
	res := workerResult{statuses: map[string]int{}}
	for i := offset; time.Now().Before(stop); i++ {
		t0 := time.Now()
		status, err := post(client, url, token, payloads[i%len(payloads)])
		res.latencies = append(res.latencies, time.Since(t0))
		res.record(status, err)
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
