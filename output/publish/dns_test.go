package publish

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// serveZone serves the records of zone, a zone file's text, from a DNS
// server in the test (miekg/dns, over TCP on a free port), answering
// authoritatively for what it holds. It returns the server's address.
func serveZone(t *testing.T, origin, zone string) string {
	t.Helper()
	records := map[string][]dns.RR{} // by owner name and type
	zp := dns.NewZoneParser(strings.NewReader("$TTL 3600\n"+zone), origin, "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		key := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
		records[key] = append(records[key], rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("the zone does not parse: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		qq := q.Question[0]
		m.Answer = records[strings.ToLower(qq.Name)+"/"+dns.TypeToString[qq.Qtype]]
		if m.Answer == nil {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// The SMIMEA export loads into a zone; a query for each address's owner
// name returns its record, whose data is the certificate (3 0 0) or the
// digest of its key (3 1 1), as miekg/dns computes it.
func TestSMIMEAServed(t *testing.T) {
	addrs := []string{"alice@example.org", "bob.smith+mail@example.org", "carol@sub.example.org"}
	r, certs := folderWith(t, addrs...)
	for _, p := range []SMIMEAParams{DefaultSMIMEA(), {3, 1, 1}} {
		zone := "example.org. IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 3600\n" +
			export(t, r, "smimea", Options{SMIMEA: &p})
		server := serveZone(t, "example.org.", zone)
		client := &dns.Client{Net: "tcp"}
		for _, addr := range addrs {
			name, err := SMIMEAName(addr)
			if err != nil {
				t.Fatal(err)
			}
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeSMIMEA)
			resp, _, err := client.Exchange(q, server)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Answer) != 1 {
				t.Fatalf("%s: %d answers, rcode %s", addr, len(resp.Answer), dns.RcodeToString[resp.Rcode])
			}
			rr, ok := resp.Answer[0].(*dns.SMIMEA)
			if !ok {
				t.Fatalf("%s: %T", addr, resp.Answer[0])
			}
			want, err := dns.CertificateToDANE(p.Selector, p.MatchingType, certs[addr])
			if err != nil {
				t.Fatal(err)
			}
			if rr.Usage != p.Usage || rr.Selector != p.Selector || rr.MatchingType != p.MatchingType ||
				rr.Certificate != want || (p.MatchingType == 0 && rr.Certificate != hex.EncodeToString(certs[addr].Raw)) {
				t.Errorf("%s: %s", addr, rr)
			}
			if rr.Verify(certs[addr]) != nil {
				t.Errorf("%s: the record does not verify the certificate", addr)
			}
		}
	}
}
