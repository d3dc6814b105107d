package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// rsaKeyPEM is the mutator's own DKIM key (selector m1, and m3 and m4),
// made for this tool and used nowhere else: a test key, not a secret.
// It is fixed so that the signatures, and so the messages, are the same
// every run (an RSA PKCS #1 v1.5 signature is deterministic).
const rsaKeyPEM = `
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCxaQ3mbx6oN44g
EvZPZ7az0iFSimZtN/YJuNUL2d5hsOGRUmycN/yX0o+XxDCBYeHVmWRLjpDVqsuB
uUFufxhArJI375R81/gckeVu3NLhvMF4CXvQbzOBuMDNIIVHX9WFSwcR+R1TFyWm
02skHNVNxkO1K5i1Lon4aAcvsDa7l8l4X5dwQP0a7ofcrRSVi8Yr/rthVIdxX6hG
pUIKdjLJjEWJk6MYZkACHv6A5Wpi3ijCpF0eYs6GBDq7/fdGXEqB1rjnEZ5U964u
9aiyN0v53ScbJvO60BUuGDrFM4rcT5dd0fcXKfFhheMogRGkMW0Yr8Hhw5ZKxANi
r5nVl/l7AgMBAAECggEAALxtJKMaYluuP18398orQ/sfs0SqulJGNyUcRF44VRLT
fln0Ss06qY1jyVJOWml3DLIduRu6AxqGmWuucOoErKQEP672E6Ye7xnPdPj9xDAw
/bGZ+ppNGueS0s1xo1ARxgNMX+k2+dTGdB1vCNye9lS+JcUs1YRmnL0fWbXMv4hK
AgMLmGaftSYPXoIaeOTf/D1Cj5TsVLj2aJAAbAbbkkEty8N38g/S+U/deVQIles5
XiizJ8lBRn5Rzinkc7D3RUTYhun402A2S00UFL8hJozpvWfpjPhu++U39lQudKLk
O98T1Z8aKCmKk+OosK4Il3E5nI9gwgufjNt6MEkbzQKBgQDnFUFPVbXDjuGL7QfX
0uEOQJQJca9RCBTJ+vjf0s7KTKyjrxK+YmVemiU/vZtIF5O+XdY023a/ZgsZuH6l
w0m6iJrC6dCemzeeNq26YBRIE42NHDKyXfPZxURTHVhfTi6Kh7VXfoRm8iRa6Xqo
nzYWno7LKPyB97i5AECcYeEDrQKBgQDEijxPNz4DDwwGmu8qTxj9fBYNUZQot1nP
NSlWnCIvO0vcGASysAGZoM6K5CRFjUhDPguH7u2yJqmqZctg9+YQdWfW9PgukYL8
X6+cAhjxjxDnv3JFnabkAkskPr23EnZ5bcfJZp4HaJqNBOYKjFm0jtOdMm6nRim0
s2DrCHpWxwKBgQDVkqyBAYtzyaul4pXcIDgHLyJjNCI/t0NXhlDctP6QtJre0aF2
OoTMEZWZusk4sSnIyPuAcNHohgx+YikTVVHgR/8ZZHZ/EKAv5wNb/Q7hqsiqAcTN
W85TmGHUm4ug0iZrvI+a5QDEEMoPCDlofXXFJBh/pkryaBzfR19v6XrJJQKBgFuN
zZRVNoT0QHTfPaQm3oxOfnNL2kmxR5vXtt8Ksn3wEGGBqsaWaNho6W4X4rGno873
GyYCbiW8DvM6oigUss5d8rZWvTnsPOlVpZd1/qqgK47ZRuEZFIJIczp6I6QhbKEa
O6QdMmZfGwewDX1CbhNHKVqkAJnZfFoZ6X7zHxJHAoGBAJYCVS/582p0Avlh4v8m
s0TACZN4A/NLlhsZtC36DO7GJc0oRrjb77WfcowFLllUcHeqNzhdUQ8/s0ryQS5S
w0hPiqnG8x6v5hMMts7HeACugYesOFm5UiWsMNkbpDRZc/vEFvWJnvY3U3r3VzGw
VF6DTKOp9wQM8rO7HwIPbXQ7
-----END PRIVATE KEY-----
`

