package lookup_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// An internationalised address is looked up in any spelling that
// normalises to it (the domain in U-labels or A-labels, percent-encoded or
// not), and no other: its local part is not case-folded, and one not in
// NFC is a bad request.
func TestLookupInternationalised(t *testing.T) {
	const addr = "jörg@xn--bcher-kva.example"
	dir := t.TempDir()
	san, err := testcorpus.SubjectAltName(nil, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := testcorpus.SelfSigned(&x509.Certificate{Subject: pkix.Name{CommonName: "Jörg"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		ExtraExtensions: []pkix.Extension{san}}, key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := output.OpenCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Store(context.Background(), addr, cert); err != nil {
		t.Fatal(err)
	}
	h, err := lookup.NewHandler(output.FolderReader{Store: store}, lookup.Options{Token: lookupTestToken})
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + lookupTestToken
	for _, tt := range []struct {
		path string
		code int
	}{
		{"jörg@bücher.example", 200},
		{url.PathEscape("jörg@bücher.example"), 200},
		{url.PathEscape(addr), 200},
		{"j%C3%B6rg@XN--BCHER-KVA.EXAMPLE", 200},
		{url.PathEscape("Jörg@bücher.example"), 404},
		{url.PathEscape("jo\u0308rg@bücher.example"), 400},
		{url.PathEscape("jörg\u202e@bücher.example"), 400},
		{"j%F6rg@b%FCcher.example", 400}, // Latin-1
	} {
		w := lookupRequest(h, http.MethodGet, lookup.Prefix+tt.path+"?format=json", auth)
		if w.Code != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.path, w.Code, w.Body, tt.code)
			continue
		}
		if tt.code != 200 {
			continue
		}
		var sc lookup.StoredCert
		if err := json.Unmarshal(w.Body.Bytes(), &sc); err != nil || sc.Address != addr || sc.SHA256 == "" ||
			len(sc.Emails) != 1 || sc.Emails[0] != addr || !strings.HasSuffix(sc.File, addr+".crt") {
			t.Errorf("%s: %s, %v", tt.path, w.Body, err)
		}
	}
}
