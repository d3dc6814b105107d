package testcorpus

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

const crlf = "\r\n"

// field is one header field, written as "Name: Value" CRLF. Value may
// contain folding (CRLF followed by white space, RFC 5322 §2.2.3).
type field struct{ Name, Value string }

func writeFields(b *bytes.Buffer, fields []field) {
	for _, f := range fields {
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString(crlf)
	}
}

// entity returns a MIME entity: header fields, the empty line, the body
// (RFC 5322 §2.1, RFC 2045 §3).
func entity(fields []field, body []byte) []byte {
	var b bytes.Buffer
	writeFields(&b, fields)
	b.WriteString(crlf)
	b.Write(body)
	return b.Bytes()
}

// multipartBody joins parts with boundary delimiters (RFC 2046 §5.1.1): the
// CRLF before "--boundary" belongs to the delimiter, not to the preceding
// part, so a part's bytes are exactly what is passed here.
func multipartBody(boundary, preamble string, parts ...[]byte) []byte {
	var b bytes.Buffer
	if preamble != "" {
		b.WriteString(preamble)
		b.WriteString(crlf)
	}
	for i, p := range parts {
		if i > 0 || preamble != "" {
			b.WriteString(crlf)
		}
		b.WriteString("--" + boundary + crlf)
		b.Write(p)
	}
	b.WriteString(crlf + "--" + boundary + "--" + crlf)
	return b.Bytes()
}

func newBoundary(tag string) string {
	var r [9]byte
	_, _ = rand.Read(r[:])
	return "----=_certharvest_" + tag + "_" + hex.EncodeToString(r[:])
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// base64Lines encodes b as base64 in lines of at most 76 characters, each
// ending in CRLF (RFC 2045 §6.8).
func base64Lines(b []byte) []byte {
	s := b64(b)
	var out bytes.Buffer
	for len(s) > 76 {
		out.WriteString(s[:76] + crlf)
		s = s[76:]
	}
	if s != "" {
		out.WriteString(s + crlf)
	}
	return out.Bytes()
}

// canonicalCRLF converts bare LF line endings to CRLF (RFC 5751 §3.1.1
// canonical form). CRLF pairs are left alone.
func canonicalCRLF(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// ToLF converts CRLF line endings to bare LF, as mail archived on Unix has.
func ToLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte(crlf), []byte("\n")) }

func formatDate(t time.Time) string {
	// RFC 5322 §3.3 date-time.
	return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")
}

// DKIMHeaderKeys are the header fields the fixture signs (RFC 6376 §5.4.1
// recommends these).
var DKIMHeaderKeys = []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}

// DKIMSign signs msg (CRLF) with the fixture key of domain, relaxed/relaxed
// (RFC 6376 §3.4.2, §3.4.4), and returns it with the DKIM-Signature field
// prepended. headerKeys defaults to DKIMHeaderKeys.
func (f *Fixture) DKIMSign(msg []byte, domain string, headerKeys ...string) ([]byte, error) {
	key, ok := f.DKIMKeys[domain]
	if !ok {
		return nil, fmt.Errorf("testcorpus: no DKIM key for %q", domain)
	}
	if len(headerKeys) == 0 {
		headerKeys = DKIMHeaderKeys
	}
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain:                 domain,
		Selector:               Selector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys,
	})
	if err != nil {
		return nil, fmt.Errorf("testcorpus: DKIM signing: %w", err)
	}
	return out.Bytes(), nil
}

// domainOf returns the part after the last '@', lower-cased.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}
