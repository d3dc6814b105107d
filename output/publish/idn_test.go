package publish

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certharvest/certharvest/internal/ldaptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// idnFolder returns a folder store holding a certificate for each address,
// its SAN an rfc822Name for an ASCII one, a SmtpUTF8Mailbox (RFC 9598) for
// an internationalised one.
func idnFolder(t *testing.T, addrs ...string) (output.FolderReader, map[string]*x509.Certificate) {
	t.Helper()
	store, err := output.OpenCertStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	certs := map[string]*x509.Certificate{}
	for _, addr := range addrs {
		var san pkix.Extension
		if isASCII(addr) {
			san, err = testcorpus.SubjectAltName([]string{addr}, nil)
		} else {
			san, err = testcorpus.SubjectAltName(nil, []string{addr})
		}
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c, err := testcorpus.SelfSigned(&x509.Certificate{
			Subject: pkix.Name{CommonName: "Test " + addr}, NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0),
			ExtraExtensions: []pkix.Extension{san},
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Store(context.Background(), addr, c); err != nil {
			t.Fatal(err)
		}
		certs[addr] = c
	}
	return output.FolderReader{Store: store}, certs
}

const (
	jorg = "jörg@xn--bcher-kva.example"
	anna = "anna@xn--bcher-kva.example"
)

// SMIMEA: the owner name of an internationalised address is the digest of
// its UTF-8 local part under its A-label domain (RFC 8162 §3); the zone
// loads and a DNS query for it returns its record.
func TestSMIMEAInternationalised(t *testing.T) {
	r, certs := idnFolder(t, jorg, anna)
	zone := "xn--bcher-kva.example. IN SOA ns.xn--bcher-kva.example. hostmaster.xn--bcher-kva.example. 1 3600 600 86400 3600\n" +
		export(t, r, "smimea", Options{})
	server := serveZone(t, "xn--bcher-kva.example.", zone)
	for _, addr := range []string{jorg, anna} {
		name, err := SMIMEAName(addr)
		if err != nil || !strings.HasSuffix(name, "._smimecert.xn--bcher-kva.example.") {
			t.Fatalf("%s: %q, %v", addr, name, err)
		}
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeSMIMEA)
		resp, _, err := (&dns.Client{Net: "tcp"}).Exchange(q, server)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Answer) != 1 || resp.Answer[0].(*dns.SMIMEA).Verify(certs[addr]) != nil {
			t.Errorf("%s: %v", addr, resp.Answer)
		}
	}
}

// JSON and a folder of files: the address as stored, the SmtpUTF8Mailbox
// among the emails, a file per address named by it.
func TestJSONInternationalised(t *testing.T) {
	r, _ := idnFolder(t, jorg, anna)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(export(t, r, "json", Options{})), "\n") {
		var rec struct {
			Address string
			Emails  []string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || !slices.Equal(rec.Emails, []string{rec.Address}) {
			t.Errorf("%s: %+v, %v", line, rec, err)
		}
		got = append(got, rec.Address)
	}
	if !slices.Equal(got, []string{anna, jorg}) {
		t.Errorf("addresses %q", got)
	}
	dir := t.TempDir()
	f, _ := New("json", Options{})
	if st, err := ExportDir(context.Background(), r, f, time.Time{}, dir); err != nil || st.Exported != 2 {
		t.Fatalf("ExportDir %+v, %v", st, err)
	}
	for _, addr := range []string{jorg, anna} {
		if data, err := os.ReadFile(filepath.Join(dir, addr+".json")); err != nil || !bytes.Contains(data, []byte(addr)) {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// LDIF: an entry named by uid holds an internationalised address (uid and
// sn are Directory Strings), without mail, which is ASCII (RFC 4524
// §2.16); slapd loads it. Named by mail, the address is left out, said
// why, and the others are exported.
func TestLDIFInternationalisedIntoSlapd(t *testing.T) {
	t.Parallel()
	r, certs := idnFolder(t, jorg, anna)
	f, _ := New("ldif", Options{LDAPBase: "dc=example,dc=org"})
	var b bytes.Buffer
	st, err := Export(context.Background(), r, f, time.Time{}, &b)
	if err != nil || st.Exported != 1 || len(st.Failed) != 1 || !strings.Contains(st.Failed[0], jorg) ||
		!strings.Contains(st.Failed[0], "IA5String") || !strings.Contains(b.String(), "mail="+anna) {
		t.Fatalf("by mail: %+v, %v\n%s", st, err, b.String())
	}

	srv := ldaptest.Start(t)
	base := "ou=certs," + srv.Suffix
	srv.Modify(t, true, "dn: "+base+"\nobjectClass: organizationalUnit\nou: certs\n")
	srv.Modify(t, false, export(t, r, "ldif", Options{LDAPBase: base, LDAPRDN: LDAPRDNUID, LDAPAdd: true}))
	got := srv.Search(t, base, "(objectClass=inetOrgPerson)", "uid", "mail", "userCertificate;binary")
	if len(got) != 2 {
		t.Fatalf("%d entries", len(got))
	}
	for _, e := range got {
		uid := string(e["uid"][0])
		addr := uid + "@xn--bcher-kva.example"
		if c := certs[addr]; c == nil || !bytes.Equal(e["userCertificate;binary"][0], c.Raw) {
			t.Errorf("uid %q: not its certificate", uid)
		}
		if hasMail := len(e["mail"]) > 0; hasMail != (addr == anna) {
			t.Errorf("uid %q: mail %q", uid, e["mail"])
		}
	}
	// Later exports keep them current.
	srv.Modify(t, false, export(t, r, "ldif", Options{LDAPBase: base, LDAPRDN: LDAPRDNUID}))
}
