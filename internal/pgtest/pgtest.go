// Package pgtest runs a private PostgreSQL server for tests: a cluster made
// by initdb in a temporary folder, served by postgres on a free TCP port of
// 127.0.0.1, and stopped when the test (or the test binary) ends.
//
// The binaries are looked up in PATH, then in /usr/lib/postgresql/*/bin (the
// Debian package postgresql), newest version first. Without them a test is
// skipped with a message saying what to install, unless the environment has
// CI=true: then it fails, so that a CI that lost its PostgreSQL does not pass
// by skipping.
//
// PostgreSQL refuses to run as root. When the tests run as root, initdb and
// postgres run as the user postgres (which the Debian package creates), or
// else nobody, and the cluster's folder is theirs.
//
// The server also speaks TLS, with a self-signed certificate for 127.0.0.1
// (CAFile), for a client that asks (sslmode=require, verify-full…); URL
// does not.
//
// Two ways to get a server:
//
//   - Start: a cluster of the test's own, for a test that stops and starts
//     it, or wants fsync on (Options.Durable).
//   - Shared: one cluster for a whole test package (initdb takes a second
//     or two), each test in a schema of its own (Server.Schema): the URL it
//     gets sets search_path, so tables of the same name do not meet.
package pgtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// Options configure a Server. The zero value is a fast server for tests.
type Options struct {
	// Durable keeps PostgreSQL's default of syncing its writes (fsync,
	// full_page_writes). Without it they are off: a test's commits cost no
	// disk flush, and a crash of the machine would lose the cluster, which
	// is a temporary folder anyway.
	Durable bool
}

// StartTimeout bounds how long a server may take to accept connections.
const StartTimeout = 30 * time.Second

// stopTimeout bounds a fast shutdown (SIGINT) before postgres is killed.
const stopTimeout = 30 * time.Second

// User is the cluster's superuser.
const User = "postgres"

// Server is one PostgreSQL cluster and its postmaster. Stop and Start may
// be called from the test while other goroutines use the server.
type Server struct {
	bin      string // folder of initdb and postgres
	dir      string // the cluster's folder: data/, postgres.log
	port     int
	password string
	durable  bool
	cred     *runAs       // nil: run as this process's user
	schemas  atomic.Int64 // schemas made by Schema

	mu      sync.Mutex
	cmd     *exec.Cmd     // the running postmaster, nil when stopped
	exited  chan struct{} // closed when cmd has exited
	waitErr error         // cmd's exit, once exited is closed
}

// Find returns the folder of the PostgreSQL server binaries (initdb and
// postgres), or an error saying what to install.
func Find() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest first: 15 before 9.6, by the version's number.
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL's initdb and postgres are neither in PATH nor in /usr/lib/postgresql/*/bin: install the Debian package postgresql")
}

// unavailable skips the test for want of PostgreSQL, or fails it when
// CI=true.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and no PostgreSQL server can be run: %v", err)
	}
	t.Skipf("skipped: no PostgreSQL server can be run: %v", err)
}

// Start runs a private cluster in a folder of t.TempDir(), stopped and
// removed when the test ends. Without the binaries the test is skipped (or
// fails when CI=true).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Find()
	if err != nil {
		unavailable(t, err)
	}
	dir := t.TempDir()
	s, err := newServer(bin, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Launch makes a cluster in dir/pg and starts it, for a program that is
// not a test (a benchmark: scripts/benchserve): the caller stops it
// (Stop). Without the binaries it fails, saying what to install.
func Launch(dir string, opts Options) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	s, err := newServer(bin, dir, opts)
	if err != nil {
		return nil, err
	}
	return s, s.Start()
}

