package publish

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/ldaptest"
)

// The LDIF export loads into a real slapd with ldapmodify, twice, and
// ldapsearch reads back each address's certificates byte for byte, the
// entries' other attributes untouched; a newer certificate replaces the
// old one. --ldap-add's entries load into an empty subtree with ldapadd.
func TestLDIFIntoSlapd(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	base := "ou=people," + srv.Suffix
	addrs := []string{"alice@example.org", "bob+certs@example.org", "#carol@example.net"}
	r, certs := folderWith(t, addrs...)
	entries := "dn: " + base + "\nobjectClass: organizationalUnit\nou: people\n"
	for _, addr := range addrs {
		entries += fmt.Sprintf("\ndn: mail=%s,%s\nobjectClass: inetOrgPerson\ncn: %s\nsn: Person\nmail: %s\ntelephoneNumber: +1 555 0100\n",
			escapeDNValue(addr), base, addr, addr)
	}
	srv.Modify(t, true, entries)

	check := func(what string) {
		t.Helper()
		got := byMail(srv.Search(t, base, "(objectClass=inetOrgPerson)", "mail", "userSMIMECertificate", "userCertificate;binary", "telephoneNumber"))
		if len(got) != len(addrs) {
			t.Fatalf("%s: %d entries", what, len(got))
		}
		for _, addr := range addrs {
			e := got[addr]
			c := certs[addr]
			if s := e["userSMIMECertificate"]; len(s) != 1 || !bytes.Equal(s[0], CertsOnly(c)) {
				t.Errorf("%s: %s: userSMIMECertificate is not its certs-only PKCS #7 (%d values)", what, addr, len(s))
			}
			if v := e["userCertificate;binary"]; len(v) != 1 || !bytes.Equal(v[0], c.Raw) {
				t.Errorf("%s: %s: userCertificate is not its certificate (%d values)", what, addr, len(v))
			}
			if v := e["telephoneNumber"]; len(v) != 1 || string(v[0]) != "+1 555 0100" {
				t.Errorf("%s: %s: telephoneNumber %q", what, addr, v)
			}
		}
	}
	ldif := export(t, r, "ldif", Options{LDAPBase: base})
	srv.Modify(t, false, ldif)
	check("first load")
	srv.Modify(t, false, ldif)
	check("second load")

	// A newer certificate for alice: only hers is exported, and replaces
	// the old one.
	since := time.Now()
	time.Sleep(20 * time.Millisecond)                            // a later mtime than the first files'
	newer := leafFrom(t, "alice@example.org", t0.Add(time.Hour)) // a later NotBefore replaces
	if _, err := r.Store.Store(context.Background(), "alice@example.org", newer); err != nil {
		t.Fatal(err)
	}
	certs["alice@example.org"] = newer
	f, _ := New("ldif", Options{LDAPBase: base})
	var b bytes.Buffer
	if st, err := Export(context.Background(), r, f, since, &b); err != nil || st.Exported != 1 {
		t.Fatalf("changed since: %+v, %v", st, err)
	}
	srv.Modify(t, false, b.String())
	check("after a newer certificate")

	// --ldap-add: the whole entries, into a subtree that has none.
	added := "ou=certs," + srv.Suffix
	srv.Modify(t, true, "dn: "+added+"\nobjectClass: organizationalUnit\nou: certs\n")
	srv.Modify(t, false, export(t, r, "ldif", Options{LDAPBase: added, LDAPRDN: LDAPRDNUID, LDAPAdd: true}))
	got := srv.Search(t, added, "(objectClass=inetOrgPerson)", "mail", "userCertificate;binary")
	if e := got[`uid=\23carol,`+added]; len(got) != 3 || len(e["mail"]) != 1 || string(e["mail"][0]) != "#carol@example.net" ||
		!bytes.Equal(e["userCertificate;binary"][0], certs["#carol@example.net"].Raw) {
		t.Errorf("--ldap-add: %d entries, #carol's: %q", len(got), e)
	}
	srv.Modify(t, false, export(t, r, "ldif", Options{LDAPBase: added, LDAPRDN: LDAPRDNUID}))
}

// byMail indexes entries by their mail attribute: slapd writes the DNs it
// returns in its own way (mail=bob\2Bcerts@… for mail=bob\+certs@…).
func byMail(entries map[string]ldaptest.Entry) map[string]ldaptest.Entry {
	m := map[string]ldaptest.Entry{}
	for _, e := range entries {
		for _, v := range e["mail"] {
			m[string(v)] = e
		}
	}
	return m
}
