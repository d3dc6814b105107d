package providers_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

const (
	sesTopic = "arn:aws:sns:us-east-1:123456789012:ses-inbound"
	sesPEM   = "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
)

// snsServer is SNS's side: the signing key, its certificate served over
// HTTPS from a local server (the test's allowed host), and the
// subscription URL, counting their fetches.
type snsServer struct {
	key       *rsa.PrivateKey
	srv       *httptest.Server
	certGets  atomic.Int32
	confirmed atomic.Int32
}

func newSNSServer(t *testing.T) *snsServer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	s := &snsServer{key: key}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == sesPEM:
			s.certGets.Add(1)
			w.Write(certPEM)
		case r.URL.Path == "/" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			s.confirmed.Add(1)
			fmt.Fprint(w, `<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><ConfirmSubscriptionResult><SubscriptionArn>`+
				sesTopic+`:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *snsServer) url(path string) string { return s.srv.URL + path }

// message builds an SNS message as SNS posts it, signed with version
// (1: SHA1withRSA, 2: SHA256withRSA) over the string AWS documents, built
// here field by field.
func (s *snsServer) message(t *testing.T, version string, m map[string]string) []byte {
	m["SignatureVersion"] = version
	if m["SigningCertURL"] == "" {
		m["SigningCertURL"] = s.url(sesPEM)
	}
	var signed strings.Builder
	keys := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if m["Type"] != "Notification" {
		keys = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			signed.WriteString(k + "\n" + v + "\n")
		}
	}
	var digest []byte
	alg := crypto.SHA1
	if version == "2" {
		sum := sha256.Sum256([]byte(signed.String()))
		digest, alg = sum[:], crypto.SHA256
	} else {
		sum := sha1.Sum([]byte(signed.String()))
		digest = sum[:]
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, alg, digest)
	if err != nil {
		t.Fatal(err)
	}
	if m["Signature"] == "" {
		m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sesNotification is the SES receipt notification of raw, published with
// the SNS action and the encoding Base64.
func sesNotification(t *testing.T, raw []byte, action string) string {
	n := map[string]any{
		"notificationType": "Received",
		"mail": map[string]any{
			"timestamp": "2026-06-01T11:59:58.636Z", "source": "bounce@example.com",
			"messageId": "jili9m351il3gkburn7o2f0u6788stij94c8ld01", "destination": []string{"certs@inbound.example.org"},
			"headersTruncated": false,
			"headers":          []map[string]string{{"name": "From", "value": "Bob <bob@example.com>"}},
			"commonHeaders":    map[string]any{"from": []string{"Bob <bob@example.com>"}, "subject": "signed"},
		},
		"receipt": map[string]any{
			"timestamp": "2026-06-01T11:59:58.636Z", "processingTimeMillis": 357,
			"recipients":  []string{"certs@inbound.example.org"},
			"spamVerdict": map[string]string{"status": "PASS"}, "dkimVerdict": map[string]string{"status": "PASS"},
			"action": map[string]string{"type": action, "topicArn": sesTopic, "encoding": "BASE64"},
		},
		"content": base64.StdEncoding.EncodeToString(raw),
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *snsServer) notification(t *testing.T, version, topic, message string) []byte {
	return s.message(t, version, map[string]string{
		"Type": "Notification", "MessageId": "8f6dee70-c885-558a-be7d-bd48bbf5335e", "TopicArn": topic,
		"Subject": "Amazon SES Email Receipt Notification", "Message": message,
		"Timestamp": "2026-06-01T11:59:59.516Z", "UnsubscribeURL": s.url("/?Action=Unsubscribe&SubscriptionArn=" + topic),
	})
}

// snsPost posts body as SNS does (JSON as text/plain, its headers).
func snsPost(body []byte) *http.Request {
	var m map[string]string
	json.Unmarshal(body, &m)
	return post("/ses", "text/plain; charset=UTF-8", body,
		"X-Amz-Sns-Message-Type", m["Type"], "X-Amz-Sns-Message-Id", m["MessageId"], "X-Amz-Sns-Topic-Arn", m["TopicArn"],
		"User-Agent", "Amazon Simple Notification Service Agent")
}

func sesHarness(t *testing.T, s *snsServer) *harness {
	return newHarness(t, nil, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		return providers.NewSES(sink, providers.SESOptions{TopicARNs: []string{sesTopic}, Client: s.srv.Client(),
			AllowHost: func(host string) bool { return host == "127.0.0.1" }, Input: in})
	})
}

// Both signature versions verify; the certificate is fetched once; the
// message arrives byte for byte, 8-bit bytes included.
func TestSESNotification(t *testing.T) {
	s := newSNSServer(t)
	for _, version := range []string{"1", "2", "2 without Subject"} {
		hs := sesHarness(t, s)
		body := s.notification(t, version[:1], sesTopic, sesNotification(t, testMessage, "SNS"))
		if version == "2 without Subject" {
			var m map[string]string
			json.Unmarshal(body, &m)
			delete(m, "Subject")
			delete(m, "Signature")
			body = s.message(t, "2", m)
		}
		expect(t, hs.do(snsPost(body)), http.StatusOK, "ok")
		env := hs.one(testMessage)
		if env.Source != "ses" || env.EnvelopeFrom != "bounce@example.com" || fmt.Sprint(env.EnvelopeTo) != "[certs@inbound.example.org]" ||
			env.Extra["message_id"] != "jili9m351il3gkburn7o2f0u6788stij94c8ld01" || env.Extra["topic_arn"] != sesTopic {
			t.Errorf("version %s: context %+v", version, env)
		}
		expect(t, hs.do(snsPost(body)), http.StatusOK, "ok") // SNS may deliver twice
	}
	if n := s.certGets.Load(); n != 3 {
		t.Errorf("certificate fetched %d times for 3 handlers of 2 requests each, want once each", n)
	}
}

// Only the configured topics, signatures that verify, certificates over
// HTTPS from an allowed host; nothing fetched for a topic not taken.
func TestSESRefusals(t *testing.T) {
	s := newSNSServer(t)
	content := sesNotification(t, testMessage, "SNS")
	good := string(s.notification(t, "2", sesTopic, content))
	for _, tt := range []struct {
		name   string
		body   []byte
		status int
		msg    string
		why    string
	}{
		{"another topic", s.notification(t, "2", "arn:aws:sns:us-east-1:123456789012:other", content), http.StatusForbidden, "Forbidden", "is not one of the topics"},
		{"message changed", []byte(strings.Replace(good, `"bounce@example.com`, `"evil@example.com`, 1)), http.StatusForbidden, "Forbidden", "verification error"},
		{"signature of another key", s.message(t, "2", map[string]string{"Type": "Notification", "MessageId": "x", "TopicArn": sesTopic,
			"Message": content, "Timestamp": "2026-06-01T11:59:59.516Z", "Signature": base64.StdEncoding.EncodeToString(make([]byte, 256))}),
			http.StatusForbidden, "Forbidden", "verification error"},
		{"version 3", s.message(t, "3", map[string]string{"Type": "Notification", "MessageId": "x", "TopicArn": sesTopic,
			"Message": content, "Timestamp": "2026-06-01T11:59:59.516Z"}), http.StatusForbidden, "Forbidden", "not supported"},
		{"certificate over http", s.message(t, "2", map[string]string{"Type": "Notification", "MessageId": "x", "TopicArn": sesTopic,
			"Message": content, "Timestamp": "t", "SigningCertURL": strings.Replace(s.url(sesPEM), "https:", "http:", 1)}),
			http.StatusForbidden, "Forbidden", "not an https URL of an SNS host"},
		{"certificate elsewhere", s.message(t, "2", map[string]string{"Type": "Notification", "MessageId": "x", "TopicArn": sesTopic,
			"Message": content, "Timestamp": "t", "SigningCertURL": strings.Replace(s.url(sesPEM), "127.0.0.1", "localhost", 1)}),
			http.StatusForbidden, "Forbidden", "not an https URL of an SNS host"},
		{"not JSON", []byte("Type=Notification"), http.StatusBadRequest, "Malformed JSON", "invalid character"},
		{"the Lambda action", s.notification(t, "1", sesTopic, sesNotification(t, testMessage, "Lambda")), http.StatusBadRequest, "SNS and S3 actions", `action "Lambda"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := sesHarness(t, s)
			expect(t, hs.do(snsPost(tt.body)), tt.status, tt.msg)
			hs.none()
			if !strings.Contains(hs.log.String(), tt.why) {
				t.Errorf("log does not say %q:\n%s", tt.why, hs.log)
			}
		})
	}
	if n := s.certGets.Load(); n > 4 {
		t.Errorf("certificate fetched %d times", n)
	}
}

