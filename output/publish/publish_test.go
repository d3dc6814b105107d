package publish

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// t0 is the NotBefore of the tests' certificates.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// leaf makes a certificate for addr valid from t0 (ECDSA: quick to make),
// asserting the S/MIME BR policies given.
func leaf(t testing.TB, addr string, policies ...x509.OID) *x509.Certificate {
	t.Helper()
	return leafFrom(t, addr, t0, policies...)
}

// leafFrom is leaf valid from notBefore.
func leafFrom(t testing.TB, addr string, notBefore time.Time, policies ...x509.OID) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	c, err := testcorpus.SelfSigned(&x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: "Test " + addr},
		EmailAddresses: []string{addr},
		NotBefore:      notBefore,
		NotAfter:       notBefore.AddDate(1, 0, 0),
		Policies:       policies,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// folderWith returns a folder store holding a certificate for each address.
func folderWith(t testing.TB, addrs ...string) (output.FolderReader, map[string]*x509.Certificate) {
	t.Helper()
	store, err := output.OpenCertStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	certs := map[string]*x509.Certificate{}
	for _, addr := range addrs {
		certs[addr] = leaf(t, addr)
		if _, err := store.Store(context.Background(), addr, certs[addr]); err != nil {
			t.Fatal(err)
		}
	}
	return output.FolderReader{Store: store}, certs
}

// export runs Export in the format name, and fails the test on any error.
func export(t testing.TB, r output.CertReader, name string, opts Options) string {
	t.Helper()
	f, err := New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	st, err := Export(context.Background(), r, f, time.Time{}, &b)
	if err != nil || len(st.Failed) > 0 {
		t.Fatalf("export %s: %v, failed %q", name, err, st.Failed)
	}
	return b.String()
}

