// Command benchserve measures `certharvest serve` on a Maildir: it starts
// the service on an empty spool, drops N prepared messages into new/ at once
// (renames from tmp/, as an MDA delivers), and times until the last report
// line. It prints messages per second, the service's CPU time per message
// and its peak memory.
//
//	go run ./scripts/benchserve -bin bin/certharvest -corpus DIR [-runs 3] [-out DIR]
//	    [-store folder|postgres|both] [-pg-url URL] [-lookups N]
//
// -store postgres runs serve with the PostgreSQL store (--store-file), each
// run in a fresh schema of a private cluster that benchserve starts in -out
// (fsync on, as in production: internal/pgtest), or of the database -pg-url
// names; a run then ends when the last verdict row is written too, and
// PostgreSQL's CPU time per message is printed beside serve's. -store both
// alternates the two stores, run by run, so that both see the same
// machine, and prints the ratio of their medians. -lookups N then asks the
// lookup API (GET /certs/ADDRESS, 4 at a time) N times for stored
// addresses, and prints the latency's median and 99th percentile.
//
// Each run's spool, certificates, report and log are kept in a folder of
// their own under -out: deleting thousands of files would make the next
// run's file creations slower on some file systems (ext4 without a journal
// scans recently freed inodes one by one for minutes), which the next run
// would measure. Delete them when done.
//
// DIR is made by `go run ./scripts/gencorpus -bench N -out DIR`: messages/,
// trust.pem and dkim-keys.txt. scripts/bench-serve.sh does both.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/internal/pgtest"
)

