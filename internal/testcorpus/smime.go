package testcorpus

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// smimeOpts selects the S/MIME form of a signed entity.
type smimeOpts struct {
	opaque bool // application/pkcs7-mime signed-data instead of multipart/signed
	legacy bool // the pre-registration application/x-pkcs7-* media types of S/MIME v2 clients
	ber    bool // BER indefinite lengths (see BERIndefinite)
	chunk  int  // with ber and opaque: eContent chunk size
	// thunderbird uses Thunderbird's boundary style, preamble and
	// quoted parameters.
	thunderbird bool
	// tamper, if set, replaces the signed part in the message after the
	// signature was computed over the original.
	tamper func(signed []byte) []byte
	// garbage, if set, replaces the CMS bytes.
	garbage []byte
	// post, if set, rewrites the DER CMS before any BER conversion.
	post func(der []byte) ([]byte, error)
}

// smimeEntity signs inner (a complete MIME entity in CRLF canonical form,
// RFC 8551 §3.1.1) and returns the header fields and body of the S/MIME
// entity carrying it.
func (f *Fixture) smimeEntity(inner []byte, p cmsParams, o smimeOpts) ([]field, []byte, error) {
	p.detached = !o.opaque
	der, err := signCMS(inner, p)
	if err != nil {
		return nil, nil, err
	}
	if o.post != nil {
		if der, err = o.post(der); err != nil {
			return nil, nil, err
		}
	}
	if o.ber {
		chunk := 0
		if o.opaque {
			chunk = o.chunk
		}
		if der, err = BERIndefinite(der, chunk); err != nil {
			return nil, nil, err
		}
	}
	if o.garbage != nil {
		der = o.garbage
	}

	if o.opaque {
		// RFC 8551 §3.5.2 (RFC 5751 §3.4.2): signed-data in
		// application/pkcs7-mime, base64, the content inside the CMS.
		ct := "application/pkcs7-mime"
		if o.legacy {
			ct = "application/x-pkcs7-mime"
		}
		return []field{
			{"Content-Type", ct + "; smime-type=signed-data; name=smime.p7m"},
			{"Content-Transfer-Encoding", "base64"},
			{"Content-Disposition", "attachment; filename=smime.p7m"},
			{"Content-Description", "S/MIME Cryptographic Signature"},
		}, base64Lines(der), nil
	}

	// RFC 8551 §3.5.3 (RFC 5751 §3.4.3) and RFC 1847 §2.1: multipart/signed
	// with the content as first part and the detached CMS as second.
	proto := "application/pkcs7-signature"
	if o.legacy {
		proto = "application/x-pkcs7-signature"
	}
	boundary := newBoundary("signed")
	preamble := "This is an S/MIME signed message"
	sigFields := []field{
		{"Content-Type", proto + "; name=smime.p7s"},
		{"Content-Transfer-Encoding", "base64"},
		{"Content-Disposition", "attachment; filename=smime.p7s"},
		{"Content-Description", "S/MIME Cryptographic Signature"},
	}
	if o.thunderbird {
		boundary = "------------ms" + randDigits(24)
		preamble = "This is a cryptographically signed message in MIME format."
		sigFields[0].Value = proto + `; name="smime.p7s"`
		sigFields[2].Value = `attachment; filename="smime.p7s"`
	}
	part := inner
	if o.tamper != nil {
		part = o.tamper(inner)
	}
	fields := []field{{"Content-Type", fmt.Sprintf(
		"multipart/signed; protocol=%q; micalg=%s;%s boundary=%q", proto, micalg[p.alg.hash()], crlf, boundary)}}
	body := multipartBody(boundary, preamble, part, entity(sigFields, base64Lines(der)))
	return fields, body, nil
}

// micalg names the digest algorithms in a multipart/signed (RFC 8551
// §3.5.3.2).
var micalg = map[crypto.Hash]string{crypto.SHA1: "sha-1", crypto.SHA256: "sha-256", crypto.SHA384: "sha-384", crypto.SHA512: "sha-512"}

func randDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// head describes the top-level header of a generated message.
type head struct {
	from    []string // From field values; more than one only for multiple_from
	subject string
	date    time.Time
	extra   []field // inserted before MIME-Version
}