// The default allow-list takes SNS's regional hosts and nothing else of
// amazonaws.com.
func TestSNSHostPattern(t *testing.T) {
	for host, want := range map[string]bool{
		"sns.us-east-1.amazonaws.com": true, "sns.cn-north-1.amazonaws.com.cn": true, "sns.us-gov-west-1.amazonaws.com": true,
		"sns.amazonaws.com": false, "evil.s3.amazonaws.com": false, "sns.us-east-1.amazonaws.com.evil.org": false,
		"sns.x.amazonaws.com": false, "bucket.sns.us-east-1.amazonaws.com": false,
	} {
		if got := providers.DefaultSNSHost.MatchString(host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
}

// A subscription to a topic taken is confirmed by GETting SubscribeURL;
// to another topic, or with a SubscribeURL elsewhere, it is not.
func TestSESSubscription(t *testing.T) {
	s := newSNSServer(t)
	confirm := func(topic, subscribe string) []byte {
		return s.message(t, "1", map[string]string{
			"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
			"Token":    "2336412f37fb687f5d51e6e241d164b0533302ec696efc8f113cd2252ce8a925c1e44a3c4ca2984675da85b9bd8c05d",
			"TopicArn": topic, "Timestamp": "2026-06-01T11:59:59.516Z",
			"Message":      "You have chosen to subscribe to the topic " + topic + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
			"SubscribeURL": subscribe,
		})
	}
	hs := sesHarness(t, s)
	subscribe := s.url("/?Action=ConfirmSubscription&TopicArn=" + sesTopic + "&Token=2336412f")
	expect(t, hs.do(snsPost(confirm("arn:aws:sns:us-east-1:123456789012:other", subscribe))), http.StatusForbidden, "Forbidden")
	expect(t, hs.do(snsPost(confirm(sesTopic, strings.Replace(subscribe, "127.0.0.1", "localhost", 1)))), http.StatusForbidden, "Forbidden")
	if n := s.confirmed.Load(); n != 0 {
		t.Fatalf("confirmed %d times before the good request", n)
	}
	expect(t, hs.do(snsPost(confirm(sesTopic, subscribe))), http.StatusOK, "ok")
	if n := s.confirmed.Load(); n != 1 {
		t.Errorf("confirmed %d times, want once", n)
	}
	hs.none()
	if !strings.Contains(hs.log.String(), "confirmed the subscription to topic "+sesTopic) {
		t.Errorf("log:\n%s", hs.log)
	}
}

// A certificate that cannot be fetched now gets 503, which SNS retries.
func TestSESCertificateUnavailable(t *testing.T) {
	s := newSNSServer(t)
	hs := sesHarness(t, s)
	body := s.notification(t, "2", sesTopic, sesNotification(t, testMessage, "SNS"))
	s.srv.Close()
	w := hs.do(snsPost(body))
	expect(t, w, http.StatusServiceUnavailable, "retry later")
	hs.none()
}
