package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/internal/pgtest"
	"github.com/certharvest/certharvest/internal/testfs"
	"github.com/certharvest/certharvest/output/pgstore"
)

// The binary with the PostgreSQL store (--store): a private PostgreSQL
// for the package (pgtest), a schema of its own for each test.

// pg is the package's PostgreSQL server, stopped by TestMain.
var pg pgtest.Shared

// storeFile writes url to a file of mode 0600, for --store-file: a URL
// with a password is refused on the command line.
func storeFile(t *testing.T, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store-url")
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// migratedStore returns the --store-file of a migrated schema of the
// test's own, and its URL.
func migratedStore(t *testing.T) (file, url string) {
	t.Helper()
	url = pg.Schema(t)
	file = storeFile(t, url)
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 {
		t.Fatalf("store migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return file, url
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, url, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// execSQL runs statements.
func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// runBinaryEnv is runBinary with more environment variables.
func runBinaryEnv(t *testing.T, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{code, stdout.String(), stderr.String()}
}

// withoutPassword returns url without its password, and the password.
func withoutPassword(t *testing.T, raw string) (string, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	return u.String(), pw
}

// sameTree fails unless the folders hold the same files, byte for byte.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	files := func(dir string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, path)
			m[rel] = string(data)
			return nil
		})
		return m
	}
	w, g := files(want), files(got)
	if len(w) == 0 {
		t.Errorf("%s is empty", want)
	}
	for name, data := range w {
		if g[name] != data {
			t.Errorf("%s: differs or missing in %s", name, got)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s: in %s, not in %s", name, got, want)
		}
	}
}

