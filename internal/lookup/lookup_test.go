package lookup_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const lookupTestToken = "lk-7c2e9a.Zq+/=="

// lookupFixture is a certificate folder holding bob@example.com's
// certificate, and the lookup handler over it.
type lookupFixture struct {
	h        *lookup.Handler
	certFile string
	cert     *x509.Certificate
	log      *bytes.Buffer
}

func newLookupFixture(t *testing.T) *lookupFixture {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := testcorpus.SelfSigned(&x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Bob"},
		EmailAddresses: []string{"bob@example.com"},
		NotBefore:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, key)
	if err != nil {
		t.Fatal(err)
	}
	writable, err := output.OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := writable.Store(context.Background(), "bob@example.com", cert)
	if err != nil {
		t.Fatal(err)
	}
	store, err := output.ReadCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := &bytes.Buffer{}
	h, err := lookup.NewHandler(output.FolderReader{Store: store}, lookup.Options{Token: lookupTestToken,
		Now:    func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) },
		Logger: slog.New(output.NewLogHandler(log, slog.LevelDebug))})
	if err != nil {
		t.Fatal(err)
	}
	return &lookupFixture{h: h, certFile: stored.Path, cert: cert, log: log}
}

func lookupRequest(h http.Handler, method, target, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "198.51.100.7:50000"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// jsonMessage returns the message of a {"message": ...} answer.
func jsonMessage(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct{ Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Message == "" {
		t.Errorf("answer %q is not {\"message\": ...}: %v", w.Body.String(), err)
	}
	return body.Message
}

func TestLookupHandler(t *testing.T) {
	f := newLookupFixture(t)
	pemFile, err := os.ReadFile(f.certFile)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + lookupTestToken
	wantPEM := func(t *testing.T, w *httptest.ResponseRecorder) {
		if ct := w.Header().Get("Content-Type"); ct != "application/pem-certificate-chain" {
			t.Errorf("Content-Type %q", ct)
		}
		if !bytes.Equal(w.Body.Bytes(), pemFile) {
			t.Errorf("body differs from the certificate file:\n%s", w.Body)
		}
	}
	wantMessage := func(sub string) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, w *httptest.ResponseRecorder) {
			if msg := jsonMessage(t, w); !strings.Contains(msg, sub) {
				t.Errorf("message %q lacks %q", msg, sub)
			}
		}
	}
	wantChallenge := func(challenge string) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, w *httptest.ResponseRecorder) {
			if got := w.Header().Get("WWW-Authenticate"); got != challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, challenge)
			}
			wantMessage("bearer token")(t, w)
		}
	}
	for _, tt := range []struct {
		name, method, target, auth string
		status                     int
		check                      func(*testing.T, *httptest.ResponseRecorder)
	}{
		{"PEM", "GET", "/certs/bob@example.com", bearer, 200, wantPEM},
		{"PEM asked for", "GET", "/certs/bob@example.com?format=pem", bearer, 200, wantPEM},
		{"address normalised", "GET", "/certs/Bob@Example.COM", bearer, 200, wantPEM},
		{"address percent-encoded", "GET", "/certs/bob%40example.com", bearer, 200, wantPEM},
		{"scheme in any case", "GET", "/certs/bob@example.com", "bearer  " + lookupTestToken, 200, wantPEM},
		{"HEAD", "HEAD", "/certs/bob@example.com", bearer, 200, nil},
		{"JSON", "GET", "/certs/Bob@example.com?format=json", bearer, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got lookup.StoredCert
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			want := lookup.StoredCert{Address: "bob@example.com", CertInfo: verify.DescribeCertificate(f.cert), File: f.certFile}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("metadata\n%s\nwant\n%s", gotJSON, wantJSON)
			}
		}},
		{"no certificate", "GET", "/certs/alice@example.com", bearer, 404, wantMessage("alice@example.com")},
		{"no certificate, JSON", "GET", "/certs/alice@example.com?format=json", bearer, 404, wantMessage("No certificate")},
		{"invalid address", "GET", "/certs/not-an-address", bearer, 400, wantMessage("Invalid address")},
		{"no address", "GET", "/certs/", bearer, 400, wantMessage("Invalid address")},
		{"path in the address", "GET", "/certs/..%2Fbob@example.com", bearer, 400, wantMessage("Invalid address")},
		{"file name in the address", "GET", "/certs/bob@example.com.crt/x", bearer, 400, wantMessage("Invalid address")},
		{"unknown format", "GET", "/certs/bob@example.com?format=der", bearer, 400, wantMessage("format")},
		{"no token", "GET", "/certs/bob@example.com", "", 401, wantChallenge(`Bearer realm="certharvest"`)},
		{"wrong token", "GET", "/certs/bob@example.com", "Bearer wrong", 401,
			wantChallenge(`Bearer realm="certharvest", error="invalid_token"`)},
		{"token's prefix", "GET", "/certs/bob@example.com", "Bearer " + lookupTestToken[:5], 401,
			wantChallenge(`Bearer realm="certharvest", error="invalid_token"`)},
		{"token with more", "GET", "/certs/bob@example.com", bearer + "x", 401,
			wantChallenge(`Bearer realm="certharvest", error="invalid_token"`)},
		{"wrong scheme", "GET", "/certs/bob@example.com", "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+lookupTestToken)), 401,
			wantChallenge(`Bearer realm="certharvest"`)},
		{"token without scheme", "GET", "/certs/bob@example.com", lookupTestToken, 401, wantChallenge(`Bearer realm="certharvest"`)},
		{"no token, no certificate", "GET", "/certs/alice@example.com", "", 401, nil},
		{"POST", "POST", "/certs/bob@example.com", bearer, 405, func(t *testing.T, w *httptest.ResponseRecorder) {
			if allow := w.Header().Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("Allow %q", allow)
			}
			wantMessage("Method Not Allowed")(t, w)
		}},
		{"DELETE", "DELETE", "/certs/bob@example.com", bearer, 405, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := lookupRequest(f.h, tt.method, tt.target, tt.auth)
			if w.Code != tt.status {
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.target, w.Code, tt.status, w.Body)
			}
			if tt.check != nil {
				tt.check(t, w)
			}
			if w.Code == 200 && w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if strings.Contains(w.Body.String(), lookupTestToken) {
				t.Error("the answer shows the token")
			}
		})
	}
	log := f.log.String()
	for _, re := range []string{
		`INFO  lookup 200 bob@example\.com remote=198\.51\.100\.7:50000 format=pem\n`,
		`INFO  lookup 200 bob@example\.com remote=198\.51\.100\.7:50000 format=json\n`,
		`INFO  lookup 404 alice@example\.com remote=198\.51\.100\.7:50000\n`,
		`WARN  lookup 401: no bearer token remote=198\.51\.100\.7:50000\n`,
		`WARN  lookup 401: token does not match remote=198\.51\.100\.7:50000\n`,
		`WARN  lookup 401: not a bearer token remote=198\.51\.100\.7:50000\n`,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("log lacks %s", re)
		}
	}
	if strings.Contains(log, lookupTestToken[:8]) {
		t.Errorf("the log shows the token:\n%s", log)
	}
}

