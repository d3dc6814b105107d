package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The HTTP client's limits. A certificate names its responder and its
// CRLs, and although it chains to a trusted root by the time it is checked,
// what those servers send is not trusted until its signature is: every
// fetch is bounded in time, in size and in where it may lead.
const (
	// DefaultFetchTimeout bounds one fetch: connecting, the request, and
	// reading the whole answer.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultCheckTimeout bounds the check of one chain, every fetch of
	// every certificate included, whatever the timeouts of its fetches.
	DefaultCheckTimeout = 15 * time.Second
	// DefaultMaxOCSPBytes bounds an OCSP response: a real one is 1 to 4
	// KiB, with the responder's certificate.
	DefaultMaxOCSPBytes = 64 << 10
	// DefaultMaxCRLBytes bounds a CRL. The CRLs of S/MIME CAs are
	// partitioned or short-lived, most under a megabyte; a larger one is
	// not read (the status stays unknown).
	DefaultMaxCRLBytes = 16 << 20
	// DefaultMaxURLs bounds the URLs tried per certificate and per
	// mechanism (OCSP responders, CRL distribution points): a certificate
	// listing a hundred is tried at its first DefaultMaxURLs.
	DefaultMaxURLs = 2
	// maxRedirects bounds the redirects followed by one fetch.
	maxRedirects = 3
)

// errTooLarge is an answer larger than the fetch allows.
var errTooLarge = errors.New("answer too large")

// fetcher gets OCSP responses and CRLs over HTTP.
type fetcher struct {
	client  *http.Client
	timeout time.Duration
}

// newFetcher returns a fetcher on client (nil: a client of its own, whose
// transport is http.DefaultTransport's settings, proxies from the
// environment included), following at most maxRedirects redirects, and
// only to http and https URLs of the scheme of the first: a responder at
// an https URL is never redirected to plain http, nor either to another
// scheme.
func newFetcher(client *http.Client, timeout time.Duration) *fetcher {
	c := &http.Client{Transport: http.DefaultTransport}
	if client != nil {
		c = &http.Client{Transport: client.Transport, Jar: client.Jar}
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		if req.URL.Scheme != via[0].URL.Scheme {
			return fmt.Errorf("redirect from %s to %s refused", via[0].URL.Scheme, req.URL.Scheme)
		}
		return nil
	}
	return &fetcher{client: c, timeout: timeout}
}

// checkURL accepts an absolute http or https URL with a host, as a
// certificate's AIA or CRL distribution point names one (RFC 5280
// §4.2.2.1, §4.2.1.13); ldap, file and the rest are refused.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", truncate(raw, 100), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL %q: only http and https are fetched", truncate(raw, 100))
	}
	if u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("URL %q: no host, or user information", truncate(raw, 100))
	}
	return u, nil
}

// get fetches u with GET, or with POST when body is not nil, and returns
// the answer's body, at most limit bytes: a larger one is errTooLarge,
// read no further.
func (f *fetcher) get(ctx context.Context, u *url.URL, body []byte, contentType string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "certharvest")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, at most %d read", errTooLarge, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return data, nil
}

// unwrapURLError drops the *url.Error around a client's error, whose
// message repeats the URL the caller names already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}

// truncate cuts s to about n bytes, for error messages quoting a
// certificate's or a server's text.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
