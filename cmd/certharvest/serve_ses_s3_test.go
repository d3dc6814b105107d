package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/certharvest/certharvest/internal/testcorpus"
	"github.com/certharvest/certharvest/output"
)

// Amazon SES's S3 action through the binary: SES stored the mail in a
// bucket (an S3 server of the test's own, gofakes3, on loopback) and SNS
// posts the notification, signed with a key whose certificate the binary
// fetches from https://sns.us-east-1.amazonaws.com as in service, through
// an HTTPS proxy of the test's (HTTPS_PROXY) to a local server whose TLS
// certificate SSL_CERT_FILE trusts: nothing leaves loopback, and the
// binary runs with its default SNS host check. The mail is fetched,
// spooled, verified, reported with source ses, and its object deleted
// (--ses-s3-delete); the same notification again finds nothing and is
// acknowledged; a bucket not allowed gets 403.
func TestServeSESS3(t *testing.T) {
	const (
		topic  = "arn:aws:sns:us-east-1:123456789012:ses-inbound"
		bucket = "inbound-mail-example-org"
		key    = "certs/o3vrnil0e2ic28trm7dfhrc2v0clambvgnld0c01"
		file   = "07-ok-ber-opaque-chunked.eml"
	)
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(sampleDir, "messages", file))
	if err != nil {
		t.Fatal(err)
	}

	// S3, with the object SES stored.
	fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(fake.Close)
	creds := credentials.NewStaticV4("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")
	s3c, err := minio.New(strings.TrimPrefix(fake.URL, "http://"), &minio.Options{Creds: creds, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s3c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutObject(ctx, bucket, key, bytes.NewReader(raw), int64(len(raw)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	// SNS: the signing key, its certificate served over HTTPS as
	// sns.us-east-1.amazonaws.com, reached through a CONNECT proxy.
	signer, signingPEM := snsSigningKey(t)
	const pemPath = "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
	tlsCert, err := testcorpus.SelfSignedTLS("sns.us-east-1.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, tlsCert.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var certGets atomic.Int32
	sns := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pemPath {
			http.NotFound(w, r)
			return
		}
		certGets.Add(1)
		w.Write(signingPEM)
	}))
	sns.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert.Cert}}
	sns.StartTLS()
	t.Cleanup(sns.Close)
	proxy := connectProxy(t, "sns.us-east-1.amazonaws.com:443", sns.Listener.Addr().String())

	keyFile := filepath.Join(dir, "s3-key")
	if err := os.WriteFile(keyFile, []byte("AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServeEnv(t, dir, []string{"HTTPS_PROXY=" + proxy, "https_proxy=" + proxy, "NO_PROXY=", "no_proxy=", "SSL_CERT_FILE=" + roots},
		"--http", "127.0.0.1:0", "--ses-topic-arn", topic,
		"--ses-s3-bucket", bucket, "--ses-s3-endpoint", fake.URL, "--ses-s3-key-file", keyFile, "--ses-s3-delete")
	url := "http://" + s.webhookAddr(t) + "/ses"
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(bucket string, want int) {
		t.Helper()
		body := snsS3Notification(t, signer, topic, bucket, key, pemPath)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
		req.Header.Set("X-Amz-Sns-Message-Type", "Notification")
		req.Header.Set("X-Amz-Sns-Topic-Arn", topic)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("bucket %s: %d %s, want %d", bucket, resp.StatusCode, answer, want)
		}
	}
	post("someone-elses-bucket", http.StatusForbidden)
	post(bucket, http.StatusOK)
	if _, err := s3c.StatObject(ctx, bucket, key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Errorf("the object after its mail was spooled: %v, want it deleted", err)
	}
	post(bucket, http.StatusOK) // SNS delivers at least once
	s.waitDrained(t, 30*time.Second)
	s.stop(t)

	recs := readReport(t, s.report)
	if len(recs) != 1 {
		t.Fatalf("%d report lines, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Outcome != output.OutcomeAccepted || rec.Source != "ses" || strings.Join(rec.EnvelopeTo, " ") != "certs@inbound.example.org" {
		t.Fatalf("report line: %s %s %s, source %q, to %v", rec.Outcome, rec.Reason, rec.Detail, rec.Source, rec.EnvelopeTo)
	}
	checkPEM(t, rec.CertFile, rec.Cert.SHA256)
	if n := certGets.Load(); n != 1 {
		t.Errorf("the signing certificate was fetched %d times, want once", n)
	}
	log, _ := os.ReadFile(s.log)
	for _, want := range []string{"s3_object=s3://" + bucket + "/" + key, "deleted s3://" + bucket + "/" + key,
		"taken and deleted by an earlier delivery", `bucket "someone-elses-bucket" is not one of the buckets taken`} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// snsSigningKey returns an RSA key and its certificate, as SNS signs with.
func snsSigningKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// snsS3Notification is the SNS notification of an SES S3 action that
// stored the mail at bucket/key, signed (SignatureVersion 2) over the
// string SNS signs.
func snsS3Notification(t *testing.T, key *rsa.PrivateKey, topic, bucket, object, pemPath string) []byte {
	t.Helper()
	ses, err := json.Marshal(map[string]any{
		"notificationType": "Received",
		"mail": map[string]any{"timestamp": "2026-06-01T11:59:58.636Z", "source": "sender@example.com",
			"messageId": strings.TrimPrefix(object, "certs/"), "destination": []string{"certs@inbound.example.org"}},
		"receipt": map[string]any{"recipients": []string{"certs@inbound.example.org"},
			"action": map[string]string{"type": "S3", "topicArn": topic, "bucketName": bucket, "objectKeyPrefix": "certs", "objectKey": object}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"Type": "Notification", "MessageId": "8f6dee70-c885-558a-be7d-bd48bbf5335e", "TopicArn": topic,
		"Subject": "Amazon SES Email Receipt Notification", "Message": string(ses), "Timestamp": "2026-06-01T11:59:59.516Z",
		"SignatureVersion": "2", "SigningCertURL": "https://sns.us-east-1.amazonaws.com" + pemPath}
	var signed strings.Builder
	for _, k := range []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"} {
		signed.WriteString(k + "\n" + m[k] + "\n")
	}
	sum := sha256.Sum256([]byte(signed.String()))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// connectProxy is an HTTPS proxy on loopback that tunnels CONNECT host to
// addr, and refuses anything else. It returns its URL.
func connectProxy(t *testing.T, host, addr string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != host {
			http.Error(w, "only CONNECT "+host, http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, buf); up.Close() }()
		io.Copy(conn, up)
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
