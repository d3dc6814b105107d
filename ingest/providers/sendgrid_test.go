package providers_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"mime/multipart"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
	"github.com/certharvest/certharvest/verify"
)

// sendGridKey is a signed-webhook policy's key pair, and its public key
// as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo).
type sendGridKey struct {
	priv   *ecdsa.PrivateKey
	public string
}

func newSendGridKey(t *testing.T) sendGridKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return sendGridKey{priv, base64.StdEncoding.EncodeToString(der)}
}

// sendGridRaw builds the body of an Inbound Parse POST with "POST the raw,
// full MIME message" ticked: the fields SendGrid sends, in its order.
func sendGridRaw(t *testing.T, fields ...string) (body []byte, contentType string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.SetBoundary("xYzZY")
	for i := 0; i+1 < len(fields); i += 2 {
		f, err := w.CreateFormField(fields[i])
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(fields[i+1]))
	}
	w.Close()
	return b.Bytes(), w.FormDataContentType()
}

func sendGridFields(msg []byte) []string {
	return []string{
		"dkim", "{@example.com : pass}",
		"email", string(msg),
		"to", "certs@inbound.example.org",
		"from", "Bob <bob@example.com>",
		"sender_ip", "192.0.2.25",
		"spam_report", "Spam detection software...",
		"envelope", `{"to":["certs@inbound.example.org"],"from":"bounce@example.com"}`,
		"subject", "signed",
		"spam_score", "0.1",
		"charsets", `{"to":"UTF-8","from":"UTF-8","subject":"UTF-8"}`,
		"SPF", "pass",
	}
}

// sign returns the signature and timestamp header fields of body, signed
// at ts.
func (k sendGridKey) sign(t *testing.T, body []byte, ts time.Time) []string {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sum := sha256.Sum256(append([]byte(stamp), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return []string{providers.SendGridSignatureHeader, base64.StdEncoding.EncodeToString(sig), providers.SendGridTimestampHeader, stamp}
}

func sendGridHarness(t *testing.T, opts providers.SendGridOptions) *harness {
	return newHarness(t, nil, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		opts.Input = in
		return providers.NewSendGrid(sink, opts)
	})
}

func TestSendGridSigned(t *testing.T) {
	key := newSendGridKey(t)
	hs := sendGridHarness(t, providers.SendGridOptions{PublicKey: key.public})
	body, ct := sendGridRaw(t, sendGridFields(testMessage)...)
	w := hs.do(post("/sendgrid", ct, body, key.sign(t, body, testNow.Add(-time.Minute))...))
	expect(t, w, http.StatusOK, "ok")
	env := hs.one(testMessage)
	want := verify.Envelope{Source: "sendgrid", EnvelopeFrom: "bounce@example.com", EnvelopeTo: []string{"certs@inbound.example.org"},
		RemoteAddr: "203.0.113.10:40000", Received: testNow}
	if env.Source != want.Source || env.EnvelopeFrom != want.EnvelopeFrom || len(env.EnvelopeTo) != 1 ||
		env.EnvelopeTo[0] != want.EnvelopeTo[0] || env.RemoteAddr != want.RemoteAddr || !env.Received.Equal(testNow) {
		t.Errorf("context %+v, want %+v", env, want)
	}
	if got := hs.codes.list(); len(got) != 1 || got[0] != 200 {
		t.Errorf("statuses observed %v", got)
	}
}

// The PEM form of the key is taken too.
func TestSendGridKeyPEM(t *testing.T) {
	key := newSendGridKey(t)
	der, _ := base64.StdEncoding.DecodeString(key.public)
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := providers.ParseSendGridKey(string(p)); err != nil {
		t.Error(err)
	}
	if _, err := providers.ParseSendGridKey("bm90IGEga2V5"); err == nil {
		t.Error("a key that is no key was accepted")
	}
}

// A request whose signature does not verify is refused (403: SendGrid
// does not retry a 4xx) and nothing is kept.
func TestSendGridSignatureRefused(t *testing.T) {
	key, other := newSendGridKey(t), newSendGridKey(t)
	body, ct := sendGridRaw(t, sendGridFields(testMessage)...)
	tampered := bytes.Replace(body, []byte("body line"), []byte("body LINE"), 1)
	for _, tt := range []struct {
		name   string
		body   []byte
		header []string
	}{
		{"no signature", body, nil},
		{"another key", body, other.sign(t, body, testNow)},
		{"body changed", tampered, key.sign(t, body, testNow)},
		{"timestamp changed", body, func() []string {
			h := key.sign(t, body, testNow)
			h[3] = strconv.FormatInt(testNow.Unix()+1, 10)
			return h
		}()},
		{"too old", body, key.sign(t, body, testNow.Add(-providers.DefaultSendGridMaxAge-time.Minute))},
		{"from the future", body, key.sign(t, body, testNow.Add(10*time.Minute))},
		{"not base64", body, []string{providers.SendGridSignatureHeader, "%%%", providers.SendGridTimestampHeader, strconv.FormatInt(testNow.Unix(), 10)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := sendGridHarness(t, providers.SendGridOptions{PublicKey: key.public})
			expect(t, hs.do(post("/sendgrid", ct, tt.body, tt.header...)), http.StatusForbidden, "Forbidden")
			hs.none()
		})
	}
}

// Basic credentials in the URL, alone or with the signature.
func TestSendGridBasicAuth(t *testing.T) {
	key := newSendGridKey(t)
	hs := sendGridHarness(t, providers.SendGridOptions{BasicAuth: "sendgrid:s3cret", PublicKey: key.public})
	body, ct := sendGridRaw(t, sendGridFields(testMessage)...)
	r := post("/sendgrid", ct, body, key.sign(t, body, testNow)...)
	r.SetBasicAuth("sendgrid", "wrong")
	w := hs.do(r)
	expect(t, w, http.StatusUnauthorized, "Unauthorized")
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without a challenge")
	}
	r = post("/sendgrid", ct, body, key.sign(t, body, testNow)...)
	r.SetBasicAuth("sendgrid", "s3cret")
	expect(t, hs.do(r), http.StatusOK, "ok")
	hs.one(testMessage)

	if _, err := providers.NewSendGrid(nil, providers.SendGridOptions{}); err == nil {
		t.Error("a SendGrid handler without a secret was built")
	}
}

