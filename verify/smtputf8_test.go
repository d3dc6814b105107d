package verify

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/certharvest/certharvest/internal/testcorpus"
)

// otherName returns a GeneralName otherName of type oid whose value is
// inner (the EXPLICIT [0]'s content), DER.
func otherName(t *testing.T, oid asn1.ObjectIdentifier, inner []byte) asn1.RawValue {
	t.Helper()
	o, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner})
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, v...)}
}

// The SmtpUTF8Mailbox names of a SAN, and only those: other otherNames,
// other encodings, names a log must not print and broken DER give none.
func TestParseSmtpUTF8Mailboxes(t *testing.T) {
	utf8String := func(s string) []byte { return append([]byte{asn1.TagUTF8String, byte(len(s))}, s...) }
	ia5String := func(s string) []byte { return append([]byte{asn1.TagIA5String, byte(len(s))}, s...) }
	rfc822 := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte("ascii@example.com")}
	upn := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3} // Microsoft's UPN otherName
	box := func(s string) asn1.RawValue { return otherName(t, oidSmtpUTF8Mailbox, utf8String(s)) }
	seq := func(names ...asn1.RawValue) []byte {
		der, err := asn1.Marshal(names)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := seq(rfc822, box("jörg@xn--bcher-kva.example"), box("李雷@example.com"))
	for _, tt := range []struct {
		name string
		der  []byte
		want []string
	}{
		{"rfc822Name and two boxes", good, []string{"jörg@xn--bcher-kva.example", "李雷@example.com"}},
		{"no otherName", seq(rfc822), nil},
		{"a UPN", seq(otherName(t, upn, utf8String("jörg@example.com"))), nil},
		{"an IA5String", seq(otherName(t, oidSmtpUTF8Mailbox, ia5String("jorg@example.com"))), nil},
		{"empty", seq(box("")), nil},
		{"a bidirectional override", seq(box("jörg\u202e@example.com"), box("ok@example.com")), []string{"ok@example.com"}},
		{"a control character", seq(box("jörg\x1b[2J@example.com")), nil},
		{"a space", seq(box("jörg @example.com")), nil},
		{"not UTF-8", seq(box("j\xf6rg@example.com")), nil},
		{"truncated", good[:len(good)-3], nil},
		{"trailing garbage", append(good, 0x05, 0x00), []string{"jörg@xn--bcher-kva.example", "李雷@example.com"}},
		{"not a SEQUENCE", []byte{0x04, 0x00}, nil},
		{"nothing", nil, nil},
	} {
		if got := parseSmtpUTF8Mailboxes(tt.der); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A From whose local part is not ASCII matches a SmtpUTF8Mailbox only; an
// ASCII one an rfc822Name, or the subject emailAddress when the SAN has no
// address of either form (RFC 8550 §3, RFC 9598 §3 and §5).
func TestCheckIdentitySmtpUTF8(t *testing.T) {
	f := signingTimeFixture(t)
	leaf := func(spec testcorpus.LeafSpec) *x509.Certificate {
		c, err := f.IssueLeaf(spec)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const box = "jörg@xn--bcher-kva.example"
	both := leaf(testcorpus.LeafSpec{Address: "joerg@xn--bcher-kva.example", SmtpUTF8Mailboxes: []string{box}})
	for _, tt := range []struct {
		name, from string
		cert       *x509.Certificate
		ok         bool
	}{
		{"box", box, leaf(testcorpus.LeafSpec{Address: box, NoSAN: true, SmtpUTF8Mailboxes: []string{box}}), true},
		{"rfc822Name and box: the box", box, both, true},
		{"rfc822Name and box: the rfc822Name", "joerg@xn--bcher-kva.example", both, true},
		{"an ASCII address in a box", "ascii@example.com",
			leaf(testcorpus.LeafSpec{Address: "ascii@example.com", NoSAN: true, SmtpUTF8Mailboxes: []string{"ascii@example.com"}}), false},
		{"a box, and the subject emailAddress", "ascii@example.com",
			leaf(testcorpus.LeafSpec{Address: "ascii@example.com", NoSAN: true, SubjectEmail: true, SmtpUTF8Mailboxes: []string{box}}), false},
		{"the subject emailAddress alone (control)", "ascii@example.com",
			leaf(testcorpus.LeafSpec{Address: "ascii@example.com", NoSAN: true, SubjectEmail: true}), true},
		{"a UTF-8 subject emailAddress", box,
			leaf(testcorpus.LeafSpec{Address: box, NoSAN: true, SubjectEmail: true, SubjectEmailUTF8: true}), false},
		{"another box", box, leaf(testcorpus.LeafSpec{Address: box, NoSAN: true, SmtpUTF8Mailboxes: []string{"jürgen@xn--bcher-kva.example"}}), false},
	} {
		err := checkIdentity(tt.cert, tt.from, &story{mu: &sync.Mutex{}})
		if (err == nil) != tt.ok || err != nil && ReasonOf(err) != ReasonFromCertMismatch {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if got := DescribeCertificate(both).Emails; !slices.Equal(got, []string{"joerg@xn--bcher-kva.example", box}) {
		t.Errorf("Emails %q", got)
	}
	if got := certName(leaf(testcorpus.LeafSpec{Address: box, CommonName: "Jörg", NoSAN: true, SmtpUTF8Mailboxes: []string{box}})); got != box {
		t.Errorf("certName %q", got)
	}
}

// The email name constraints of the chain's CAs hold for SmtpUTF8Mailbox
// names as for rfc822Names (RFC 9598 §6), which crypto/x509 checks alone:
// on both paths, and with the intermediate's link to the root cached.
func TestSmtpUTF8NameConstraints(t *testing.T) {
	f := signingTimeFixture(t)
	tmpl := caTemplate("Constrained Intermediate")
	tmpl.PermittedEmailAddresses = []string{".example.com", "xn--bcher-kva.example", "only@example.org"}
	tmpl.ExcludedEmailAddresses = []string{"bad.example.com", "admin@excluded.example.com"}
	inter, err := testcorpus.Issue(tmpl, f.Root, f.DecoyKey.Public(), f.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(rfc822 []string, boxes ...string) *x509.Certificate {
		san, err := testcorpus.SubjectAltName(rfc822, boxes)
		if err != nil {
			t.Fatal(err)
		}
		c, err := testcorpus.Issue(&x509.Certificate{
			Subject:   pkix.Name{CommonName: "leaf"},
			NotBefore: testcorpus.NotBefore, NotAfter: testcorpus.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, ExtraExtensions: []pkix.Extension{san},
		}, inter, f.LeafKey.Public(), f.DecoyKey)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tt := range []struct {
		name   string
		signer *x509.Certificate
		ok     bool
	}{
		{"under a permitted domain", leaf(nil, "jörg@mail.example.com"), true},
		{"the permitted host", leaf(nil, "jörg@xn--bcher-kva.example"), true},
		{"the permitted host, upper case", leaf(nil, "jörg@XN--BCHER-KVA.EXAMPLE"), true},
		{"outside", leaf(nil, "jörg@example.net"), false},
		{"the parent of a .domain constraint", leaf(nil, "jörg@example.com"), false},
		{"a U-label for a permitted A-label", leaf(nil, "jörg@bücher.example"), false},
		{"a mailbox constraint's host", leaf(nil, "jörg@example.org"), false},
		{"excluded", leaf(nil, "jörg@bad.example.com"), false},
		{"excluded by a mailbox constraint's host", leaf(nil, "jörg@excluded.example.com"), false},
		{"one inside, one outside", leaf(nil, "jörg@mail.example.com", "jörg@example.net"), false},
		{"an rfc822Name outside (crypto/x509's check)", leaf([]string{"a@example.net"}), false},
		{"an rfc822Name inside and a box", leaf([]string{"a@mail.example.com"}, "jörg@mail.example.com"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, reference := range []bool{false, true} {
				p := &Pipeline{opts: Options{Roots: f.TrustPool(), Reference: reference}}
				for pass := range 2 { // the second with the link learnt
					_, err := p.verifyChain(tt.signer, []*x509.Certificate{inter}, testcorpus.At, &story{mu: &sync.Mutex{}})
					if tt.ok != (err == nil) || err != nil && ReasonOf(err) != ReasonCertUntrusted {
						t.Errorf("reference %v, pass %d: %v, want ok %v", reference, pass, err, tt.ok)
					}
					if err != nil && strings.Contains(tt.name, "box") && !strings.Contains(err.Error(), "RFC 9598") {
						t.Errorf("detail %q names no RFC 9598", err)
					}
				}
			}
		})
	}
}

// d= is compared with the From domain in A-labels, however it is written
// (RFC 8616 §4).
func TestAlignedIDN(t *testing.T) {
	for _, tt := range []struct {
		signing, from string
		align         Alignment
		want          bool
	}{
		{"xn--bcher-kva.example", "xn--bcher-kva.example", AlignStrict, true},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example", AlignStrict, true},
		{"bücher.example", "xn--bcher-kva.example", AlignStrict, true},
		{"mail.bücher.example", "xn--bcher-kva.example", AlignStrict, false},
		{"mail.bücher.example", "xn--bcher-kva.example", AlignRelaxed, true},
		{"mail.xn--bcher-kva.xn--fiqs8s", "xn--bcher-kva.xn--fiqs8s", AlignRelaxed, true},
		{"bucher.example", "xn--bcher-kva.example", AlignRelaxed, false},
		{"b\u00fccher.example\u202e", "xn--bcher-kva.example", AlignRelaxed, false},
	} {
		p := &Pipeline{opts: Options{Align: tt.align}}
		if got := p.aligned(tt.signing, tt.from); got != tt.want {
			t.Errorf("aligned(%q, %q) %s = %v, want %v", tt.signing, tt.from, tt.align, got, tt.want)
		}
	}
}
