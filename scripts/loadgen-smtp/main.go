// Command loadgen-smtp is the load generator of scripts/bench-smtp.sh: it
// delivers sample messages to an SMTP server over concurrent sessions,
// several messages per session (RSET, MAIL, RCPT, DATA, again), for a fixed
// time or number of messages, and reports the rate of 250 replies and their
// latency. With -queued it writes the id of every queued message (the text
// after "queued as" in the 250 reply), one per line, so that the caller can
// check each one was processed.
//
//	go run ./scripts/loadgen-smtp -addr 127.0.0.1:2525 -sessions 32 -duration 10s
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	var (
		addr       = flag.String("addr", "", "SMTP server `host:port` (required)")
		sessions   = flag.Int("sessions", 32, "concurrent SMTP sessions")
		perSession = flag.Int("per-session", 100, "messages per session before QUIT and a new connection")
		duration   = flag.Duration("duration", 10*time.Second, "stop starting messages after this long")
		count      = flag.Int("count", 0, "stop after this many messages (0: no limit but -duration)")
		messages   = flag.String("messages", "testdata/sample/messages/*-ok-*.eml", "`glob` of the messages to send, in turn")
		from       = flag.String("from", "loadgen@example.net", "envelope sender")
		to         = flag.String("to", "harvest@inbound.example.org", "envelope recipient")
		// After a completed DATA the next MAIL may follow at once (RFC 5321
		// §4.1.1.5), as an MTA delivering several messages per connection
		// does. go-smtp's Client.Reset also forgets the greeting, so with
		// -rset each message costs an extra EHLO that no MTA sends.
		rset       = flag.Bool("rset", false, "send RSET (and, go-smtp's client being what it is, EHLO again) before each message after the first of a session")
		queuedFile = flag.String("queued", "", "write the id of each queued message to this `file`")
	)
	flag.Parse()
	if *addr == "" || *sessions < 1 || *perSession < 1 {
		flag.Usage()
		os.Exit(2)
	}
	msgs, err := loadMessages(*messages)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-smtp:", err)
		os.Exit(1)
	}
	g := &generator{addr: *addr, from: *from, to: *to, rset: *rset, perSession: *perSession, msgs: msgs,
		count: int64(*count), deadline: time.Now().Add(*duration)}
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]*result, *sessions)
	for i := range results {
		results[i] = &result{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.worker(i, results[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var total result
	for _, r := range results {
		total.merge(r)
	}
	if *queuedFile != "" {
		if err := os.WriteFile(*queuedFile, []byte(strings.Join(total.queued, "\n")+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen-smtp:", err)
			os.Exit(1)
		}
	}
	total.print(elapsed, *sessions, *perSession, len(msgs))
	if total.ok == 0 {
		os.Exit(1)
	}
}

// loadMessages reads the messages and gives them CRLF line endings, as an
// MTA sends them.
func loadMessages(glob string) ([][]byte, error) {
	paths, err := filepath.Glob(glob)
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no message matches %q", glob)
	}
	var msgs [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		msgs = append(msgs, data)
	}
	return msgs, nil
}

type generator struct {
	addr, from, to string
	rset           bool
	perSession     int
	msgs           [][]byte
	count          int64
	started        atomic.Int64
	deadline       time.Time
}

// next reports whether another message may be started.
func (g *generator) next() bool {
	if time.Now().After(g.deadline) {
		return false
	}
	return g.count == 0 || g.started.Add(1) <= g.count
}

// result is what one session worker saw.
type result struct {
	ok, temp, perm, errs, conns int
	latencies                   []time.Duration
	queued                      []string
	firstErr                    error
}

func (r *result) fail(err error) {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se) && se.Code/100 == 4:
		r.temp++
	case errors.As(err, &se):
		r.perm++
	default:
		r.errs++
	}
	if r.firstErr == nil {
		r.firstErr = err
	}
}

func (r *result) merge(o *result) {
	r.ok, r.temp, r.perm, r.errs, r.conns = r.ok+o.ok, r.temp+o.temp, r.perm+o.perm, r.errs+o.errs, r.conns+o.conns
	r.latencies = append(r.latencies, o.latencies...)
	r.queued = append(r.queued, o.queued...)
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func (g *generator) worker(n int, r *result) {
	for i := n; ; {
		c, err := smtp.Dial(g.addr)
		if err != nil {
			r.fail(err)
			if !g.next() {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.conns++
		if err := c.Hello("loadgen.example.net"); err != nil {
			r.fail(err)
			c.Close()
			if time.Now().After(g.deadline) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for k := 0; k < g.perSession; k++ {
			if !g.next() {
				c.Quit()
				return
			}
			if k > 0 && g.rset {
				if err := c.Reset(); err != nil {
					r.fail(err)
					break
				}
			}
			t0 := time.Now()
			id, err := g.send(c, g.msgs[i%len(g.msgs)])
			i++
			if err != nil {
				r.fail(err)
				var se *smtp.SMTPError
				if !errors.As(err, &se) {
					break // connection trouble: reconnect
				}
				continue
			}
			r.ok++
			r.latencies = append(r.latencies, time.Since(t0))
			r.queued = append(r.queued, id)
		}
		c.Quit()
		c.Close()
	}
}

// send runs one mail transaction and returns the queued id.
func (g *generator) send(c *smtp.Client, msg []byte) (string, error) {
	if err := c.Mail(g.from, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(g.to, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.Write(msg)
	bw.Flush()
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_, id, ok := strings.Cut(resp.StatusText, "queued as ")
	if !ok {
		return "", fmt.Errorf("250 without a queue id: %q", resp.StatusText)
	}
	return id, nil
}

func (r *result) print(elapsed time.Duration, sessions, perSession, nmsgs int) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(p*float64(len(r.latencies)-1))].Round(10 * time.Microsecond)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("loadgen-smtp: %d sessions, %d messages per session, %d sample messages in turn\n", sessions, perSession, nmsgs)
	fmt.Printf("  %d messages queued (250) in %s: %.0f messages/s\n", r.ok, elapsed.Round(time.Millisecond), float64(r.ok)/elapsed.Seconds())
	fmt.Printf("  refused: %d temporary (4xx), %d permanent (5xx); %d connection errors; %d connections\n", r.temp, r.perm, r.errs, r.conns)
	fmt.Printf("  latency MAIL..250: p50 %s, p90 %s, p99 %s, max %s\n", pct(0.5), pct(0.9), pct(0.99), pct(1))
	fmt.Printf("  load generator CPU: %s (%.0f%% of one core)\n", cpu.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds())
	if r.firstErr != nil {
		fmt.Printf("  first error: %v\n", r.firstErr)
	}
}