// The parsed mode (the setting not ticked) gets a 400 that names the
// setting.
func TestSendGridParsedMode(t *testing.T) {
	hs := sendGridHarness(t, providers.SendGridOptions{BasicAuth: "u:p"})
	body, ct := sendGridRaw(t, "headers", "From: bob@example.com\nSubject: x\n", "text", "hello", "envelope", `{"to":["a@b"],"from":"c@d"}`)
	r := post("/sendgrid", ct, body)
	r.SetBasicAuth("u", "p")
	expect(t, hs.do(r), http.StatusBadRequest, `POST the raw, full MIME message`)
	hs.none()
	if log := hs.log.String(); !bytes.Contains([]byte(log), []byte("parsed fields")) {
		t.Errorf("log:\n%s", log)
	}
}

// A delivery the spool cannot make now gets 503 (retried by SendGrid); a
// body over the limit 413.
func TestSendGridRetryAndLimits(t *testing.T) {
	hs := newHarness(t, func(s ingest.Sink) ingest.Sink { return &failingSink{Sink: s, n: 1} },
		func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
			in.MaxRequestBytes = 4 << 10
			return providers.NewSendGrid(sink, providers.SendGridOptions{BasicAuth: "u:p", Input: in})
		})
	body, ct := sendGridRaw(t, sendGridFields(testMessage)...)
	for _, want := range []int{http.StatusServiceUnavailable, http.StatusOK} {
		r := post("/sendgrid", ct, body)
		r.SetBasicAuth("u", "p")
		w := hs.do(r)
		expect(t, w, want, "")
		if want == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	hs.one(testMessage)
	big, ct := sendGridRaw(t, sendGridFields(bytes.Repeat([]byte("x"), 8<<10))...)
	r := post("/sendgrid", ct, big)
	r.SetBasicAuth("u", "p")
	expect(t, hs.do(r), http.StatusRequestEntityTooLarge, "larger than")
}