// signTime is the t= of every signature the mutator makes (2026-05-28).
const signTime = 1780000000

// Selectors of the mutator's keys, in each sample domain.
const (
	selRSA     = "m1" // RSA-2048, rsaKeyPEM
	selEd      = "m2" // Ed25519, from a fixed seed
	selTwice   = "m3" // two records: an error for DKIM (RFC 6376 §3.6.2.2)
	selRevoked = "m4" // an empty p=: revoked
)

// signDomains are the domains of the sample's DKIM keys.
var signDomains = []string{"example.com", "example.net", "example.org"}

// signer holds the mutator's DKIM keys.
type signer struct {
	rsa *rsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newSigner() (*signer, error) {
	block, _ := pem.Decode([]byte(rsaKeyPEM))
	if block == nil {
		return nil, fmt.Errorf("the embedded RSA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded RSA key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the embedded key is a %T, not RSA", k)
	}
	seed := sha256.Sum256([]byte("certharvest scripts/mutate ed25519 m2"))
	return &signer{rsa: rk, ed: ed25519.NewKeyFromSeed(seed[:])}, nil
}

// keyRecords returns the lines of a keys file (NAME<TAB>TXT) for the
// mutator's selectors in every sample domain.
func (s *signer) keyRecords() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.rsa.PublicKey)
	if err != nil {
		return "", fmt.Errorf("encoding the RSA public key: %w", err)
	}
	rsaRec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	edRec := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(s.ed.Public().(ed25519.PublicKey))
	var b strings.Builder
	b.WriteString("# scripts/mutate's keys: m1 RSA, m2 Ed25519, m3 listed twice, m4 revoked\n")
	for _, d := range signDomains {
		fmt.Fprintf(&b, "%s._domainkey.%s\t%s\n", selRSA, d, rsaRec)
		fmt.Fprintf(&b, "%s._domainkey.%s\t%s\n", selEd, d, edRec)
		fmt.Fprintf(&b, "%s._domainkey.%s\t%s\n", selTwice, d, rsaRec)
		fmt.Fprintf(&b, "%s._domainkey.%s\t%s\n", selTwice, d, rsaRec)
		fmt.Fprintf(&b, "%s._domainkey.%s\tv=DKIM1; k=rsa; p=\n", selRevoked, d)
	}
	return b.String(), nil
}

// sigSpec is one DKIM signature to make.
type sigSpec struct {
	domain, selector string
	ed25519          bool     // ed25519-sha256 with the m2 key, else RSA with the m1 key
	sha1             bool     // rsa-sha1 (refused by the pipeline as weak)
	simple           bool     // c=simple/simple, else relaxed/relaxed
	headers          []string // h=
	bodyLength       bool     // an l= tag covering the whole body
}