// A certificate file that cannot be read is a 500, not a 404.
func TestLookupUnreadableCertificate(t *testing.T) {
	f := newLookupFixture(t)
	if err := os.WriteFile(f.certFile, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := lookupRequest(f.h, "GET", "/certs/bob@example.com", "Bearer "+lookupTestToken)
	if w.Code != 500 {
		t.Fatalf("%d, want 500: %s", w.Code, w.Body)
	}
	jsonMessage(t, w)
}

func TestNewHandlerToken(t *testing.T) {
	store, err := output.ReadCertStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "a b", "==", `a"b`} {
		if _, err := lookup.NewHandler(output.FolderReader{Store: store}, lookup.Options{Token: token}); err == nil {
			t.Errorf("token %q: no error", token)
		}
	}
	// Zero Now and Logger mean their defaults.
	h, err := lookup.NewHandler(output.FolderReader{Store: store}, lookup.Options{Token: "t0k"})
	if err != nil {
		t.Fatal(err)
	}
	if w := lookupRequest(h, "GET", "/certs/bob@example.com", "Bearer t0k"); w.Code != 404 {
		t.Errorf("%d, want 404: %s", w.Code, w.Body)
	}
}

func TestIsBearerToken(t *testing.T) {
	for s, want := range map[string]bool{
		"abc-123": true, "lk-7c2e9a.Zq+/==": true, "a~b_c": true, "abc=": true,
		"": false, "==": false, "a b": false, "a=b": false, `a"b`: false, "é": false, "a,b": false,
	} {
		if got := lookup.IsBearerToken(s); got != want {
			t.Errorf("IsBearerToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// Guard lets through to the next handler only what the lookup itself would
// admit, and logs its refusals under the name it is given.
func TestGuard(t *testing.T) {
	f := newLookupFixture(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("next")) })
	g := f.h.Guard("metrics", next)
	for _, tt := range []struct {
		method, auth string
		status       int
		body         string
	}{
		{"GET", "Bearer " + lookupTestToken, 200, "next"},
		{"HEAD", "Bearer " + lookupTestToken, 200, "next"},
		{"GET", "", 401, "A valid bearer token is required"},
		{"GET", "Bearer wrong", 401, "A valid bearer token is required"},
		{"POST", "Bearer " + lookupTestToken, 405, "Method Not Allowed"},
	} {
		w := lookupRequest(g, tt.method, "/metrics", tt.auth)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("%s with %q: %d %q, want %d with %q", tt.method, tt.auth, w.Code, w.Body, tt.status, tt.body)
		}
	}
	for _, want := range []string{
		"WARN  metrics 401: no bearer token remote=198.51.100.7:50000\n",
		"WARN  metrics 401: token does not match remote=198.51.100.7:50000\n",
	} {
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, f.log)
		}
	}
}
