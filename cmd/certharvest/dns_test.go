package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS is a DNS server on a loopback UDP port, in the test's process,
// for the binary's --dns-server: it answers TXT queries from a DKIM keys
// file (NXDOMAIN for other names), or every query with one error code. The
// binary's DNS path then runs end to end, Go's resolver included, without
// the network or real DNS.
type fakeDNS struct {
	conn    net.PacketConn
	records map[string]string // lower-case name, no final dot -> TXT record
	rcode   dnsmessage.RCode  // RCodeSuccess: answer from records
	queries atomic.Int64

	mu    sync.Mutex
	hang  map[string]bool // names never answered (hangFor)
	asked map[string]int  // queries per name
}

// errNoAnswer makes the fake DNS server leave a query unanswered.
var errNoAnswer = errors.New("no answer")

// hangFor makes the server leave every query for the names unanswered, as a
// server that has gone away; the queries for other names are answered.
func (d *fakeDNS) hangFor(names ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hang = map[string]bool{}
	for _, n := range names {
		d.hang[strings.ToLower(n)] = true
	}
}

// askedFor returns how many queries for name the server received.
func (d *fakeDNS) askedFor(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[strings.ToLower(name)]
}

func startFakeDNS(t *testing.T, keysFile string, rcode dnsmessage.RCode) *fakeDNS {
	t.Helper()
	d := &fakeDNS{records: map[string]string{}, rcode: rcode}
	if keysFile != "" {
		f, err := os.Open(keysFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			name, rec, ok := strings.Cut(sc.Text(), "\t")
			if ok && !strings.HasPrefix(name, "#") {
				d.records[strings.ToLower(name)] = rec
			}
		}
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.conn = conn
	t.Cleanup(func() { conn.Close() })
	go d.serve()
	return d
}

func (d *fakeDNS) addr() string { return d.conn.LocalAddr().String() }

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		d.queries.Add(1)
		if resp, err := d.answer(buf[:n]); err == nil {
			d.conn.WriteTo(resp, from)
		}
	}
}

func (d *fakeDNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rcode := d.rcode
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	d.mu.Lock()
	if d.asked == nil {
		d.asked = map[string]int{}
	}
	d.asked[name]++
	hang := d.hang[name]
	d.mu.Unlock()
	if hang {
		return nil, errNoAnswer
	}
	rec, found := d.records[name]
	if rcode == dnsmessage.RCodeSuccess && !found {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if rcode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeTXT {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		// A TXT record is character-strings of at most 255 bytes each.
		var chunks []string
		for len(rec) > 255 {
			chunks, rec = append(chunks, rec[:255]), rec[255:]
		}
		chunks = append(chunks, rec)
		err := b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.TXTResource{TXT: chunks})
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// checkWithDNS runs `certharvest check` on a sample message with its DKIM
// keys asked of dns.
func checkWithDNS(t *testing.T, dns *fakeDNS, file string) runResult {
	t.Helper()
	return runBinary(t, "check", "--trust", sampleDir+"/trust.pem", "--at", "2026-06-01T00:00:00Z",
		"--dns-server", dns.addr(), "--dns-timeout", "3s", filepath.Join(sampleDir, "messages", file))
}

// DKIM keys found in DNS: the key records of the sample, served by a DNS
// server, verify as they do from the keys file; a name the server does not
// know (NXDOMAIN) fails the signature for good; a server failing
// (SERVFAIL) is a temporary failure.
func TestDKIMKeysFromDNSServer(t *testing.T) {
	const msg = "01-ok-rsa-detached.eml"

	dns := startFakeDNS(t, sampleDir+"/dkim-keys.txt", dnsmessage.RCodeSuccess)
	r := checkWithDNS(t, dns, msg)
	if r.code != 0 || !strings.Contains(r.stdout, "verdict: ACCEPTED") || !strings.Contains(r.stdout, "DKIM passed") {
		t.Fatalf("keys in DNS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "DNS server "+dns.addr()) {
		t.Errorf("the log does not name the DNS server:\n%s", r.stdout)
	}
	if dns.queries.Load() == 0 {
		t.Error("the DNS server was not asked")
	}

	empty := startFakeDNS(t, "", dnsmessage.RCodeSuccess)
	r = checkWithDNS(t, empty, msg)
	if r.code != 3 || !strings.Contains(r.stdout, "dkim_invalid") {
		t.Errorf("key absent (NXDOMAIN): exit %d, want 3 and dkim_invalid\n%s%s", r.code, r.stdout, r.stderr)
	}

	failing := startFakeDNS(t, "", dnsmessage.RCodeServerFailure)
	r = checkWithDNS(t, failing, msg)
	if r.code != 3 || !strings.Contains(r.stdout, "dkim_temperror") {
		t.Errorf("SERVFAIL: exit %d, want 3 and dkim_temperror\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// serve keeps a message whose DKIM key lookups fail temporarily in new/,
// retries it, and reports dkim_temperror only once --retry-for is over.
func TestServeRetriesDNSFailure(t *testing.T) {
	failing := startFakeDNS(t, "", dnsmessage.RCodeServerFailure)
	// --dkim-keys= undoes the sample's keys file: the keys are looked up
	// in DNS.
	sv := startServe(t, t.TempDir(), "--dkim-keys=", "--dns-server", failing.addr(), "--dns-timeout", "2s",
		"--retry-first", "100ms", "--retry-for", "1s")
	msg, err := os.ReadFile(sampleDir + "/messages/01-ok-rsa-detached.eml")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, sv.maildir, "m1", msg)
	sv.waitLog(t, "temporary failure: dkim_temperror")
	if _, err := os.Stat(filepath.Join(sv.maildir, "new", "m1")); err != nil {
		t.Fatal("the message left new/ at its first temporary failure:", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(sv.maildir, "cur", curName("m1", false))); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			t.Fatal("not archived as rejected after --retry-for:", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sv.stop(t)
	recs := readReport(t, sv.report)
	if len(recs) != 1 || recs[0].Reason != "dkim_temperror" {
		t.Fatalf("report = %+v, want one dkim_temperror line", recs)
	}
	if n := failing.queries.Load(); n < 2 {
		t.Errorf("the DNS server was asked %d times, want retries", n)
	}
}