// RFC 8162 §3's example, and owner names whose digests openssl computes
// independently: an upper-case local part is hashed as it is written, and
// an internationalised one as its UTF-8 octets; the domain is written as
// A-labels.
func TestSMIMEAName(t *testing.T) {
	name, err := SMIMEAName("hugh@example.com")
	if want := "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com."; err != nil || name != want {
		t.Errorf("hugh@example.com: %q, %v; want %q (RFC 8162 §3)", name, err, want)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is missing: .ci/run installs it")
		}
		t.Skip("openssl is not installed: the owner names are not checked against openssl dgst")
	}
	for _, tc := range []struct{ addr, local, domain string }{
		{"hugh@example.com", "hugh", "example.com"},
		{"Hugh@example.com", "Hugh", "example.com"},
		{"first.last+tag@example.org", "first.last+tag", "example.org"},
		{"josé@example.com", "josé", "example.com"},
		{"用户@bücher.example", "用户", "xn--bcher-kva.example"},
	} {
		cmd := exec.Command("openssl", "dgst", "-sha256", "-r")
		cmd.Stdin = strings.NewReader(tc.local)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		digest, _, _ := strings.Cut(string(out), " ")
		want := digest[:56] + "._smimecert." + tc.domain + "."
		if got, err := SMIMEAName(tc.addr); err != nil || got != want {
			t.Errorf("%s: %q, %v; openssl says %q", tc.addr, got, err, want)
		}
	}
	for _, bad := range []string{"no-at", "@example.com", "bob@"} {
		if _, err := SMIMEAName(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A record's data is the certificate, its SubjectPublicKeyInfo, or either
// one's digest, as the fields say; usages 0 and 2 are refused.
func TestSMIMEARecord(t *testing.T) {
	r, certs := folderWith(t, "bob@example.org")
	c := certs["bob@example.org"]
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	for _, tc := range []struct {
		p    SMIMEAParams
		data string
	}{
		{DefaultSMIMEA(), "3 0 0 " + hex.EncodeToString(c.Raw)},
		{SMIMEAParams{3, 1, 1}, "3 1 1 " + hex.EncodeToString(spki[:])},
		{SMIMEAParams{1, 1, 0}, "1 1 0 " + hex.EncodeToString(c.RawSubjectPublicKeyInfo)},
	} {
		got := export(t, r, "smimea", Options{SMIMEA: &tc.p})
		name, _ := SMIMEAName("bob@example.org")
		if want := "; bob@example.org\n" + name + " IN SMIMEA " + tc.data + "\n"; got != want {
			t.Errorf("%v:\n%s\nwant\n%s", tc.p, got, want)
		}
	}
	for _, p := range []SMIMEAParams{{0, 0, 0}, {2, 0, 0}, {3, 2, 0}, {3, 0, 3}} {
		if _, err := New("smimea", Options{SMIMEA: &p}); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
}

// The certs-only SignedData holds the certificate and nothing else, and
// reads back with the CMS library and with openssl.
func TestCertsOnly(t *testing.T) {
	c := leaf(t, "bob@example.org")
	der := CertsOnly(c)
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(p7.Certificates) != 1 || !p7.Certificates[0].Equal(c) || len(p7.Signers) != 0 || len(p7.Content) != 0 {
		t.Errorf("%d certificates, %d signers, %d bytes of content", len(p7.Certificates), len(p7.Signers), len(p7.Content))
	}
	if !bytes.Equal(CertsOnly(c), der) {
		t.Error("not the same bytes twice")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		return
	}
	cmd := exec.Command("openssl", "pkcs7", "-inform", "DER", "-print_certs")
	cmd.Stdin = bytes.NewReader(der)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl pkcs7: %v", err)
	}
	block, _ := pem.Decode(out[bytes.Index(out, []byte("-----BEGIN")):])
	if block == nil || !bytes.Equal(block.Bytes, c.Raw) {
		t.Errorf("openssl pkcs7 -print_certs:\n%s", out)
	}
}

// unfold reads LDIF lines back (RFC 2849): a line starting with a space
// continues the one before.
func unfold(t *testing.T, ldif string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(ldif, "\n") {
		if len(l) > ldifLineLength {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
		if rest, ok := strings.CutPrefix(l, " "); ok {
			lines[len(lines)-1] += rest
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// LDIF: a modify record per address that replaces the two attributes,
// folded at 76 columns, the DN escaped; with LDAPAdd, the whole entry.
func TestLDIF(t *testing.T) {
	addr := "#first+tag@example.org"
	r, certs := folderWith(t, addr)
	c := certs[addr]
	b64 := base64.StdEncoding.EncodeToString
	got := unfold(t, export(t, r, "ldif", Options{LDAPBase: "ou=people,dc=example,dc=org"}))
	want := []string{
		"version: 1",
		"",
		`dn: mail=\#first\+tag@example.org,ou=people,dc=example,dc=org`,
		"changetype: modify",
		"replace: userSMIMECertificate",
		"userSMIMECertificate:: " + b64(CertsOnly(c)),
		"-",
		"replace: userCertificate;binary",
		"userCertificate;binary:: " + b64(c.Raw),
		"-",
		"",
		"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("modify:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = unfold(t, export(t, r, "ldif", Options{LDAPBase: "dc=example,dc=org", LDAPRDN: "uid", LDAPAdd: true}))
	want = []string{
		"version: 1",
		"",
		`dn: uid=\#first\+tag,dc=example,dc=org`,
		"changetype: add",
		"objectClass: inetOrgPerson",
		"cn: Test " + addr,
		"sn: #first+tag",
		"mail: " + addr,
		"uid: #first+tag",
		"userSMIMECertificate:: " + b64(CertsOnly(c)),
		"userCertificate;binary:: " + b64(c.Raw),
		"",
		"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("add:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, opts := range []Options{{}, {LDAPBase: "dc=x", LDAPRDN: "sn"}, {LDAPBase: "dc=x\ndn: cn=admin"}} {
		if _, err := New("ldif", opts); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
	if v := appendLDIFValue(nil, "cn", " José "); string(v) != "cn:: "+b64([]byte(" José "))+"\n" {
		t.Errorf("an unsafe value: %q", v)
	}
}

// JSON: one object per line with what list --json says, the profile, the
// stored time and the certificate.
func TestJSON(t *testing.T) {
	r, certs := folderWith(t, "a@example.org", "b@example.org")
	lines := strings.Split(strings.TrimSuffix(export(t, r, "json", Options{}), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, addr := range []string{"a@example.org", "b@example.org"} {
		var rec struct {
			Address, SHA256, Issuer, Profile string
			NotBefore                        time.Time `json:"not_before"`
			NotAfter                         time.Time `json:"not_after"`
			StoredAt                         time.Time `json:"stored_at"`
			Certificate                      []byte
		}
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatal(err)
		}
		c := certs[addr]
		sum := sha256.Sum256(c.Raw)
		if rec.Address != addr || rec.SHA256 != hex.EncodeToString(sum[:]) || !rec.NotBefore.Equal(c.NotBefore) ||
			!rec.NotAfter.Equal(c.NotAfter) || rec.Issuer != "CN=Test "+addr || rec.Profile != "" ||
			time.Since(rec.StoredAt) > time.Minute || !bytes.Equal(rec.Certificate, c.Raw) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
}

// The S/MIME BR profile comes from the reserved policy OIDs.
func TestProfile(t *testing.T) {
	oid := func(s string) x509.OID {
		o, err := x509.ParseOID(s)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, tc := range []struct {
		policies []x509.OID
		want     string
	}{
		{nil, ""},
		{[]x509.OID{oid("2.23.140.1.5.1.3")}, "strict"},
		{[]x509.OID{oid("1.3.6.1.4.1.99999.1"), oid("2.23.140.1.5.2.2")}, "multipurpose"},
		{[]x509.OID{oid("2.23.140.1.5.4.1")}, "legacy"},
		{[]x509.OID{oid("2.23.140.1.5.5.1"), oid("2.23.140.1.5.1.13")}, ""},
	} {
		if got := Profile(leaf(t, "p@example.org", tc.policies...)); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.policies, got, tc.want)
		}
	}
}

// PEM: each certificate after its address; into a folder, a file per
// address, rewritten only when it changes.
func TestPEMAndFolder(t *testing.T) {
	r, certs := folderWith(t, "a@example.org", "b@example.org")
	rest := []byte(export(t, r, "pem", Options{}))
	for _, addr := range []string{"a@example.org", "b@example.org"} {
		var block *pem.Block
		if !bytes.HasPrefix(rest, []byte("# "+addr+"\n")) {
			t.Fatalf("no address line for %s: %.40q", addr, rest)
		}
		if block, rest = pem.Decode(rest); block == nil || !bytes.Equal(block.Bytes, certs[addr].Raw) {
			t.Fatalf("%s: not its certificate", addr)
		}
	}
	dir := t.TempDir()
	f, _ := New("pem", Options{})
	if st, err := ExportDir(context.Background(), r, f, time.Time{}, dir); err != nil || st.Exported != 2 {
		t.Fatalf("ExportDir: %+v, %v", st, err)
	}
	path := filepath.Join(dir, "a@example.org.pem")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportDir(context.Background(), r, f, time.Time{}, dir); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || !info.ModTime().Equal(old) {
		t.Errorf("an unchanged file was rewritten")
	}
	data, err := os.ReadFile(path)
	if block, _ := pem.Decode(data); err != nil || block == nil || !bytes.Equal(block.Bytes, certs["a@example.org"].Raw) {
		t.Errorf("%s: not its certificate", path)
	}
}