func (h head) fields(content []field) []field {
	date := h.date
	if date.IsZero() {
		date = SigningTime
	}
	var fs []field
	for _, fr := range h.from {
		fs = append(fs, field{"From", fr})
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	domain := "certharvest.test"
	if len(h.from) > 0 {
		if d := domainOf(strings.TrimSuffix(h.from[0], ">")); d != "" {
			domain = d
		}
	}
	fs = append(fs,
		field{"To", "certharvest archive <archive@certharvest.test>"},
		field{"Subject", h.subject},
		field{"Date", formatDate(date)},
		field{"Message-ID", "<" + hex.EncodeToString(id[:]) + "@" + domain + ">"},
	)
	fs = append(fs, h.extra...)
	fs = append(fs, field{"MIME-Version", "1.0"})
	return append(fs, content...)
}

// textEntity is a 7bit text/plain entity; text lines are joined with CRLF
// and the body ends with CRLF.
func textEntity(lines ...string) []byte {
	return entity([]field{
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "7bit"},
	}, []byte(strings.Join(lines, crlf)+crlf))
}

// stdCMS returns the usual CMS parameters: the signer's certificate, the
// intermediate in the certificate bag, signingTime SigningTime.
func (f *Fixture) stdCMS(cert *x509.Certificate, key crypto.Signer) cmsParams {
	if key == nil {
		key = f.LeafKey
	}
	return cmsParams{cert: cert, key: key, bag: []*x509.Certificate{f.Intermediate}, signingTime: SigningTime}
}

// MessageOption changes what SignedMessage produces.
type MessageOption func(*messageOptions)

type messageOptions struct {
	opaque  bool
	body    string
	subject string
	lf      bool
	ec      bool
	// notBefore is the signer certificate's NotBefore; zero: NotBefore.
	notBefore time.Time
	// leaves are signer certificates to use instead of fresh ones, by
	// address.
	leaves map[string]*x509.Certificate
	// issue, if set, issues the signer's certificate (WithProfile).
	issue func(f *Fixture, addr string) (*x509.Certificate, crypto.Signer, error)
	// revocable, when set, issues the signer's certificate (Revocable).
	revocable *revocable
}

// Opaque makes SignedMessage produce application/pkcs7-mime signed-data
// instead of multipart/signed.
func Opaque() MessageOption { return func(o *messageOptions) { o.opaque = true } }

// WithBody sets the text of the signed text/plain part (LF or CRLF line
// endings; converted to CRLF).
func WithBody(text string) MessageOption { return func(o *messageOptions) { o.body = text } }

// WithSubject sets the Subject.
func WithSubject(s string) MessageOption { return func(o *messageOptions) { o.subject = s } }

// ECIssuer makes SignedMessage issue the signer certificate from
// ECIntermediate (ECDSA P-256) instead of the RSA intermediate, which is
// included in the certificate bag instead. The signer key stays RSA-2048.
// Minting then costs two RSA-2048 signatures (CMS, DKIM) instead of three.
func ECIssuer() MessageOption { return func(o *messageOptions) { o.ec = true } }

// BareLF makes SignedMessage return the message with bare LF line endings.
func BareLF() MessageOption { return func(o *messageOptions) { o.lf = true } }

// WithNotBefore sets the start of the signer certificate's validity (it
// must lie before SigningTime); the end stays NotAfter. Two messages minted
// with one NotBefore carry two certificates with the same dates, told
// apart by their serial numbers (and signatures), as two certificates
// issued to one address on one day.
func WithNotBefore(t time.Time) MessageOption { return func(o *messageOptions) { o.notBefore = t } }

// WithLeaves makes SignedMessage sign with leaves[addr], a certificate
// from IssueLeaf for addr (key LeafKey), when there is one, instead of
// issuing a fresh certificate: many messages from one known sender, as
// real traffic and archive re-scans are.
func WithLeaves(leaves map[string]*x509.Certificate) MessageOption {
	return func(o *messageOptions) { o.leaves = leaves }
}

