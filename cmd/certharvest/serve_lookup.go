package main

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// The lookup API lets an application that sends encrypted mail fetch a
// person's certificate from the --http listener:
//
//	GET /certs/{address}               the certificate, PEM (RFC 7468)
//	GET /certs/{address}?format=json   what the report says of it
//
// Every request carries the --lookup-token as a bearer token (RFC 6750
// §2.1). The address is normalised as the pipeline normalises From.
const (
	lookupPrefix = "/certs/"
	// lookupRealm names the protected space in WWW-Authenticate (RFC 6750
	// §3).
	lookupRealm = "certharvest"
	// pemChainType is the media type of a PEM certificate chain (RFC 8555
	// §9.1), here a chain of one.
	pemChainType = "application/pem-certificate-chain"
)

// lookupFlags are the flags of the lookup API.
type lookupFlags struct {
	token     string
	tokenFile string
}

func (f *lookupFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.token, "lookup-token", "", "serve GET /certs/ADDRESS on --http to clients sending this bearer `token`; prefer --lookup-token-file")
	fs.StringVar(&f.tokenFile, "lookup-token-file", "", "read the lookup API's bearer token from `file` (surrounding white space trimmed)")
}

// load returns the lookup token, or "" when the lookup API is off.
func (f *lookupFlags) load() (string, error) {
	if f.token != "" && f.tokenFile != "" {
		return "", usagef("give --lookup-token or --lookup-token-file, not both")
	}
	if f.tokenFile == "" {
		if f.token != "" && !isBearerToken(f.token) {
			return "", usagef("--lookup-token: want letters, digits and -._~+/ (with = at the end), as a bearer token is sent")
		}
		return f.token, nil
	}
	data, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("lookup token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("lookup token file %s is empty", f.tokenFile)
	}
	if !isBearerToken(token) {
		return "", fmt.Errorf("lookup token file %s: want letters, digits and -._~+/ (with = at the end), as a bearer token is sent", f.tokenFile)
	}
	return token, nil
}

// isBearerToken reports whether s is a b64token (RFC 6750 §2.1), the form
// a client can send in an Authorization header.
func isBearerToken(s string) bool {
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

// lookupHandler serves the lookup API from a certificate folder, read-only.
type lookupHandler struct {
	store    *output.CertStore
	tokenSum [sha256.Size]byte
	log      *slog.Logger
	// now judges expiry: the pipeline's clock (--at), so that the answer
	// agrees with the verdicts.
	now func() time.Time
}

func newLookupHandler(store *output.CertStore, token string, now func() time.Time, log *slog.Logger) *lookupHandler {
	return &lookupHandler{store: store, tokenSum: sha256.Sum256([]byte(token)), log: log, now: now}
}

// admit lets through a GET or HEAD request bearing the token; it answers
// any other itself (405, 401), logging what (lookup, metrics) was refused.
func (h *lookupHandler) admit(w http.ResponseWriter, r *http.Request, what string) bool {
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

// ServeHTTP implements http.Handler for the paths under lookupPrefix.
func (h *lookupHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.admit(w, r, "lookup") {
		return
	}
	addr, err := verify.NormalizeAddress(strings.TrimPrefix(r.URL.Path, lookupPrefix))
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
	cert, err := h.store.Load(addr)
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
		// As one element of `certharvest list --json`: the report's cert
		// object, with the address, the file and whether it has expired.
		path, _ := h.store.Path(addr)
		body, _ = json.Marshal(storedCert{Address: addr, CertInfo: verify.DescribeCertificate(cert), File: path,
			Expired: h.now().After(cert.NotAfter)})
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
func (h *lookupHandler) authorize(w http.ResponseWriter, r *http.Request) string {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+lookupRealm+`"`)
		if scheme == "" {
			return "no bearer token"
		}
		return "not a bearer token"
	}
	sum := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+lookupRealm+`", error="invalid_token"`)
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
