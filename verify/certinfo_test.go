package verify

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// referenceFormatName and referenceCertificateLine are FormatName and
// logCertificate's message as they were before they were made faster: the
// text must not change.
func referenceFormatName(n pkix.Name) string {
	if len(n.Names) == 0 {
		return n.String()
	}
	names := map[string]string{"2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
		"2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.4": "SN", "2.5.4.42": "GN", "1.2.840.113549.1.9.1": "emailAddress"}
	parts := make([]string, 0, len(n.Names))
	for i := len(n.Names) - 1; i >= 0; i-- {
		atv := n.Names[i]
		name := atv.Type.String()
		if short, ok := names[name]; ok {
			name = short
		}
		parts = append(parts, name+"="+fmt.Sprint(atv.Value))
	}
	return strings.Join(parts, ",")
}

func referenceCertificateLine(c *x509.Certificate) string {
	key := KeyDescription(c.PublicKey)
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
		key = fmt.Sprintf("RSA-%d", k.N.BitLen())
	}
	return fmt.Sprintf("Certificate: subject email_address=%v,not_valid_before=%s,not_valid_after=%s,signature=%s,key=%s,issuer={%s}",
		certAddresses(c), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339),
		c.SignatureAlgorithm, key, referenceFormatName(c.Issuer))
}

func TestFormatNameUnchanged(t *testing.T) {
	oids := []asn1.ObjectIdentifier{{2, 5, 4, 3}, {2, 5, 4, 5}, {2, 5, 4, 6}, {2, 5, 4, 7}, {2, 5, 4, 8}, {2, 5, 4, 10},
		{2, 5, 4, 11}, {2, 5, 4, 4}, {2, 5, 4, 42}, oidEmailAddress, {2, 5, 4}, {2, 5, 4, 3, 1}, {2, 5, 4, 99}, {1, 2, 3}, {}}
	values := []any{"plain", "", "a,b=c", "caf\u00e9", 42, []byte("x"), nil, true, asn1.RawValue{Tag: 12, Bytes: []byte("raw")}}
	var names []pkix.Name
	names = append(names, pkix.Name{}, pkix.Name{CommonName: "only the field"})
	for i := range 200 {
		var n pkix.Name
		for j := range i % 5 {
			n.Names = append(n.Names, pkix.AttributeTypeAndValue{Type: oids[(i+j)%len(oids)], Value: values[(i*j+j)%len(values)]})
		}
		names = append(names, n)
	}
	for _, n := range names {
		if got, want := FormatName(n), referenceFormatName(n); got != want {
			t.Errorf("%v: got %q, want %q", n.Names, got, want)
		}
	}
}

// recorder is a handler that keeps the messages of the records.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestLogCertificateUnchanged(t *testing.T) {
	sample := loadFuzzSample(t)
	var certs []*x509.Certificate
	for _, e := range sample.signatures() {
		p7, err := parseCMS(e.cms)
		if err != nil {
			continue
		}
		certs = append(certs, p7.Certificates...)
	}
	if len(certs) < 10 {
		t.Fatalf("only %d certificates in the sample", len(certs))
	}
	rec := &recorder{}
	log := &story{handler: rec, mu: &sync.Mutex{}, id: "t"}
	for _, c := range certs {
		logCertificate(log, c, "signer")
	}
	log.flush(context.Background())
	if len(rec.msgs) != len(certs) {
		t.Fatalf("%d lines for %d certificates", len(rec.msgs), len(certs))
	}
	for i, c := range certs {
		if want := referenceCertificateLine(c); rec.msgs[i] != want {
			t.Errorf("got  %q\nwant %q", rec.msgs[i], want)
		}
	}
}

func TestDescribeMessageUnchanged(t *testing.T) {
	reference := func(m *Message) string {
		var b strings.Builder
		fmt.Fprintf(&b, "Message from %s", orDash(m.Source))
		if m.Path != "" {
			fmt.Fprintf(&b, ",path=%s", m.Path)
		}
		if m.RemoteAddr != "" {
			fmt.Fprintf(&b, ",remote=%s", m.RemoteAddr)
		}
		if m.EnvelopeFrom != "" || len(m.EnvelopeTo) > 0 {
			fmt.Fprintf(&b, ",msg_from=%s,rcpt_to=%s", m.EnvelopeFrom, strings.Join(m.EnvelopeTo, " "))
		}
		return b.String()
	}
	for _, m := range []*Message{
		{}, {Path: "/a b/c.eml", Envelope: Envelope{Source: "scan"}}, {Envelope: Envelope{Source: "smtp", RemoteAddr: "192.0.2.1:25", EnvelopeFrom: "a@x.org"}},
		{Envelope: Envelope{Source: "webhook", EnvelopeTo: []string{"b@y.org", "c@z.org"}}}, {Envelope: Envelope{EnvelopeTo: []string{""}}},
		{Path: "p", Envelope: Envelope{Source: "smtp", RemoteAddr: "r", EnvelopeFrom: "f", EnvelopeTo: []string{"t1", "t2", "t3"}}},
	} {
		if got, want := describeMessage(m), reference(m); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