// SignedMessage mints a message that the verifier must accept (reason
// "ok"): From addr, S/MIME-signed by a fresh certificate for addr (SAN and
// subject emailAddress, key LeafKey, issued by the RSA intermediate, valid
// NotBefore..NotAfter, signingTime SigningTime), DKIM-signed with
// d=<domain of addr>, which must be one of DKIMDomains.
func (f *Fixture) SignedMessage(addr string, opts ...MessageOption) ([]byte, error) {
	var o messageOptions
	for _, opt := range opts {
		opt(&o)
	}
	domain := domainOf(addr)
	if _, ok := f.DKIMKeys[domain]; !ok {
		return nil, fmt.Errorf("testcorpus: %q: no DKIM key for domain %q (have %v)", addr, domain, DKIMDomains)
	}
	var cert *x509.Certificate
	var key crypto.Signer // nil: LeafKey
	var err error
	switch {
	case o.leaves[addr] != nil:
		cert = o.leaves[addr]
	case o.issue != nil:
		cert, key, err = o.issue(f, addr)
	default:
		spec := LeafSpec{Address: addr, SubjectEmail: true, ECIssuer: o.ec, NotBefore: o.notBefore}
		if r := o.revocable; r != nil {
			spec.Issuer, spec.IssuerKey, spec.OCSPServer, spec.CRLDistributionPoints = r.issuer, r.key, r.ocsp, r.crl
		}
		cert, err = f.IssueLeaf(spec)
	}
	if err != nil {
		return nil, err
	}
	params := f.stdCMS(cert, key)
	if o.ec {
		params.bag = []*x509.Certificate{f.ECIntermediate}
	}
	if o.revocable != nil {
		params.bag = []*x509.Certificate{o.revocable.issuer}
	}
	body := o.body
	if body == "" {
		body = "Hello from " + addr + ".\nThis message is signed.\n"
	}
	inner := entity([]field{
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "7bit"},
	}, canonicalCRLF([]byte(strings.TrimRight(body, "\r\n")+"\n")))
	subject := o.subject
	if subject == "" {
		subject = "Signed message from " + addr
	}
	fields, sbody, err := f.smimeEntity(inner, params, smimeOpts{opaque: o.opaque})
	if err != nil {
		return nil, err
	}
	msg, err := f.DKIMSign(entity(head{from: []string{addr}, subject: subject}.fields(fields), sbody), domain)
	if err != nil {
		return nil, err
	}
	if o.lf {
		msg = ToLF(msg)
	}
	return msg, nil
}

// SignedMessages mints one SignedMessage per address, using all CPUs.
// Minting is dominated by three RSA-2048 signatures per message
// (certificate, CMS, DKIM; two with ECIssuer), about 1.8 ms each on a
// 2-core test machine.
func (f *Fixture) SignedMessages(addrs []string, opts ...MessageOption) ([][]byte, error) {
	out := make([][]byte, len(addrs))
	errs := make([]error, len(addrs))
	workers := min(runtime.GOMAXPROCS(0), max(len(addrs), 1))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = f.SignedMessage(addrs[i], opts...)
			}
		}()
	}
	for i := range addrs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// BenchAddress returns the i-th of a series of distinct addresses spread
// over DKIMDomains, for benchmarks.
func BenchAddress(i int) string {
	return fmt.Sprintf("user%06d@%s", i, DKIMDomains[i%len(DKIMDomains)])
}

// certFirst moves the certificate cert to the front of the SignedData
// certificates field (RFC 5652 §5.1; the field is unsigned, so reordering
// leaves the signature valid). The result is DER.
func certFirst(cert *x509.Certificate) func([]byte) ([]byte, error) {
	return func(der []byte) ([]byte, error) {
		ci, _, err := readTLV(der)
		if err != nil {
			return nil, err
		}
		ciKids, err := children(ci.content)
		if err != nil {
			return nil, err
		}
		sd, _, err := readTLV(ciKids[1].content)
		if err != nil {
			return nil, err
		}
		sdKids, err := children(sd.content)
		if err != nil {
			return nil, err
		}
		var sdParts [][]byte
		found := false
		for _, k := range sdKids {
			if k.ident[0] != 0xa0 || found {
				sdParts = append(sdParts, k.full)
				continue
			}
			found = true
			certs, err := children(k.content)
			if err != nil {
				return nil, err
			}
			var first, rest [][]byte
			for _, c := range certs {
				if bytes.Equal(c.full, cert.Raw) {
					first = append(first, c.full)
				} else {
					rest = append(rest, c.full)
				}
			}
			if len(first) == 0 {
				return nil, errors.New("testcorpus: certificate not in bag")
			}
			sdParts = append(sdParts, definite(k.ident, append(first, rest...)...))
		}
		if !found {
			return nil, errors.New("testcorpus: SignedData has no certificates")
		}
		return definite(ci.ident, ciKids[0].full, definite(ciKids[1].ident, definite(sd.ident, sdParts...))), nil
	}
}

// definite encodes a constructed element with a definite length.
func definite(ident []byte, parts ...[]byte) []byte {
	var content []byte
	for _, p := range parts {
		content = append(content, p...)
	}
	out := append(append([]byte{}, ident...), derLength(len(content))...)
	return append(out, content...)
}
