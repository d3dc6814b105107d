// Package ldaptest runs a private OpenLDAP server for tests: slapd with a
// configuration file and an mdb database in a temporary folder, listening
// on a free TCP port of 127.0.0.1, with the inetOrgPerson schema (RFC
// 2798), stopped when the test ends. The clients are OpenLDAP's own
// (ldapadd, ldapmodify, ldapsearch), as an administrator would run them.
//
// slapd is looked up in PATH, then in /usr/sbin (the Debian package slapd;
// the clients are in ldap-utils). Without them a test is skipped with a
// message saying what to install, unless the environment has CI=true: then
// it fails, so that a CI that lost its slapd does not pass by skipping.
// slapd runs as the test's user, root included: its files are the test's.
package ldaptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running slapd.
type Server struct {
	// URL is where it listens: ldap://127.0.0.1:PORT/.
	URL string
	// Suffix is its database's suffix, whose entry exists; RootDN and
	// Password bind as its administrator.
	Suffix, RootDN, Password string
	dir                      string
}

// StartTimeout bounds how long slapd may take to answer.
const StartTimeout = 20 * time.Second

// need finds the programs, or skips (fails when CI=true) the test.
func need(t testing.TB) (slapd, schemaDir, moduleDir string) {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + ": install the Debian packages slapd and ldap-utils (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/slapd"); err != nil {
			missing("no slapd")
		}
		slapd = "/usr/sbin/slapd"
	}
	for _, c := range []string{"ldapadd", "ldapmodify", "ldapsearch"} {
		if _, err := exec.LookPath(c); err != nil {
			missing("no " + c)
		}
	}
	for _, d := range []string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"} {
		if _, err := os.Stat(filepath.Join(d, "inetorgperson.schema")); err == nil {
			schemaDir = d
			break
		}
	}
	if schemaDir == "" {
		missing("no inetorgperson.schema")
	}
	// Debian builds the mdb backend as a module; others build it in.
	for _, d := range []string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"} {
		if _, err := os.Stat(filepath.Join(d, "back_mdb.la")); err == nil {
			moduleDir = d
			break
		}
	}
	return slapd, schemaDir, moduleDir
}

// Start starts a slapd whose database has the suffix dc=example,dc=org,
// and its entry; it is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	slapd, schemaDir, moduleDir := need(t)
	dir := t.TempDir()
	s := &Server{Suffix: "dc=example,dc=org", RootDN: "cn=admin,dc=example,dc=org", Password: "secret", dir: dir}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	// The schema files, in the order slapd needs them.
	for _, f := range []string{"core.schema", "cosine.schema", "inetorgperson.schema"} {
		fmt.Fprintf(&conf, "include %s\n", filepath.Join(schemaDir, f))
	}
	fmt.Fprintf(&conf, "pidfile %s\n", filepath.Join(dir, "slapd.pid"))
	if moduleDir != "" {
		fmt.Fprintf(&conf, "modulepath %s\nmoduleload back_mdb\n", moduleDir)
	}
	// maxsize: the memory map of the database, 16 MiB.
	fmt.Fprintf(&conf, "database mdb\nmaxsize 16777216\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %s\n",
		s.Suffix, s.RootDN, s.Password, filepath.Join(dir, "db"))
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port) + "/"
	log, err := os.Create(filepath.Join(dir, "slapd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// -d: in the foreground, logging to standard error (level 0: errors).
	cmd := exec.Command(slapd, "-f", confPath, "-h", s.URL, "-d", "0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(StartTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.URL[len("ldap://"):len(s.URL)-1], time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("slapd exited (%v):\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd does not answer at %s after %v", s.URL, StartTimeout)
		}
	}
	s.Modify(t, true, fmt.Sprintf("dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n", s.Suffix))
	return s
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Modify loads LDIF change records with ldapmodify (ldapadd when add, for
// records without a changetype), bound as the administrator, and fails the
// test when it fails.
func (s *Server) Modify(t testing.TB, add bool, ldif string) {
	t.Helper()
	if out, err := s.Run("ldapmodify", ldif, map[bool][]string{true: {"-a"}}[add]...); err != nil {
		t.Fatalf("ldapmodify: %v\n%s", err, out)
	}
}

// Run runs an OpenLDAP client (ldapmodify, ldapadd, ldapsearch) against
// the server, bound as the administrator, with stdin as its input, and
// returns what it printed.
func (s *Server) Run(client, stdin string, args ...string) (string, error) {
	cmd := exec.Command(client, append([]string{"-x", "-H", s.URL, "-D", s.RootDN, "-w", s.Password}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Entry is an entry read back: each attribute's values, by the name
// ldapsearch gives it (with its options, as userCertificate;binary).
type Entry map[string][][]byte

// Search returns the entries under base matching filter, by DN, with the
// attributes asked for (all when none), read with ldapsearch.
func (s *Server) Search(t testing.TB, base, filter string, attrs ...string) map[string]Entry {
	t.Helper()
	args := append([]string{"-LLL", "-o", "ldif-wrap=no", "-b", base, filter}, attrs...)
	out, err := s.Run("ldapsearch", "", args...)
	if err != nil {
		t.Fatalf("ldapsearch %s: %v\n%s", filter, err, out)
	}
	entries := map[string]Entry{}
	var cur Entry
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		attr, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("ldapsearch: line %q", line)
		}
		var v []byte
		if b64, ok := strings.CutPrefix(value, ": "); ok {
			if v, err = base64.StdEncoding.DecodeString(b64); err != nil {
				t.Fatalf("ldapsearch: %v in %q", err, line)
			}
		} else {
			v = []byte(strings.TrimPrefix(value, " "))
		}
		if attr == "dn" {
			cur = Entry{}
			entries[string(v)] = cur
			continue
		}
		cur[attr] = append(cur[attr], v)
	}
	return entries
}
