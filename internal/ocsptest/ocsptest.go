// Package ocsptest runs an OCSP responder (RFC 6960) and a CRL server (RFC
// 5280 §5) on a loopback port, for tests and benchmarks of revocation
// checking: an httptest server in the process, answering with responses
// and CRLs made and signed by golang.org/x/crypto/ocsp and crypto/x509,
// for the CAs it is given. What it answers is configurable per serial
// number (good, revoked, unknown) and as a whole (the validity window, the
// signer, a delay, an HTTP error, a body of the test's choice), so that a
// test can make it a good responder, a slow one, one that lies or one that
// is gone.
package ocsptest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// CA is a certificate authority the server answers for: OCSP about the
// certificates it issued, and its CRL at CRLURL(name).
type CA struct {
	Name string // the CRL's file name, without .crl
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Signer signs OCSP responses instead of the CA: a delegated responder
// (its certificate is sent with the response), or, for a test, a
// responder that is not authorised.
type Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Server is a running responder and CRL server. Its fields are set with
// its methods, safe while it runs.
type Server struct {
	URL string // http://127.0.0.1:PORT
	srv *httptest.Server

	mu       sync.Mutex
	cas      []CA
	now      func() time.Time
	validFor time.Duration
	revoked  map[string]revocation // by serial number, decimal
	unknown  map[string]bool
	signer   *Signer
	delay    time.Duration
	status   int
	body     []byte
	crlPad   int

	ocspHits, crlHits atomic.Int64
}

type revocation struct {
	at     time.Time
	reason int
}

// Start starts a server for the CAs on a free port of 127.0.0.1. Its
// answers are valid from now() - 1h to now() + 7 days (SetWindow changes
// it). Stop it with Close.
func Start(now func() time.Time, cas ...CA) *Server {
	s := newServer(now, cas)
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// StartAt is Start on the address addr (host:port), for certificates
// minted beforehand with its URLs (scripts/benchocsp).
func StartAt(addr string, now func() time.Time, cas ...CA) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newServer(now, cas)
	s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

func newServer(now func() time.Time, cas []CA) *Server {
	s := &Server{cas: cas, now: now, validFor: 7 * 24 * time.Hour,
		revoked: map[string]revocation{}, unknown: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ocsp", s.serveOCSP)
	mux.HandleFunc("/crl/", s.serveCRL)
	s.srv = httptest.NewUnstartedServer(mux)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// OCSPURL is the responder's URL, for a certificate's AIA.
func (s *Server) OCSPURL() string { return s.URL + "/ocsp" }

// CRLURL is the URL of the CRL of the CA named name.
func (s *Server) CRLURL(name string) string { return s.URL + "/crl/" + name + ".crl" }

// OCSPHits and CRLHits count the requests received.
func (s *Server) OCSPHits() int64 { return s.ocspHits.Load() }

// CRLHits counts the CRL requests received.
func (s *Server) CRLHits() int64 { return s.crlHits.Load() }

// AddCA makes the server answer for one more CA.
func (s *Server) AddCA(ca CA) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cas = append(s.cas, ca)
}

// Revoke marks the certificate of serial revoked at at, for reason (a
// CRLReason), in OCSP and in the CRLs.
func (s *Server) Revoke(serial *big.Int, at time.Time, reason int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[serial.String()] = revocation{at, reason}
}

// Unknown makes OCSP answer "unknown" for serial (the CRLs do not list it).
func (s *Server) Unknown(serial *big.Int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknown[serial.String()] = true
}

// SetWindow makes answers valid for validFor after now() - 1h; a negative
// validFor makes answers without nextUpdate.
func (s *Server) SetWindow(now func() time.Time, validFor time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now, s.validFor = now, validFor
}

// SignWith makes OCSP responses signed by signer (nil: by the CA).
func (s *Server) SignWith(signer *Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer = signer
}

// Delay makes every answer wait d (or until the client gives up).
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Fail makes every answer an HTTP error of status code (0: none).
func (s *Server) Fail(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// Body makes every answer body (nil: the real answers).
func (s *Server) Body(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// PadCRL makes every CRL answer n bytes of zeros instead, streamed: a CRL
// too large to be read.
func (s *Server) PadCRL(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crlPad = n
}

// config is what an answer is made with, read once per request.
type config struct {
	cas      []CA
	now      time.Time
	validFor time.Duration
	revoked  map[string]revocation
	unknown  map[string]bool
	signer   *Signer
	delay    time.Duration
	status   int
	body     []byte
	crlPad   int
}

func (s *Server) config() config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := config{cas: slices.Clone(s.cas), now: s.now(), validFor: s.validFor, revoked: map[string]revocation{}, unknown: map[string]bool{},
		signer: s.signer, delay: s.delay, status: s.status, body: s.body, crlPad: s.crlPad}
	for k, v := range s.revoked {
		c.revoked[k] = v
	}
	for k, v := range s.unknown {
		c.unknown[k] = v
	}
	return c
}

// prelude applies the delay, error and body settings; it reports whether
// the answer was given.
func (c *config) prelude(w http.ResponseWriter, r *http.Request) bool {
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-r.Context().Done():
			return true
		}
	}
	if c.status != 0 {
		http.Error(w, "failing as told", c.status)
		return true
	}
	if c.body != nil {
		w.Write(c.body)
		return true
	}
	return false
}

// window returns an answer's thisUpdate and nextUpdate.
func (c *config) window() (time.Time, time.Time) {
	this := c.now.Add(-time.Hour).Truncate(time.Second)
	if c.validFor < 0 {
		return this, time.Time{}
	}
	return this, this.Add(c.validFor)
}

// serveOCSP answers a request sent with POST (RFC 6960 A.1).
func (s *Server) serveOCSP(w http.ResponseWriter, r *http.Request) {
	s.ocspHits.Add(1)
	c := s.config()
	// The body read first: only then does the server notice a client
	// that gives up (r.Context ends), which a delay waits for.
	der, err := io.ReadAll(io.LimitReader(r.Body, 10000))
	if err != nil || c.prelude(w, r) {
		return
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	ca, ok := c.issuerOf(req)
	if !ok {
		w.Write(ocsp.UnauthorizedErrorResponse)
		return
	}
	this, next := c.window()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: this, NextUpdate: next,
		IssuerHash: req.HashAlgorithm}
	if rv, ok := c.revoked[req.SerialNumber.String()]; ok {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rv.at, rv.reason
	} else if c.unknown[req.SerialNumber.String()] {
		tmpl.Status = ocsp.Unknown
	}
	signerCert, key := ca.Cert, ca.Key
	if c.signer != nil {
		signerCert, key, tmpl.Certificate = c.signer.Cert, c.signer.Key, c.signer.Cert
	}
	resp, err := ocsp.CreateResponse(ca.Cert, signerCert, tmpl, key)
	if err != nil {
		w.Write(ocsp.InternalErrorErrorResponse)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

// issuerOf finds the CA a request names, by the hashes of its name and key.
func (c *config) issuerOf(req *ocsp.Request) (CA, bool) {
	for _, ca := range c.cas {
		if !req.HashAlgorithm.Available() {
			break
		}
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(ca.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
			continue
		}
		h := req.HashAlgorithm.New()
		h.Write(spki.PublicKey.RightAlign())
		keyHash := h.Sum(nil)
		h.Reset()
		h.Write(ca.Cert.RawSubject)
		if string(keyHash) == string(req.IssuerKeyHash) && string(h.Sum(nil)) == string(req.IssuerNameHash) {
			return ca, true
		}
	}
	return CA{}, false
}

// serveCRL answers the CRL of the CA named in the path: every revoked
// serial number, whichever CA issued it (a test revokes its own).
func (s *Server) serveCRL(w http.ResponseWriter, r *http.Request) {
	s.crlHits.Add(1)
	c := s.config()
	if c.prelude(w, r) {
		return
	}
	if c.crlPad > 0 {
		w.Header().Set("Content-Type", "application/pkix-crl")
		zeros := make([]byte, 64<<10)
		for n := c.crlPad; n > 0; n -= len(zeros) {
			if _, err := w.Write(zeros[:min(n, len(zeros))]); err != nil {
				return
			}
		}
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/crl/"), ".crl")
	for _, ca := range c.cas {
		if ca.Name != name {
			continue
		}
		crl, err := c.crl(ca)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl)
		return
	}
	http.NotFound(w, r)
}

func (c *config) crl(ca CA) ([]byte, error) {
	this, next := c.window()
	if next.IsZero() {
		next = this.Add(time.Hour) // a CRL must have one (RFC 5280 §5.1.2.5); x509 requires it
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(this.Unix()), ThisUpdate: this, NextUpdate: next}
	for serial, rv := range c.revoked {
		n, _ := new(big.Int).SetString(serial, 10)
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: n, RevocationTime: rv.at, ReasonCode: rv.reason})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("ocsptest: CRL of %s: %w", ca.Name, err)
	}
	return der, nil
}
