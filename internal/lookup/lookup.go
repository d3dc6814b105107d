// Package lookup serves the certificate lookup API, with which an
// application that sends encrypted mail fetches a person's certificate from
// certharvest's certificate folder:
//
//	GET /certs/{address}               the certificate, PEM (RFC 7468)
//	GET /certs/{address}?format=json   what the report says of it (StoredCert)
//
// Every request carries the configured token as a bearer token (RFC 6750
// §2.1); without it the answer is 401 with a WWW-Authenticate challenge
// (§3), before the address is even read. The token is compared in constant
// time, whatever its length, and is never logged nor echoed. The address is
// normalised as the pipeline normalises From (verify.NormalizeAddress), so
// that Bob@Example.COM finds the certificate stored for bob@example.com.
//
// The API only reads: it serves GET and HEAD (405 otherwise) from a store
// it only reads (output.CertReader): a folder opened read-only
// (output.ReadCertStore, through output.FolderReader), or PostgreSQL. Its refusals, and errors, are
// answered as the webhook answers them, {"message": ...} in JSON.
//
// Guard puts the same token check in front of another endpoint: serve uses
// it for /metrics on the public listener.
package lookup

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const (
	// Prefix is the path under which a Handler serves: mount it there.
	Prefix = "/certs/"
	// realm names the protected space in WWW-Authenticate (RFC 6750 §3).
	realm = "certharvest"
	// pemChainType is the media type of a PEM certificate chain (RFC 8555
	// §9.1), here a chain of one.
	pemChainType = "application/pem-certificate-chain"
)

// StoredCert describes a stored certificate: the report's cert object, with
// the address it is stored for, its file, and whether it has expired. It is
// the API's answer with ?format=json, and one element of the array that
// `certharvest list --json` prints.
type StoredCert struct {
	Address string `json:"address"`
	*verify.CertInfo
	File    string `json:"file"`
	Expired bool   `json:"expired"`
	// SigningCert is the address's signing certificate when it is not
	// this one, the certificate to encrypt to (a dual-key sender); only
	// in the API's answer.
	SigningCert *verify.CertInfo `json:"signing_cert,omitempty"`
	// Capabilities are the sender's SMIMECapabilities recorded with the
	// certificate, in their order of preference (AES-256-GCM, RSAES-OAEP,
	// ...): what the sending application should encrypt with; only in the
	// API's answer.
	Capabilities []string `json:"capabilities,omitempty"`
}

// Describe returns the StoredCert of c, stored for addr in file, its expiry
// judged at the time at.
func Describe(addr, file string, c *x509.Certificate, at time.Time) StoredCert {
	return StoredCert{Address: addr, CertInfo: verify.DescribeCertificate(c), File: file, Expired: at.After(c.NotAfter)}
}

// IsBearerToken reports whether s is a b64token (RFC 6750 §2.1), the form
// a client can send in an Authorization header: letters, digits and
// -._~+/, with = at the end only.
func IsBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// Options configure a Handler. The zero value of each field but Token
// means its default.
type Options struct {
	// Token is the bearer token a client must send; required, a b64token
	// (IsBearerToken).
	Token string
	// Now judges expiry (StoredCert.Expired): give the pipeline's clock,
	// so that the answer agrees with the verdicts. Default time.Now.
	Now func() time.Time
	// Logger receives a line for each request answered or refused (never
	// the token). Default: discard.
	Logger *slog.Logger
}

// Handler serves the lookup API from a certificate store, read-only.
type Handler struct {
	store    output.CertReader
	tokenSum [sha256.Size]byte
	now      func() time.Time
	log      *slog.Logger
}

// NewHandler returns the lookup API over store, which it only reads (a
// folder opened with output.ReadCertStore, or PostgreSQL). It fails
// without a valid opts.Token.
func NewHandler(store output.CertReader, opts Options) (*Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("lookup: a token is required")
	}
	if !IsBearerToken(opts.Token) {
		return nil, errors.New("lookup: the token is not a bearer token: want letters, digits and -._~+/ (with = at the end)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: store, tokenSum: sha256.Sum256([]byte(opts.Token)), now: opts.Now, log: opts.Logger}, nil
}

// Guard returns a handler that serves next only to GET and HEAD requests
// bearing the token, and answers any other as the lookup API does (405,
// 401), logging a refusal as "what 401: why".
func (h *Handler) Guard(what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.admit(w, r, what) {
			next.ServeHTTP(w, r)
		}
	})
}

// admit lets through a GET or HEAD request bearing the token; it answers
// any other itself (405, 401), logging what (lookup, metrics) was refused.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, what string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONMessage(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return false
	}
	if why := h.authorize(w, r); why != "" {
		h.log.Warn(what+" 401: "+why, "remote", r.RemoteAddr)
		writeJSONMessage(w, http.StatusUnauthorized, "A valid bearer token is required")
		return false
	}
	return true
}

// ServeHTTP implements http.Handler for the paths under Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.admit(w, r, "lookup") {
		return
	}
	addr, err := verify.NormalizeAddress(strings.TrimPrefix(r.URL.Path, Prefix))
	if err != nil {
		h.log.Info("lookup 400: "+err.Error(), "remote", r.RemoteAddr)
		// An answer starts with a capital, as the webhook's do.
		msg := err.Error()
		writeJSONMessage(w, http.StatusBadRequest, strings.ToUpper(msg[:1])+msg[1:])
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "pem" && format != "json" {
		writeJSONMessage(w, http.StatusBadRequest, fmt.Sprintf("Unknown format %q: want pem or json", format))
		return
	}
	// The certificate to encrypt to; with ?format=json, also what is kept
	// with it.
	var stored output.StoredCertificate
	if format == "json" {
		stored, err = h.store.LoadStored(r.Context(), addr)
	} else {
		stored.Cert, err = h.store.Load(r.Context(), addr)
	}
	cert := stored.Cert
	if errors.Is(err, fs.ErrNotExist) {
		h.log.Info("lookup 404 "+addr, "remote", r.RemoteAddr)
		writeJSONMessage(w, http.StatusNotFound, "No certificate for "+addr)
		return
	}
	if err != nil {
		h.log.Error("lookup 500 "+addr+": reading the certificate failed", "error", err, "remote", r.RemoteAddr)
		writeJSONMessage(w, http.StatusInternalServerError, "Cannot read the certificate")
		return
	}
	h.log.Info("lookup 200 "+addr, "remote", r.RemoteAddr, "format", cmp.Or(format, "pem"))

	var body []byte
	if format == "json" {
		path, _ := h.store.Path(addr)
		answer := Describe(addr, path, cert, h.now())
		answer.Capabilities = stored.Capabilities
		if stored.Signing != nil {
			answer.SigningCert = verify.DescribeCertificate(stored.Signing)
		}
		body, _ = json.Marshal(answer)
		body = append(body, '\n')
		w.Header().Set("Content-Type", "application/json")
	} else {
		body = output.EncodeCertificatePEM(cert)
		w.Header().Set("Content-Type", pemChainType)
	}
	// A certificate can be replaced at any time: no cache keeps it.
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusOK, body)
}

// authorize checks the bearer token (RFC 6750 §2.1), in constant time and
// whatever its length; the token is never logged. On failure it sets
// WWW-Authenticate (§3: with error="invalid_token" only when a token was
// sent) and returns why, for the log.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) string {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		if scheme == "" {
			return "no bearer token"
		}
		return "not a bearer token"
	}
	sum := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
		return "token does not match"
	}
	return ""
}

// writeJSONMessage answers {"message": msg}, as the webhook does.
func writeJSONMessage(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, status, append(body, '\n'))
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}
