package providers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/ingest/providers"
)

const (
	sesBucket   = "inbound-mail-example-org"
	sesPrefix   = "certs"
	sesObjectID = "jili9m351il3gkburn7o2f0u6788stij94c8ld01"
	sesKey      = sesPrefix + "/" + sesObjectID
)

// s3Server is an S3 server of its own (gofakes3, in memory) on loopback,
// counting the requests by method, that can be made to answer slowly.
type s3Server struct {
	srv    *httptest.Server
	client *minio.Client
	creds  *credentials.Credentials
	mu     sync.Mutex
	seen   map[string]int // "HEAD", "GET", "DELETE"...
	slow   atomic.Bool
}

func newS3Server(t *testing.T) *s3Server {
	t.Helper()
	s := &s3Server{seen: map[string]int{}, creds: credentials.NewStaticV4("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")}
	fake := gofakes3.New(s3mem.New()).Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen[r.Method]++
		s.mu.Unlock()
		if s.slow.Load() {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	var err error
	s.client, err = minio.New(strings.TrimPrefix(s.srv.URL, "http://"), &minio.Options{Creds: s.creds, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.MakeBucket(context.Background(), sesBucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// put stores raw as SES does: the raw message, under prefix/messageId.
func (s *s3Server) put(t *testing.T, key string, raw []byte, meta map[string]string) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), sesBucket, key, bytes.NewReader(raw), int64(len(raw)),
		minio.PutObjectOptions{UserMetadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	s.reset()
}

func (s *s3Server) reset() {
	s.mu.Lock()
	clear(s.seen)
	s.mu.Unlock()
}

func (s *s3Server) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[method]
}

func (s *s3Server) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := s.client.StatObject(context.Background(), sesBucket, key, minio.StatObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Fatal(err)
	}
	return err == nil
}

// sesS3Notification is the SES receipt notification of an S3 action: no
// content, the object in receipt.action.
func sesS3Notification(t *testing.T, bucket, prefix, key string) string {
	n := map[string]any{
		"notificationType": "Received",
		"mail": map[string]any{
			"timestamp": "2026-06-01T11:59:58.636Z", "source": "bounce@example.com",
			"messageId": sesObjectID, "destination": []string{"certs@inbound.example.org"},
			"headersTruncated": false,
			"headers":          []map[string]string{{"name": "From", "value": "Bob <bob@example.com>"}},
			"commonHeaders":    map[string]any{"from": []string{"Bob <bob@example.com>"}, "subject": "signed"},
		},
		"receipt": map[string]any{
			"timestamp": "2026-06-01T11:59:58.636Z", "processingTimeMillis": 406,
			"recipients":  []string{"certs@inbound.example.org"},
			"spamVerdict": map[string]string{"status": "PASS"}, "dkimVerdict": map[string]string{"status": "PASS"},
			"action": map[string]string{"type": "S3", "topicArn": sesTopic, "bucketName": bucket,
				"objectKeyPrefix": prefix, "objectKey": key},
		},
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sesS3Harness is sesHarness with the S3 action enabled against s3, the
// options adjusted by opts.
func sesS3Harness(t *testing.T, s *snsServer, s3 *s3Server, wrap func(ingest.Sink) ingest.Sink, opts func(*providers.SESS3Options)) *harness {
	return newHarness(t, wrap, func(sink ingest.Sink, in ingest.HTTPInputOptions) (handler, error) {
		o := providers.SESS3Options{Buckets: []string{sesBucket}, Endpoint: s3.srv.URL, Credentials: s3.creds, Timeout: 5 * time.Second}
		if opts != nil {
			opts(&o)
		}
		return providers.NewSES(sink, providers.SESOptions{TopicARNs: []string{sesTopic}, Client: s.srv.Client(),
			AllowHost: func(host string) bool { return host == "127.0.0.1" }, S3: &o, Input: in})
	})
}

// The mail SES stored in the bucket arrives byte for byte, with the
// notification's envelope; the object is kept.
func TestSESS3Action(t *testing.T) {
	s, s3 := newSNSServer(t), newS3Server(t)
	s3.put(t, sesKey, testMessage, nil)
	hs := sesS3Harness(t, s, s3, nil, nil)
	body := s.notification(t, "2", sesTopic, sesS3Notification(t, sesBucket, sesPrefix, sesKey))
	expect(t, hs.do(snsPost(body)), http.StatusOK, "ok")
	env := hs.one(testMessage)
	if env.Source != "ses" || env.EnvelopeFrom != "bounce@example.com" || strings.Join(env.EnvelopeTo, " ") != "certs@inbound.example.org" ||
		env.Extra["message_id"] != sesObjectID || env.Extra["s3_object"] != "s3://"+sesBucket+"/"+sesKey {
		t.Errorf("context %+v", env)
	}
	if s3.count(http.MethodHead) != 1 || s3.count(http.MethodGet) != 1 || s3.count(http.MethodDelete) != 0 {
		t.Errorf("S3 requests %v, want one HEAD and one GET", s3.seen)
	}
	if !s3.exists(t, sesKey) {
		t.Error("the object was deleted; the default keeps it")
	}
	if !strings.Contains(hs.log.String(), "s3_object=s3://"+sesBucket+"/"+sesKey) {
		t.Errorf("log:\n%s", hs.log)
	}
}

// With Delete, the object is removed once its mail is spooled, and the
// same notification delivered again (SNS delivers at least once) finds
// nothing and is acknowledged; a spool that fails leaves the object.
func TestSESS3Delete(t *testing.T) {
	s, s3 := newSNSServer(t), newS3Server(t)
	s3.put(t, sesKey, testMessage, nil)
	sink := &failingSink{n: 1}
	hs := sesS3Harness(t, s, s3, func(spool ingest.Sink) ingest.Sink { sink.Sink = spool; return sink },
		func(o *providers.SESS3Options) { o.Delete = true })
	body := s.notification(t, "2", sesTopic, sesS3Notification(t, sesBucket, sesPrefix, sesKey))

	expect(t, hs.do(snsPost(body)), http.StatusServiceUnavailable, "retry later")
	hs.none()
	if !s3.exists(t, sesKey) || s3.count(http.MethodDelete) != 0 {
		t.Fatal("the object was deleted though its mail was not spooled")
	}
	expect(t, hs.do(snsPost(body)), http.StatusOK, "ok")
	hs.one(testMessage)
	if s3.exists(t, sesKey) {
		t.Error("the object is still in the bucket after its mail was spooled")
	}
	expect(t, hs.do(snsPost(body)), http.StatusOK, "ok")
	hs.one(testMessage)
	if !strings.Contains(hs.log.String(), "taken and deleted by an earlier delivery") {
		t.Errorf("log:\n%s", hs.log)
	}
}

// What no retry can mend gets a 4xx, which SNS does not retry, and leaves
// nothing in the spool; what a retry may mend (S3 unreachable, or too
// slow) gets 503.
func TestSESS3Refusals(t *testing.T) {
	s, s3 := newSNSServer(t), newS3Server(t)
	s3.put(t, sesKey, testMessage, nil)
	s3.put(t, sesPrefix+"/encrypted", testMessage, map[string]string{
		"x-amz-key-v2": "AQIDAHhz...", "x-amz-iv": "dGVzdGl2dGVzdGl2", "x-amz-cek-alg": "AES/GCM/NoPadding",
		"x-amz-wrap-alg": "kms", "x-amz-matdesc": `{"aws:ses:message-id":"x"}`, "x-amz-tag-len": "128",
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + closed.Addr().String()
	closed.Close()
	for _, tt := range []struct {
		name        string
		bucket, key string
		opts        func(*providers.SESS3Options)
		slow        bool
		status      int
		msg, why    string
		gets        int // GET requests S3 may see
	}{
		{name: "bucket not allowed", bucket: "someone-elses", key: sesKey, status: http.StatusForbidden, msg: "Forbidden", why: "is not one of the buckets taken"},
		{name: "missing object", bucket: sesBucket, key: sesPrefix + "/nosuchmessageid", status: http.StatusNotFound, msg: "No such object", why: "HEAD s3://"},
		{name: "too large", bucket: sesBucket, key: sesKey, opts: func(o *providers.SESS3Options) { o.MaxBytes = int64(len(testMessage)) - 1 },
			status: http.StatusRequestEntityTooLarge, msg: "Mail larger than", why: "not fetched"},
		{name: "encrypted with KMS", bucket: sesBucket, key: sesPrefix + "/encrypted", status: http.StatusBadRequest, msg: "KMS", why: "Amazon S3 encryption client"},
		{name: "key outside its prefix", bucket: sesBucket, key: "other/" + sesObjectID, status: http.StatusBadRequest, msg: "Malformed object key", why: "not under the action's prefix"},
		{name: "dot segment", bucket: sesBucket, key: sesPrefix + "/../" + sesObjectID, status: http.StatusBadRequest, msg: "Malformed object key", why: "path segment"},
		{name: "S3 unreachable", bucket: sesBucket, key: sesKey, opts: func(o *providers.SESS3Options) { o.Endpoint = unreachable },
			status: http.StatusServiceUnavailable, msg: "retry later", why: "connection refused"},
		{name: "S3 too slow", bucket: sesBucket, key: sesKey, opts: func(o *providers.SESS3Options) { o.Timeout = 300 * time.Millisecond },
			slow: true, status: http.StatusServiceUnavailable, msg: "retry later", why: "no answer within 300ms"},
		{name: "not enabled", bucket: sesBucket, key: sesKey, status: http.StatusBadRequest, msg: "S3 action is not enabled", why: "--ses-s3-bucket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hs *harness
			if tt.name == "not enabled" {
				hs = sesHarness(t, s)
			} else {
				hs = sesS3Harness(t, s, s3, nil, tt.opts)
			}
			s3.reset()
			s3.slow.Store(tt.slow)
			defer s3.slow.Store(false)
			w := hs.do(snsPost(s.notification(t, "2", sesTopic, sesS3Notification(t, tt.bucket, sesPrefix, tt.key))))
			expect(t, w, tt.status, tt.msg)
			if tt.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			hs.none()
			if !strings.Contains(hs.log.String(), tt.why) {
				t.Errorf("log does not say %q:\n%s", tt.why, hs.log)
			}
			if n := s3.count(http.MethodGet); n != 0 {
				t.Errorf("%d GETs of the object", n)
			}
		})
	}
	if !s3.exists(t, sesKey) {
		t.Error("a refusal deleted the object")
	}
}

// The S3 endpoint is https unless it is on loopback or plain http is
// allowed explicitly; the buckets must be named.
func TestSESS3Options(t *testing.T) {
	sink, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	creds := credentials.NewStaticV4("id", "secret", "")
	for _, tt := range []struct {
		opts providers.SESS3Options
		err  string
	}{
		{providers.SESS3Options{Buckets: []string{"b-1"}, Endpoint: "http://s3.internal.example:9000", Credentials: creds}, "plain http beyond loopback"},
		{providers.SESS3Options{Buckets: []string{"b-1"}, Endpoint: "http://s3.internal.example:9000", AllowHTTP: true, Credentials: creds}, ""},
		{providers.SESS3Options{Buckets: []string{"b-1"}, Endpoint: "http://127.0.0.1:9000", Credentials: creds}, ""},
		{providers.SESS3Options{Buckets: []string{"b-1"}, Endpoint: "http://[::1]:9000", Credentials: creds}, ""},
		{providers.SESS3Options{Buckets: []string{"b-1"}, Endpoint: "https://s3.internal.example/path", Credentials: creds}, "want https://HOST[:PORT]"},
		{providers.SESS3Options{Buckets: []string{"b-1"}, Credentials: creds}, ""},
		{providers.SESS3Options{Credentials: creds}, "needs the buckets"},
		{providers.SESS3Options{Buckets: []string{"Not_A_Bucket"}, Credentials: creds}, "S3 bucket"},
	} {
		_, err := providers.NewSES(sink, providers.SESOptions{TopicARNs: []string{sesTopic}, S3: &tt.opts})
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%+v: %v, want %q", tt.opts, err, tt.err)
		}
	}
}