func main() {
	bin := flag.String("bin", "bin/certharvest", "certharvest binary")
	corpus := flag.String("corpus", "", "folder made by gencorpus -bench (required)")
	runs := flag.Int("runs", 3, "measured runs (of each store, with -store both)")
	at := flag.String("at", "2026-06-01T00:00:00Z", "verification time")
	out := flag.String("out", "/var/tmp/certharvest-bench", "`folder` for the runs' outputs (kept)")
	store := flag.String("store", "folder", "the certificate store: folder, postgres, or both (alternated)")
	pgURL := flag.String("pg-url", "", "PostgreSQL `URL` to use (default: a private cluster in -out)")
	lookups := flag.Int("lookups", 0, "after each run, time this many lookup API requests")
	serveArgs := flag.String("serve-args", "", "more flags for serve, separated by spaces (e.g. \"--authserv-id none\")")
	flag.Parse()
	if *corpus == "" {
		flag.Usage()
		os.Exit(2)
	}
	var stores []string
	switch *store {
	case "folder", "postgres":
		stores = []string{*store}
	case "both":
		stores = []string{"folder", "postgres"}
	default:
		log.Fatalf("-store %q: want folder, postgres or both", *store)
	}
	msgs, err := filepath.Glob(filepath.Join(*corpus, "messages", "*.eml"))
	if err != nil || len(msgs) == 0 {
		log.Fatalf("no messages in %s/messages", *corpus)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	b := &bench{bin: *bin, corpus: *corpus, at: *at, out: *out, msgs: msgs, lookups: *lookups, pgURL: *pgURL, serveArgs: strings.Fields(*serveArgs)}
	if *store != "folder" && b.pgURL == "" {
		dir, err := os.MkdirTemp(*out, "postgres-")
		if err != nil {
			log.Fatal(err)
		}
		// Run as root, PostgreSQL runs as the user postgres, who must
		// reach its folder.
		if err := os.Chmod(dir, 0o755); err != nil {
			log.Fatal(err)
		}
		srv, err := pgtest.Launch(dir, pgtest.Options{Durable: true})
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Stop()
		b.pgURL, b.pgPID = srv.URL(), srv.PID()
		fmt.Printf("PostgreSQL: a private cluster in %s (fsync on), on this machine\n", dir)
	}
	rates := map[string][]float64{}
	var lat map[string][]time.Duration
	if *lookups > 0 {
		lat = map[string][]time.Duration{}
	}
	for i := range *runs {
		for _, s := range stores {
			r, err := b.run(s, i)
			if err != nil {
				log.Fatal(err)
			}
			line := fmt.Sprintf("run %d %s: %d messages in new/ -> reported and archived: %.0f messages/s, serve's CPU %.0f µs per message",
				i+1, s, len(msgs), r.rate, r.cpuPerMsg.Seconds()*1e6)
			if s == "postgres" && b.pgPID != 0 {
				line += fmt.Sprintf(", PostgreSQL's %.0f µs", r.pgCPUPerMsg.Seconds()*1e6)
			}
			fmt.Printf("%s, peak RSS %s\n", line, r.peak)
			if len(r.latencies) > 0 {
				fmt.Printf("  lookups: %d requests, p50 %s, p99 %s\n", len(r.latencies), percentile(r.latencies, 50), percentile(r.latencies, 99))
				lat[s] = append(lat[s], r.latencies...)
			}
			rates[s] = append(rates[s], r.rate)
		}
	}
	medians := map[string]float64{}
	for _, s := range stores {
		sort.Float64s(rates[s])
		medians[s] = rates[s][len(rates[s])/2]
		fmt.Printf("median %s: %.0f messages/s over %d runs of %d messages\n", s, medians[s], len(rates[s]), len(msgs))
		if len(lat[s]) > 0 {
			fmt.Printf("lookups %s: %d requests, p50 %s, p99 %s\n", s, len(lat[s]), percentile(lat[s], 50), percentile(lat[s], 99))
		}
	}
	if len(stores) == 2 {
		fmt.Printf("postgres / folder: %.0f %%\n", 100*medians["postgres"]/medians["folder"])
	}
	fmt.Printf("outputs kept in %s/serve-*; when done: rm -rf %s/serve-* %s/postgres-*\n", *out, *out, *out)
}

// bench is what every run shares.
type bench struct {
	bin, corpus, at, out string
	msgs                 []string
	lookups              int
	serveArgs            []string // appended to serve's command line
	pgURL                string   // "" without PostgreSQL
	pgPID                int      // the private cluster's postmaster, 0 for -pg-url
}

// result is one run's measures.
type result struct {
	rate        float64
	cpuPerMsg   time.Duration
	pgCPUPerMsg time.Duration
	peak        string
	latencies   []time.Duration
}

// lookupToken is the lookup API's token in the runs.
const lookupToken = "bench-lookup-token"

func (b *bench) run(store string, n int) (res result, err error) {
	dir, err := os.MkdirTemp(b.out, "serve-")
	if err != nil {
		return res, err
	}
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	// Prepared in tmp/ (untimed): the timed part is the service's work.
	names := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		data, err := os.ReadFile(m)
		if err != nil {
			return res, err
		}
		names[i] = fmt.Sprintf("%d.M%dP1Q%d.bench", time.Now().Unix(), i, i)
		if err := os.WriteFile(filepath.Join(maildir, "tmp", names[i]), data, 0o600); err != nil {
			return res, err
		}
	}
	report, logFile := filepath.Join(dir, "report.jsonl"), filepath.Join(dir, "serve.log")
	args := []string{"serve", "--maildir", maildir, "--report", report, "--log", logFile,
		"--trust", filepath.Join(b.corpus, "trust.pem"), "--dkim-keys", filepath.Join(b.corpus, "dkim-keys.txt"), "--at", b.at}
	var schemaURL string
	if store == "postgres" {
		if schemaURL, err = b.freshSchema(fmt.Sprintf("bench_%d_%d", os.Getpid(), n)); err != nil {
			return res, err
		}
		file := filepath.Join(dir, "store-url")
		if err := os.WriteFile(file, []byte(schemaURL), 0o600); err != nil {
			return res, err
		}
		if out, err := exec.Command(b.bin, "store", "migrate", "--store-file", file).CombinedOutput(); err != nil {
			return res, fmt.Errorf("store migrate: %v\n%s", err, out)
		}
		args = append(args, "--store-file", file)
	} else {
		args = append(args, "--certs", filepath.Join(dir, "certs"))
	}
	if b.lookups > 0 {
		token := filepath.Join(dir, "lookup-token")
		os.WriteFile(token, []byte(lookupToken), 0o600)
		args = append(args, "--http", "127.0.0.1:0", "--lookup-token-file", token)
	}
	args = append(args, b.serveArgs...)
	cmd := exec.Command(b.bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer cmd.Process.Kill()
	if err := waitFor(func() bool { b, _ := os.ReadFile(logFile); return bytes.Contains(b, []byte("Maildir listed")) }, 30*time.Second); err != nil {
		return res, fmt.Errorf("service did not start: %w", err)
	}

	cpuBefore := processCPU(cmd.Process.Pid)
	pgBefore := b.postgresCPU()
	start := time.Now()
	for _, n := range names {
		if err := os.Rename(filepath.Join(maildir, "tmp", n), filepath.Join(maildir, "new", n)); err != nil {
			return res, err
		}
	}
	lines := &lineCounter{path: report}
	err = waitFor(func() bool {
		if p := peakRSS(cmd.Process.Pid); p != "" {
			res.peak = p
		}
		return lines.count() >= len(names)
	}, 10*time.Minute)
	if err == nil && schemaURL != "" {
		// The rows are written after the lines, in the same sync.
		err = waitRows(schemaURL, len(names))
	}
	elapsed := time.Since(start)
	if err != nil {
		return res, fmt.Errorf("only %d of %d reported: %w", countLines(report), len(names), err)
	}
	res.rate = float64(len(names)) / elapsed.Seconds()
	res.cpuPerMsg = (processCPU(cmd.Process.Pid) - cpuBefore) / time.Duration(len(names))
	res.pgCPUPerMsg = (b.postgresCPU() - pgBefore) / time.Duration(len(names))
	if b.lookups > 0 {
		if res.latencies, err = lookups(logFile, report, b.lookups); err != nil {
			return res, err
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	left, _ := os.ReadDir(filepath.Join(maildir, "new"))
	cur, _ := os.ReadDir(filepath.Join(maildir, "cur"))
	if len(left) != 0 || len(cur) != len(names) {
		return res, fmt.Errorf("after the run: %d left in new/, %d in cur/, want 0 and %d", len(left), len(cur), len(names))
	}
	if n := countLines(report); n != len(names) {
		return res, fmt.Errorf("%d report lines for %d messages", n, len(names))
	}
	return res, nil
}

// freshSchema creates a schema of its own for a run and returns the URL
// whose search_path is it.
func (b *bench) freshSchema(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.pgURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(b.pgURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// waitRows waits until the schema's verdicts table has n rows, asking
// every 10 ms on one connection.
func waitRows(schemaURL string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, schemaURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for {
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM verdicts").Scan(&got); err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postgresCPU returns the CPU time the private cluster has used so far:
// the postmaster's, its children's that have exited (cutime, cstime), and
// those running; 0 with -pg-url.
func (b *bench) postgresCPU() time.Duration {
	if b.pgPID == 0 {
		return 0
	}
	f := procStat(b.pgPID)
	if len(f) < 15 {
		return 0
	}
	total := ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	parent := fmt.Sprint(b.pgPID)
	for _, p := range procs {
		var pid int
		fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid)
		if cf := procStat(pid); len(cf) > 12 && cf[1] == parent {
			total += ticks(cf[11]) + ticks(cf[12])
		}
	}
	return total
}

// lookups asks the lookup API n times, 4 at a time, for the addresses of
// the run's report, and returns the latencies.
func lookups(logFile, report string, n int) ([]time.Duration, error) {
	logData, _ := os.ReadFile(logFile)
	m := regexp.MustCompile(`webhook listening on (\S+)`).FindSubmatch(logData)
	if m == nil {
		return nil, fmt.Errorf("no HTTP listener in %s", logFile)
	}
	data, _ := os.ReadFile(report)
	var addrs []string
	for _, a := range regexp.MustCompile(`"from":"([^"]+)"`).FindAllSubmatch(data, -1) {
		addrs = append(addrs, string(a[1]))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no address in %s", report)
	}
	return timeLookups("http://"+string(m[1])+"/certs/", lookupToken, addrs, n, 4)
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)].Round(time.Microsecond)
}

// lineCounter counts the lines of a growing file, reading only what was
// appended since the last count: re-reading a report of thousands of lines
// every few milliseconds would take a good part of a core from the service
// being measured.
type lineCounter struct {
	path string
	off  int64
	n    int
}

func (c *lineCounter) count() int {
	f, err := os.Open(c.path)
	if err != nil {
		return c.n
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		k, err := f.ReadAt(buf, c.off)
		c.n += bytes.Count(buf[:k], []byte("\n"))
		c.off += int64(k)
		if err != nil || k == 0 {
			return c.n
		}
	}
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which is in parentheses): state is [0], ppid [1], utime [11], stime
// [12], cutime [13], cstime [14].
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// ticks reads a /proc time in clock ticks (1/100 s on Linux).
func ticks(s string) time.Duration {
	var n int64
	fmt.Sscan(s, &n)
	return time.Duration(n) * 10 * time.Millisecond
}

// processCPU returns the user and system CPU time a process has used so
// far (proc(5)), or 0.
func processCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	return ticks(f[11]) + ticks(f[12])
}

func waitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v", timeout)
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// peakRSS reads the high-water mark of a process's resident memory.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