// scan --store of the sample stores the certificates a scan into a folder
// stores: store export reproduces the folder byte for byte; each report
// line is a verdict row; list and show read the same from either; a
// second scan adds no row.
func TestStoreScanListShowExport(t *testing.T) {
	t.Parallel()
	file, url := migratedStore(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	scan := append([]string{"scan", "--workers", "1", "--quiet"}, sampleFlags()...)
	if r := runBinary(t, append(scan, "--certs", certs, "--report", filepath.Join(dir, "folder.jsonl"), sampleDir+"/messages")...); r.code != 0 {
		t.Fatalf("scan --certs: exit %d\n%s", r.code, r.stderr)
	}
	report := filepath.Join(dir, "pg.jsonl")
	pgScan := append(scan, "--store-file", file, "--report", report, "--log", filepath.Join(dir, "log"), sampleDir+"/messages")
	if r := runBinary(t, pgScan...); r.code != 0 {
		t.Fatalf("scan --store-file: exit %d\n%s", r.code, r.stderr)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if !bytes.Contains(log, []byte("store=postgresql://postgres@127.0.0.1:")) || bytes.Contains(log, []byte("certs=")) {
		t.Errorf("the start-up line does not name the store:\n%s", log)
	}
	recs := readReport(t, report)
	if n := queryInt(t, url, "SELECT count(*) FROM verdicts"); n != len(recs) || n != len(expectedSample(t)) {
		t.Errorf("%d verdict rows, %d report lines", n, len(recs))
	}
	for _, rec := range recs {
		if n := queryInt(t, url, "SELECT count(*) FROM verdicts WHERE id = $1 AND reason = $2", rec.ID, string(rec.Reason)); n != 1 {
			t.Errorf("%s: %d rows with its id and reason %s", rec.Path, n, rec.Reason)
		}
		if rec.Outcome == "accepted" && rec.CertFile != "postgresql:certificates/"+rec.From {
			t.Errorf("%s: cert_file %q", rec.Path, rec.CertFile)
		}
	}

	export := filepath.Join(dir, "export")
	r := runBinary(t, "store", "export", "--store-file", file, "--to", export)
	if r.code != 0 || !strings.Contains(r.stdout, "exported 12 addresses from postgresql://postgres@") {
		t.Fatalf("store export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, certs, export)

	for _, args := range [][]string{{"list", "--at", "2026-06-01T00:00:00Z"}, {"show", "Rsa.Detached@example.com"}} {
		folder := runBinary(t, append(args, "--certs", certs)...)
		fromPG := runBinary(t, append(args, "--store-file", file)...)
		if folder.code != 0 || fromPG.code != 0 || folder.stdout != fromPG.stdout || folder.stdout == "" {
			t.Errorf("%v: the folder's (exit %d) and the store's (exit %d) differ:\n%s\n%s%s", args, folder.code, fromPG.code, folder.stdout, fromPG.stdout, fromPG.stderr)
		}
	}
	if r := runBinary(t, "show", "--store-file", file, "nobody@example.com"); r.code != 1 || !strings.Contains(r.stderr, "no certificate for nobody@example.com in postgresql://") {
		t.Errorf("show of an unknown address: exit %d %s", r.code, r.stderr)
	}

	if r := runBinary(t, pgScan...); r.code != 0 {
		t.Fatalf("second scan: exit %d\n%s", r.code, r.stderr)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM verdicts"); n != len(recs) {
		t.Errorf("after a second scan: %d verdict rows, want %d", n, len(recs))
	}
}

// check --store stores an accepted certificate, as check --certs does;
// without either, nothing is written.
func TestStoreCheck(t *testing.T) {
	t.Parallel()
	file, url := migratedStore(t)
	msg := sampleDir + "/messages/02-ok-ecdsa-detached.eml"
	if r := runBinary(t, append(append([]string{"check"}, sampleFlags()...), msg)...); r.code != 0 {
		t.Fatalf("check: exit %d\n%s", r.code, r.stderr)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM certificates"); n != 0 {
		t.Errorf("check without --store stored %d certificates", n)
	}
	if r := runBinary(t, append(append([]string{"check", "--store-file", file}, sampleFlags()...), msg)...); r.code != 0 {
		t.Fatalf("check --store-file: exit %d\n%s", r.code, r.stderr)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM certificates WHERE address = 'ecdsa.detached@example.com'"); n != 1 {
		t.Errorf("check --store-file stored %d certificates", n)
	}
}

// store migrate creates the schema, then has nothing to do; serve refuses
// a database without it, naming the command, and one migrated by a newer
// certharvest, which store migrate leaves alone.
func TestStoreMigrateAndServeRefuses(t *testing.T) {
	t.Parallel()
	url := pg.Schema(t)
	file := storeFile(t, url)
	serve := append([]string{"serve", "--maildir", filepath.Join(t.TempDir(), "Maildir"), "--store-file", file}, sampleFlags()...)
	r := runBinary(t, serve...)
	if r.code != 1 || !strings.Contains(r.stderr, "the database has no certharvest tables: create them with `certharvest store migrate --store URL`") {
		t.Errorf("serve on an empty database: exit %d\n%s", r.code, r.stderr)
	}
	// The versions as this certharvest knows them: its last migration, and
	// one more.
	v := pgstore.SchemaVersion()
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("schema migrated from version 0 to %d", v)) {
		t.Fatalf("store migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("schema version %d, this certharvest's: nothing to do", v)) {
		t.Errorf("store migrate again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	execSQL(t, url, fmt.Sprintf("INSERT INTO certharvest_schema (version, name) VALUES (%d, 'future')", v+1))
	r = runBinary(t, serve...)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("schema is version %d, newer than this certharvest knows (%d)", v+1, v)) {
		t.Errorf("serve on a newer schema: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 1 || !strings.Contains(r.stderr, "newer than this certharvest knows") {
		t.Errorf("store migrate of a newer schema: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBinary(t, "list", "--store-file", file); r.code != 1 || !strings.Contains(r.stderr, "newer than this certharvest knows") {
		t.Errorf("list on a newer schema: exit %d\n%s", r.code, r.stderr)
	}
}

// store import of a folder keeps anti-rollback: importing it again, or
// an older folder, changes nothing, and the export is the folder again.
func TestStoreImport(t *testing.T) {
	t.Parallel()
	file, _ := migratedStore(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	scanSampleInto(t, certs)
	r := runBinary(t, "store", "import", certs, "--store-file", file)
	if r.code != 0 || !strings.Contains(r.stdout, "imported 12 addresses from "+certs+" into postgresql://postgres@") ||
		!strings.Contains(r.stdout, ": 12 stored, 0 unchanged, 0 kept") {
		t.Fatalf("store import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBinary(t, "store", "import", certs, "--store-file", file); r.code != 0 || !strings.Contains(r.stdout, ": 0 stored, 12 unchanged, 0 kept") {
		t.Errorf("store import again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An older certificate for an address the store has: kept out.
	older := filepath.Join(dir, "older")
	os.MkdirAll(older, 0o755)
	storeTestCert(t, older, "rsa.detached@example.com")
	if r := runBinary(t, "store", "import", older, "--store-file", file); r.code != 0 || !strings.Contains(r.stdout, ": 0 stored, 0 unchanged, 1 kept") {
		t.Errorf("store import of an older certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	export := filepath.Join(dir, "export")
	if r := runBinary(t, "store", "export", "--store-file", file, "--to", export); r.code != 0 {
		t.Fatalf("store export: exit %d\n%s", r.code, r.stderr)
	}
	sameTree(t, certs, export)
}

// Bad input, each a clear error naming its cause, with the exit status
// of its kind: a malformed URL (never repeated: it may hold a password),
// a password on the command line, --store with --certs or --store-file,
// a wrong password, a server that does not answer.
func TestStoreBadInput(t *testing.T) {
	t.Parallel()
	url := pg.Schema(t)
	bare, password := withoutPassword(t, url)
	down := "postgres://certharvest@127.0.0.1:1/certharvest?connect_timeout=5"
	msgs := sampleDir + "/messages"
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"malformed", nil, []string{"list", "--store", "postgres://u@db:port/x?password=hunter2"}, 2,
			"--store: no password on the command line"},
		{"malformed-file", nil, []string{"list", "--store-file", storeFile(t, "postgres://u:hunter2@db:port/x")}, 2,
			"--store: invalid PostgreSQL store URL: invalid port"},
		{"password", nil, []string{"list", "--store", "postgres://u:hunter2@db/x"}, 2,
			"--store: no password on the command line, where any user of the machine sees it: put the URL in a file of mode 0600 (--store-file FILE), or the password in PGPASSWORD or ~/.pgpass"},
		{"password-conninfo", nil, []string{"list", "--store", "host=db password='hunter2' dbname=x"}, 2,
			"--store: no password on the command line"},
		{"with-certs", nil, []string{"scan", "--store", bare, "--certs", "x", msgs}, 2,
			"give --store or --certs, not both"},
		{"with-file", nil, []string{"list", "--store", bare, "--store-file", "x"}, 2,
			"give --store or --store-file, not both"},
		{"wrong-password", []string{"PGPASSWORD=wrong"}, append(append([]string{"scan", "--store", bare}, sampleFlags()...), msgs), 1,
			`refused the password of user "postgres"`},
		{"down", []string{"PGPASSWORD=x"}, []string{"show", "--store", down, "bob@example.com"}, 1,
			"PostgreSQL at 127.0.0.1:1/certharvest is unreachable"},
		{"down-migrate", []string{"PGPASSWORD=x"}, []string{"store", "migrate", "--store", down}, 1,
			"PostgreSQL at 127.0.0.1:1/certharvest is unreachable"},
		{"folder-migrate", nil, []string{"store", "migrate", "--store", t.TempDir()}, 2,
			"want --store URL (postgres://…) or --store-file FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := tt.args
			if args[0] == "scan" {
				args = append(args, "--report", filepath.Join(dir, "report.jsonl"))
			}
			r := runBinaryEnv(t, tt.env, args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", r.code, tt.code, tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stderr, password) {
				t.Errorf("the password is in the message: %s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "report.jsonl")); err == nil && countLines(filepath.Join(dir, "report.jsonl")) > 0 {
				t.Errorf("a report was written")
			}
		})
	}
	// The right password from PGPASSWORD, a URL without one on the
	// command line: no schema yet, which the error says.
	r := runBinaryEnv(t, []string{"PGPASSWORD=" + password}, "list", "--store", bare)
	if r.code != 1 || !strings.Contains(r.stderr, "create them with `certharvest store migrate --store URL`") {
		t.Errorf("list with PGPASSWORD: exit %d %s", r.code, r.stderr)
	}
}

// serve with the store down at start-up starts all the same: it spools,
// /healthz answers 503 "store unavailable", nothing is verified; once the
// server answers, every message waiting is verified, once, and the lookup
// API serves from the store.
func TestServeStoreDownAtStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.Options{})
	file := storeFile(t, srv.URL())
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 {
		t.Fatalf("store migrate: exit %d\n%s", r.code, r.stderr)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "lookup-token")
	os.WriteFile(tokenFile, []byte("lk-5e1f0c9d\n"), 0o600)
	s := startServe(t, dir, "--store-file", file, "--http", "127.0.0.1:0", "--lookup-token-file", tokenFile)
	s.waitLog(t, "the certificate store is unavailable at start-up")
	addr := s.webhookAddr(t)
	if code, body := healthz(t, addr); code != 503 || !strings.Contains(body, "store unavailable") {
		t.Errorf("healthz with the store down: %d %s", code, body)
	}
	msgs := sampleMessages(t)
	for name, data := range msgs {
		deliver(t, s.maildir, name, data)
	}
	time.Sleep(300 * time.Millisecond)
	if entries, _ := os.ReadDir(filepath.Join(s.maildir, "new")); len(entries) != len(msgs) {
		t.Errorf("%d messages in new/ with the store down, want %d", len(entries), len(msgs))
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "the certificate store answers: verifying the messages waiting")
	s.waitDrained(t, 60*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := healthz(t, addr)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz with the store back: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	code, _, pem := lookupGet(t, client, "http://"+addr+"/certs/rsa.detached@example.com", "lk-5e1f0c9d")
	if code != 200 || !bytes.HasPrefix(pem, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("lookup from the store: %d %s", code, pem)
	}
	s.stop(t)
	if n := queryInt(t, srv.URL(), "SELECT count(*) FROM verdicts"); n != len(msgs) || countLines(s.report) != len(msgs) {
		t.Errorf("%d verdict rows, %d report lines, for %d messages", n, countLines(s.report), len(msgs))
	}
	if n := queryInt(t, srv.URL(), "SELECT count(*) FROM certificates"); n != 12 {
		t.Errorf("%d certificates stored, want the sample's 12", n)
	}
}

// The store commands' flags, as TestFlagHelpOneLine checks the others':
// one line of help, and a row in docs/CONFIGURATION.md.
func TestStoreFlagHelpOneLine(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := storeCommandFlagSets()
	if len(cmds) != 3 {
		t.Errorf("%d store commands, want migrate, export and import", len(cmds))
	}
	for name, cmd := range cmds {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			_, usage := pflag.UnquoteUsage(f)
			if strings.Contains(usage, "\n") || len(usage) > 90 {
				t.Errorf("%s --%s: help is %d bytes or several lines: %q", name, f.Name, len(usage), usage)
			}
			if f.Name != "help" && !strings.Contains(string(doc), "`--"+f.Name) {
				t.Errorf("%s --%s is not in docs/CONFIGURATION.md", name, f.Name)
			}
		})
	}
}

// A password in a --store value is found in every form, and masked for
// --print-config.
func TestStorePassword(t *testing.T) {
	for _, tt := range []struct {
		in, redacted string
		has          bool
	}{
		{"postgres://u@db/x", "postgres://u@db/x", false},
		{"postgres://u:s3cret@db/x", "postgres://u:********@db/x", true},
		{"postgresql://u@db/x?sslmode=require&password=s3cret", "postgresql://u@db/x?password=********&sslmode=require", true},
		{"host=db user=u password=s3cret dbname=x", "host=db user=u password=******** dbname=x", true},
		{"host=db password = 's3 cret' dbname=x", "host=db password=******** dbname=x", true},
		{"host=db dbname=x", "host=db dbname=x", false},
		{"/var/lib/certharvest/certs", "/var/lib/certharvest/certs", false},
	} {
		if got := hasStorePassword(tt.in); got != tt.has {
			t.Errorf("hasStorePassword(%q) = %v", tt.in, got)
		}
		if got := redactStorePassword(tt.in); got != tt.redacted {
			t.Errorf("redactStorePassword(%q) = %q, want %q", tt.in, got, tt.redacted)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(`store = "postgres://u:s3cret@db/x"`+"\n"), 0o600)
	r := runBinary(t, "list", "--config", cfg, "--print-config")
	if r.code != 0 || !strings.Contains(r.stdout, `store = "postgres://u:********@db/x"`) || strings.Contains(r.stdout, "s3cret") {
		t.Errorf("print-config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// store export --follow writes each certificate as it is stored, until
// SIGTERM.
func TestStoreExportFollow(t *testing.T) {
	t.Parallel()
	file, _ := migratedStore(t)
	dir := t.TempDir()
	to := filepath.Join(dir, "export")
	cmd := exec.Command(binary, "store", "export", "--store-file", file, "--to", to, "--follow")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	msg := sampleDir + "/messages/03-ok-opaque.eml"
	if r := runBinary(t, append(append([]string{"check", "--store-file", file}, sampleFlags()...), msg)...); r.code != 0 {
		t.Fatalf("check --store-file: exit %d\n%s", r.code, r.stderr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(to, "opaque@example.com.crt")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate was not exported:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("store export --follow on SIGINT: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "following the store") {
		t.Errorf("log:\n%s", stderr.String())
	}
}

// A full disk under PostgreSQL: storing fails, temporarily, naming the
// cause; the message waits in new/; once there is room, it is stored and
// reported, once.
func TestServeStoreServerDiskFull(t *testing.T) {
	t.Parallel()
	small := testfs.MountTmpfs(t, "96m")
	// PostgreSQL, run as its own user, must reach the tmpfs.
	os.Chmod(filepath.Dir(filepath.Dir(small)), 0o755)
	os.Chmod(filepath.Dir(small), 0o755)
	srv, err := pgtest.Launch(small, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	file := storeFile(t, srv.URL())
	if r := runBinary(t, "store", "migrate", "--store-file", file); r.code != 0 {
		t.Fatalf("store migrate: exit %d\n%s", r.code, r.stderr)
	}
	s := startServe(t, t.TempDir(), "--store-file", file, "--retry-first", "200ms")
	filler := fill(t, small)
	msgs := sampleMessages(t)
	deliver(t, s.maildir, "01-ok-rsa-detached.eml", msgs["01-ok-rsa-detached.eml"])
	s.waitLog(t, "its disk is full")
	if entries, _ := os.ReadDir(filepath.Join(s.maildir, "new")); len(entries) != 1 {
		t.Errorf("%d messages in new/ with the server's disk full, want 1", len(entries))
	}
	os.Remove(filler)
	s.waitDrained(t, 60*time.Second)
	s.stop(t)
	if n := queryInt(t, srv.URL(), "SELECT count(*) FROM verdicts"); n != 1 || countLines(s.report) != 1 {
		t.Errorf("%d verdict rows, %d report lines, want 1", n, countLines(s.report))
	}
	if n := queryInt(t, srv.URL(), "SELECT count(*) FROM certificates"); n != 1 {
		t.Errorf("%d certificates, want 1", n)
	}
}
