package providers

// Amazon SNS's messages to an HTTP(S) endpoint, and their signatures
// (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
// SignatureVersion 1 is SHA1withRSA, 2 SHA256withRSA, over the string of
// "name\nvalue\n" of the message's fields in a fixed order, with the
// public key of the certificate at SigningCertURL, which must be fetched
// over HTTPS from an SNS host.

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// The SNS message types.
const (
	snsNotification             = "Notification"
	snsSubscriptionConfirmation = "SubscriptionConfirmation"
	snsUnsubscribeConfirmation  = "UnsubscribeConfirmation"
)

// snsMessage is an SNS message as posted; Message is kept as bytes (the
// SES notification, with the mail in it).
type snsMessage struct {
	Type             string          `json:"Type"`
	MessageID        string          `json:"MessageId"`
	Token            string          `json:"Token"`
	TopicArn         string          `json:"TopicArn"`
	Subject          *string         `json:"Subject"`
	Message          ingest.JSONText `json:"Message"`
	Timestamp        string          `json:"Timestamp"`
	SignatureVersion string          `json:"SignatureVersion"`
	Signature        string          `json:"Signature"`
	SigningCertURL   string          `json:"SigningCertURL"`
	SubscribeURL     string          `json:"SubscribeURL"`
}

// writeSigned writes the string SNS signs to w: for a notification
// Message, MessageId, Subject (if present), Timestamp, TopicArn and Type;
// for a (un)subscription confirmation Message, MessageId, SubscribeURL,
// Timestamp, Token, TopicArn and Type; each as its name, a line feed, its
// value and a line feed.
func (m *snsMessage) writeSigned(w io.Writer) {
	field := func(name, value string) { io.WriteString(w, name+"\n"+value+"\n") }
	io.WriteString(w, "Message\n")
	w.Write(m.Message)
	io.WriteString(w, "\n")
	field("MessageId", m.MessageID)
	if m.Type == snsNotification {
		if m.Subject != nil {
			field("Subject", *m.Subject)
		}
	} else {
		field("SubscribeURL", m.SubscribeURL)
	}
	field("Timestamp", m.Timestamp)
	if m.Type != snsNotification {
		field("Token", m.Token)
	}
	field("TopicArn", m.TopicArn)
	field("Type", m.Type)
}

// DefaultSNSHost matches the hosts of SNS's regional endpoints
// (sns.REGION.amazonaws.com, sns.cn-north-1.amazonaws.com.cn), and nothing
// else of amazonaws.com (not an S3 bucket's host): the pattern of AWS's own
// message validator (aws-php-sns-message-validator).
var DefaultSNSHost = regexp.MustCompile(`^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$`)

// Limits of the SNS verifier.
const (
	// snsMaxCertBytes caps a signing certificate's PEM.
	snsMaxCertBytes = 64 << 10
	// snsFetchTimeout bounds fetching a certificate or confirming a
	// subscription. SNS waits 15 seconds for an answer.
	snsFetchTimeout = 5 * time.Second
	// snsMaxCerts bounds the certificates cached: SNS signs with one per
	// region, rotated now and then.
	snsMaxCerts = 32
)

// errSNSTemporary marks a failure a later attempt may not have: the
// certificate could not be fetched now.
var errSNSTemporary = errors.New("temporary")

// snsVerifier checks SNS signatures, fetching and caching the signing
// certificates. It is safe for concurrent use.
type snsVerifier struct {
	client    *http.Client
	allowHost func(host string) bool
	now       func() time.Time

	mu    sync.Mutex
	certs map[string]*x509.Certificate // by URL
}

func newSNSVerifier(client *http.Client, allowHost func(string) bool, now func() time.Time) *snsVerifier {
	c := *client
	// A redirect could lead anywhere: the URL's host is the one checked.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &snsVerifier{client: &c, allowHost: allowHost, now: now, certs: make(map[string]*x509.Certificate)}
}

// checkURL checks that raw is an https URL of an allowed host, without
// credentials.
func (v *snsVerifier) checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" || u.User != nil || u.Host == "" || !v.allowHost(u.Hostname()) {
		return nil, fmt.Errorf("%.200q is not an https URL of an SNS host", raw)
	}
	return u, nil
}

// verify checks m's signature. An error wrapping errSNSTemporary is worth
// a retry; any other is final.
func (v *snsVerifier) verify(ctx context.Context, m *snsMessage) error {
	var h hash.Hash
	var alg crypto.Hash
	switch m.SignatureVersion {
	case "1":
		h, alg = sha1.New(), crypto.SHA1
	case "2":
		h, alg = sha256.New(), crypto.SHA256
	default:
		return fmt.Errorf("the SignatureVersion %.10q is not supported", m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("the Signature: %w", err)
	}
	cert, err := v.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	m.writeSigned(h)
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), alg, h.Sum(nil), sig); err != nil {
		return fmt.Errorf("signature does not verify with %s: %w", m.SigningCertURL, err)
	}
	return nil
}

// cert returns the certificate at raw, from the cache or fetched.
func (v *snsVerifier) cert(ctx context.Context, raw string) (*x509.Certificate, error) {
	u, err := v.checkURL(raw)
	if err != nil {
		return nil, fmt.Errorf("SigningCertURL: %w", err)
	}
	if !strings.HasSuffix(u.Path, ".pem") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("SigningCertURL %.200q is not a .pem file", raw)
	}
	v.mu.Lock()
	cert := v.certs[raw]
	v.mu.Unlock()
	now := v.now()
	if cert != nil && now.Before(cert.NotAfter) {
		return cert, nil
	}
	cert, err = v.fetch(ctx, raw)
	if err != nil {
		return nil, err
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("the certificate at %s is valid from %s to %s only", raw, cert.NotBefore, cert.NotAfter)
	}
	v.mu.Lock()
	if len(v.certs) >= snsMaxCerts {
		clear(v.certs)
	}
	v.certs[raw] = cert
	v.mu.Unlock()
	return cert, nil
}

// fetch gets the certificate at raw.
func (v *snsVerifier) fetch(ctx context.Context, raw string) (*x509.Certificate, error) {
	body, err := v.get(ctx, raw, snsMaxCertBytes)
	if err != nil {
		return nil, fmt.Errorf("fetching the signing certificate: %w (%w)", err, errSNSTemporary)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is not a PEM certificate", raw)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", raw, err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("%s: not an RSA key", raw)
	}
	return cert, nil
}

// get GETs raw, already checked, and returns at most max bytes of its 200
// answer.
func (v *snsVerifier) get(ctx context.Context, raw string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, snsFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u(raw), resp.Status)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u(raw), max)
	}
	return body, nil
}

// u returns a URL for a log line without its query (a subscription's
// token).
func u(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i] + "?..."
	}
	return raw
}