// sign returns msg with a DKIM-Signature field (RFC 6376 §5) for spec
// prepended. The hashes are computed over the message's CRLF form, as the
// pipeline verifies it; the field takes the line ending of msg's header.
func (s *signer) sign(msg []byte, spec sigSpec) ([]byte, error) {
	crlf := toCRLF(msg)
	var header, body []byte
	switch i := bytes.Index(crlf, []byte("\r\n\r\n")); {
	case bytes.HasPrefix(crlf, []byte("\r\n")):
		body = crlf[2:]
	case i >= 0:
		header, body = crlf[:i+2], crlf[i+4:]
	default:
		header = crlf
	}
	hash := crypto.SHA256
	alg := "rsa-sha256"
	switch {
	case spec.ed25519:
		alg = "ed25519-sha256"
	case spec.sha1:
		hash, alg = crypto.SHA1, "rsa-sha1"
	}
	canon := "relaxed/relaxed"
	if spec.simple {
		canon = "simple/simple"
		body = simpleBody(body)
	} else {
		body = relaxedBody(body)
	}
	bh := newHash(hash)
	bh.Write(body)
	var tags strings.Builder
	fmt.Fprintf(&tags, "v=1; a=%s; c=%s; d=%s; s=%s; t=%d;", alg, canon, spec.domain, spec.selector, signTime)
	fmt.Fprintf(&tags, " h=%s;", strings.Join(spec.headers, ":"))
	if spec.bodyLength {
		fmt.Fprintf(&tags, " l=%d;", len(body))
	}
	fmt.Fprintf(&tags, " bh=%s; b=", base64.StdEncoding.EncodeToString(bh.Sum(nil)))
	field := "DKIM-Signature: " + tags.String()

	fields := splitFields(header)
	h := newHash(hash)
	taken := make([]bool, len(fields))
	for _, name := range spec.headers {
		// Each name takes the last field of that name not yet taken
		// (§5.4.2).
		for i := len(fields) - 1; i >= 0; i-- {
			if !taken[i] && strings.EqualFold(fieldName(fields[i]), name) {
				h.Write(canonField(fields[i], spec.simple))
				taken[i] = true
				break
			}
		}
	}
	// The signature's own field, b= empty, without its line ending (§3.7).
	h.Write(bytes.TrimSuffix(canonField([]byte(field), spec.simple), []byte("\r\n")))
	var sig []byte
	var err error
	if spec.ed25519 {
		sig = ed25519.Sign(s.ed, h.Sum(nil))
	} else {
		sig, err = rsa.SignPKCS1v15(nil, s.rsa, hash, h.Sum(nil))
	}
	if err != nil {
		return nil, fmt.Errorf("DKIM signing: %w", err)
	}
	eol := "\r\n"
	if !bytes.Contains(headerOf(msg), []byte("\r\n")) && bytes.Contains(msg, []byte("\n")) {
		eol = "\n"
	}
	return append([]byte(field+base64.StdEncoding.EncodeToString(sig)+eol), msg...), nil
}

type hasher interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

func newHash(h crypto.Hash) hasher {
	if h == crypto.SHA1 {
		return sha1.New()
	}
	return sha256.New()
}

// canonField canonicalizes one header field, its line ending included:
// simple leaves it as it is; relaxed (§3.4.2) lower-cases the name,
// unfolds, reduces white space to one space and trims it around the
// value.
func canonField(f []byte, simple bool) []byte {
	if simple {
		return f
	}
	name, value, _ := bytes.Cut(f, []byte(":"))
	var b bytes.Buffer
	b.WriteString(strings.ToLower(strings.TrimRight(string(name), " \t")))
	b.WriteByte(':')
	value = bytes.ReplaceAll(value, []byte("\r\n"), nil)
	b.Write(bytes.TrimSpace(collapseWSP(value)))
	b.WriteString("\r\n")
	return b.Bytes()
}

// collapseWSP replaces every run of spaces and tabs by one space.
func collapseWSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inWSP := false
	for _, c := range b {
		if c == ' ' || c == '\t' {
			if !inWSP {
				out = append(out, ' ')
			}
			inWSP = true
			continue
		}
		inWSP = false
		out = append(out, c)
	}
	return out
}

// simpleBody is the simple body canonicalization (§3.4.3): the trailing
// empty lines reduced to one line ending.
func simpleBody(b []byte) []byte {
	for bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		b = b[:len(b)-2]
	}
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(bytes.Clone(b), "\r\n"...)
	}
	return b
}

// relaxedBody is the relaxed body canonicalization (§3.4.4): white space
// reduced within lines and removed at their ends, trailing empty lines
// removed.
func relaxedBody(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\r\n")) {
		text, ok := bytes.CutSuffix(line, []byte("\r\n"))
		out.Write(bytes.TrimRight(collapseWSP(text), " "))
		if ok {
			out.WriteString("\r\n")
		}
	}
	r := out.Bytes()
	for bytes.HasSuffix(r, []byte("\r\n\r\n")) {
		r = r[:len(r)-2]
	}
	if bytes.Equal(r, []byte("\r\n")) {
		return nil
	}
	if len(r) > 0 && !bytes.HasSuffix(r, []byte("\r\n")) {
		r = append(r, "\r\n"...)
	}
	return r
}
