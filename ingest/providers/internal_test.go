package providers

// White-box tests: the form decoder and the memory of tokens alone.

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// The form decoder agrees with url.ParseQuery, and keeps the bytes that
// are not UTF-8.
func TestParseURLEncoded(t *testing.T) {
	for _, body := range []string{"a=1&b=x+y&c=%41%e9%ff&d=&e", "a=1&&a=2", "k%3D=v%26", ""} {
		f, err := parseForm("application/x-www-form-urlencoded", []byte(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		want, _ := url.ParseQuery(body)
		got := url.Values{}
		for _, field := range f {
			got.Add(field.name, string(field.value))
		}
		if got.Encode() != want.Encode() {
			t.Errorf("%q: %v, want %v", body, got, want)
		}
	}
	for _, body := range []string{"a=%4", "a=%zz", "%=1"} {
		if _, err := parseForm("application/x-www-form-urlencoded", []byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
	many := strings.Repeat("a=1&", maxFormFields+1)
	if _, err := parseForm("application/x-www-form-urlencoded", []byte(many)); !errors.Is(err, ingest.ErrTooMany) {
		t.Errorf("%d fields: %v", maxFormFields+1, err)
	}
	if _, err := parseForm("application/json", []byte("{}")); !errors.Is(err, errNotForm) {
		t.Errorf("JSON: %v", err)
	}
}

// A part's bytes are kept as they are: a Content-Transfer-Encoding is
// not undone (mime/multipart's NextPart would undo quoted-printable).
func TestParseMultipartKeepsBytes(t *testing.T) {
	body := "--b\r\nContent-Disposition: form-data; name=\"email\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"a=3D\xff\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nsecond\r\n--b--\r\n"
	f, err := parseForm(`multipart/form-data; boundary="b"`, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 2 || f[0].name != "email" || !bytes.Equal(f[0].value, []byte("a=3D\xff\r\n")) {
		t.Errorf("fields %q", f)
	}
	if v, _ := f.last("email"); string(v) != "second" {
		t.Errorf("last email %q", v)
	}
	if _, err := parseForm("multipart/form-data", []byte(body)); err == nil {
		t.Error("a multipart form without a boundary was accepted")
	}
}

func TestTokenMemory(t *testing.T) {
	m := newTokenMemory(2)
	now := time.Unix(1_000_000, 0)
	if m.claim("a", now.Add(time.Minute), now) != claimed || m.claim("a", now.Add(time.Minute), now) != replayed {
		t.Fatal("a token claimed twice")
	}
	if m.claim("b", now.Add(2*time.Minute), now) != claimed || m.claim("c", now.Add(time.Minute), now) != memoryFull {
		t.Fatal("more tokens than the memory holds")
	}
	m.forget("b")
	if m.claim("b", now.Add(2*time.Minute), now) != claimed {
		t.Fatal("a token forgotten is still remembered")
	}
	// a's window ends: a is forgotten, b is not.
	later := now.Add(time.Minute + time.Second)
	if m.claim("a", later.Add(time.Minute), later) != claimed || m.claim("b", later.Add(time.Minute), later) != replayed {
		t.Fatal("expiry")
	}
	if m.len() != 2 {
		t.Errorf("%d tokens remembered, want 2", m.len())
	}
	// Forgetting many leaves the order bounded.
	for range 10 {
		m.forget("a")
		m.claim("a", later.Add(time.Minute), later)
	}
	if len(m.order) > 2*m.max+1 {
		t.Errorf("order holds %d entries for %d tokens", len(m.order), m.len())
	}
}