// PID returns the process id of the running postmaster, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// newServer makes a cluster in dir/pg with initdb; it does not start it.
func newServer(bin, dir string, opts Options) (*Server, error) {
	s := &Server{bin: bin, dir: filepath.Join(dir, "pg"), durable: opts.Durable}
	var b [12]byte
	rand.Read(b[:])
	s.password = hex.EncodeToString(b[:])
	var err error
	if s.cred, err = unprivileged(); err != nil {
		return nil, err
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := reachable(s.dir); err != nil {
			return nil, err
		}
		if err := os.Chown(s.dir, int(s.cred.uid), int(s.cred.gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.uid), int(s.cred.gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"--pgdata", filepath.Join(s.dir, "data"), "--username", User, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C",
		"--no-sync", "--no-instructions")
	initdb.SysProcAttr = s.sysProcAttr()
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	os.Remove(pwfile)
	tlsCert, err := testcorpus.SelfSignedTLS("127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"server.crt": tlsCert.CertPEM, "server.key": tlsCert.KeyPEM} {
		// The key must be the server user's, and not readable by others.
		path := filepath.Join(s.dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if s.cred != nil {
			if err := os.Chown(path, int(s.cred.uid), int(s.cred.gid)); err != nil {
				return nil, fmt.Errorf("pgtest: %w", err)
			}
		}
	}
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	return s, nil
}

// unprivileged returns the user to run PostgreSQL as when this process is
// root (postgres, else nobody), or nil when it is not root.
func unprivileged() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil && uid != 0 {
			return &runAs{uid: uint32(uid), gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("pgtest: running as root, and neither the user postgres nor nobody exists to run PostgreSQL as (it refuses root)")
}

// reachable makes sure another user can reach the folder dir: the folders
// the test made (dir's parent, t.TempDir(), and its own parent) get the
// search bit for others; every folder above them must already have it.
func reachable(dir string) error {
	parent := filepath.Dir(dir)
	for _, d := range []string{parent, filepath.Dir(parent)} {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if info.Mode().Perm()&0o001 == 0 && strings.HasPrefix(d, os.TempDir()+string(filepath.Separator)) {
			if err := os.Chmod(d, info.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("pgtest: %w", err)
			}
		}
	}
	for d := parent; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgtest: %s is not searchable by others, and PostgreSQL runs as another user than root: set TMPDIR to a folder they can reach", d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// runAs is the user PostgreSQL runs as when the tests run as root.
type runAs struct{ uid, gid uint32 }

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// CAFile returns the file of the server's TLS certificate, self-signed for
// 127.0.0.1 and localhost: the sslrootcert of a client that verifies it.
func (s *Server) CAFile() string { return filepath.Join(s.dir, "server.crt") }

// URL returns the URL of the database postgres as the superuser, with its
// password, without TLS (the server has none).
func (s *Server) URL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(User, s.password),
		Host:     s.Addr(),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Start starts the postmaster and returns once it accepts connections. It
// does nothing if it is running.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close()
	args := []string{
		"-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP only: no socket path to fit in 107 bytes
		"-c", "max_connections=200",
		"-c", "ssl=on",
		"-c", "ssl_cert_file=" + filepath.Join(s.dir, "server.crt"),
		"-c", "ssl_key_file=" + filepath.Join(s.dir, "server.key"),
	}
	if !s.durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = s.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	s.cmd, s.exited, s.waitErr = cmd, make(chan struct{}), nil
	exited := s.exited
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		return err
	}
	return nil
}

// waitReady polls the server until it accepts a connection, the
// postmaster exits, or StartTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgconn.Connect(ctx, s.URL())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited at start-up:\n%s", s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres accepts no connection after %s: %v\n%s", StartTimeout, err, s.logTail())
		}
	}
}

// logTail returns the end of the server's log, for an error.
func (s *Server) logTail() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// Stop shuts the server down (a fast shutdown: sessions are ended, open
// transactions rolled back) and returns once it has exited. It does
// nothing if it is not running.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	cmd.Process.Signal(os.Interrupt)
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("pgtest: postgres did not stop within %s of SIGINT: killed", stopTimeout)
	}
}

// Schema creates a schema of its own for the test and returns the URL of
// the server whose search_path is that schema: tables made through it go
// there, apart from every other test's.
func (s *Server) Schema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.schemas.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.URL())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name).ReadAll(); err != nil {
		t.Fatalf("pgtest: creating schema %s: %v", name, err)
	}
	return s.URL() + "&search_path=" + name
}

// Shared is one server for a test package, started on first use and
// stopped when the package's tests end. Declare one in a test file and
// run the tests with it:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }
//
// A test then asks pg.Server(t) for it, or pg.Schema(t) for a schema of its
// own. Its zero value is ready to use, with the zero Options.
type Shared struct {
	Options Options

	once   sync.Once
	server *Server
	dir    string
	err    error
	bin    error // the binaries could not be found
}

// Server returns the shared server, starting it on first use. Without the
// binaries the test is skipped (or fails when CI=true).
func (sh *Shared) Server(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() {
		bin, err := Find()
		if err != nil {
			sh.bin = err
			return
		}
		if sh.dir, sh.err = os.MkdirTemp("", "pgtest-"); sh.err != nil {
			return
		}
		s, err := newServer(bin, sh.dir, sh.Options)
		if err == nil {
			err = s.Start()
		}
		sh.server, sh.err = s, err
	})
	if sh.bin != nil {
		unavailable(t, sh.bin)
	}
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.server
}

// Schema returns the URL of a schema of the test's own on the shared
// server (Server.Schema).
func (sh *Shared) Schema(t testing.TB) string {
	t.Helper()
	return sh.Server(t).Schema(t)
}

// Run runs the package's tests, then stops the shared server, if one was
// started, and removes its folder. It returns m.Run's exit code, or 1 if
// the server could not be stopped.
func (sh *Shared) Run(m *testing.M) int {
	code := m.Run()
	if sh.server != nil {
		if err := sh.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
	}
	if sh.dir != "" {
		os.RemoveAll(sh.dir)
	}
	return code
}
