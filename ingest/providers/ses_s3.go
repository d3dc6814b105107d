package providers

// Amazon SES receiving with a receipt rule's S3 action: SES stores the
// raw, unmodified mail (up to 40 MB, header included) as an object of an S3
// bucket and publishes a notification to an SNS topic
// (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-action-s3.html).
// The notification carries no content; its receipt.action names the object:
// {"type":"S3","topicArn":...,"bucketName":...,"objectKeyPrefix":...,
// "objectKey":...}, the key being the prefix and mail.messageId
// (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html).
// The handler fetches the object with minio-go, from the buckets allowed
// only, its size checked (HEAD) before it is read, and delivers it as the
// SNS action's mail is.
//
// Mail the action encrypts with a KMS key is encrypted on the client side,
// with the Amazon S3 encryption client, before it is stored: only that
// client can decrypt it (AWS's SDKs for Java and Ruby). certharvest does not:
// such an object is refused, for good.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// Defaults of the S3 action.
const (
	// DefaultSESS3Timeout bounds fetching one object, from its HEAD to its
	// last byte: SNS waits 15 seconds for an answer, then counts the
	// delivery failed and retries it.
	DefaultSESS3Timeout = 10 * time.Second
	// sesS3MaxRetries is the attempts of one S3 request (minio-go retries
	// a 5xx or a network error with back-off within the timeout); SNS
	// retries the rest.
	sesS3MaxRetries = 3
	// sesS3MaxKeyBytes is S3's limit on an object key.
	sesS3MaxKeyBytes = 1024
)

// SESS3Options configure the fetching of the mail of the S3 action. The
// zero value of each field means its default; Buckets must be set.
type SESS3Options struct {
	// Buckets are the buckets an S3 action may name; a notification naming
	// another gets 403, and nothing is fetched.
	Buckets []string
	// Endpoint is the S3 endpoint, an https (or http) URL of a host and
	// port. Default: AWS's regional endpoint of Region,
	// https://s3.REGION.amazonaws.com (.com.cn in China).
	Endpoint string
	// Region is the buckets' region. Default: the SNS topic's, from its
	// ARN (SES publishes to a topic of its own region).
	Region string
	// AllowHTTP allows an http Endpoint that is not on loopback: the mail,
	// and the requests' signatures, then cross the network in clear.
	AllowHTTP bool
	// Credentials sign the requests. Default: minio-go's chain of the
	// AWS_ACCESS_KEY_ID environment variables, the AWS shared credentials
	// file, and the IAM role (web identity, ECS task, EC2 instance).
	Credentials *credentials.Credentials
	// Timeout bounds fetching one object (default DefaultSESS3Timeout).
	Timeout time.Duration
	// MaxBytes is the largest object fetched (default: the input's
	// MaxMessageBytes, --max-size, else verify.DefaultMaxSize). A larger
	// one gets 413 without being read.
	MaxBytes int64
	// Delete removes the object once its mail is spooled. By default it is
	// kept: the bucket stays the provider's copy, for a lifecycle rule to
	// expire.
	Delete bool
}

// Check reports what NewSES would refuse in o, for the SNS topics
// topicARNs: a configuration checked before anything starts.
func (o SESS3Options) Check(topicARNs []string) error {
	_, err := newSESS3(o, topicARNs, 0)
	return err
}

// sesS3 fetches the objects of S3 actions: one client per region.
type sesS3 struct {
	opts    SESS3Options
	clients map[string]*minio.Client // by region
}

// newSESS3 checks opts and makes a client for each region the topics are
// in (or for Region).
func newSESS3(opts SESS3Options, topics []string, maxMessage int64) (*sesS3, error) {
	if len(opts.Buckets) == 0 {
		return nil, errors.New("ses: the S3 action needs the buckets it may name")
	}
	for _, b := range opts.Buckets {
		if err := s3utils.CheckValidBucketNameStrict(b); err != nil {
			return nil, fmt.Errorf("ses: S3 bucket %q: %w", b, err)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSESS3Timeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = maxMessage
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = verify.DefaultMaxSize
	}
	if opts.Credentials == nil {
		opts.Credentials = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
		})
	}
	regions := map[string]string{} // region: partition
	if opts.Region != "" {
		regions[opts.Region] = "aws"
	} else {
		for _, arn := range topics {
			f := strings.Split(arn, ":")
			if len(f) != 6 || f[3] == "" {
				return nil, fmt.Errorf("ses: topic ARN %q names no region", arn)
			}
			regions[f[3]] = f[1]
		}
	}
	s := &sesS3{opts: opts, clients: map[string]*minio.Client{}}
	for region, partition := range regions {
		c, err := s.client(region, partition)
		if err != nil {
			return nil, err
		}
		s.clients[region] = c
	}
	return s, nil
}

// client makes the client of region.
func (s *sesS3) client(region, partition string) (*minio.Client, error) {
	raw := s.opts.Endpoint
	if raw == "" {
		raw = "https://s3." + region + ".amazonaws.com"
		if partition == "aws-cn" {
			raw += ".cn"
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("ses: S3 endpoint %q: want https://HOST[:PORT]", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (s.opts.AllowHTTP || loopbackHost(u.Hostname())):
	case u.Scheme == "http":
		return nil, fmt.Errorf("ses: S3 endpoint %s is plain http beyond loopback: the mail would cross the network in clear (allow it explicitly, or use https)", raw)
	default:
		return nil, fmt.Errorf("ses: S3 endpoint %q: want an https URL", raw)
	}
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: s.opts.Credentials, Secure: secure, Region: region,
		Transport: tr, MaxRetries: sesS3MaxRetries})
	if err != nil {
		return nil, fmt.Errorf("ses: S3 endpoint %s: %w", raw, err)
	}
	// The regional endpoint itself, not its dual-stack name: the host a
	// firewall rule names.
	c.SetS3EnableDualstack(false)
	return c, nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sesS3Action is the receipt.action of an S3 action's notification.
type sesS3Action struct {
	TopicArn        string `json:"topicArn"`
	BucketName      string `json:"bucketName"`
	ObjectKeyPrefix string `json:"objectKeyPrefix"`
	ObjectKey       string `json:"objectKey"`
}

// checkObjectKey checks an object key as SES makes them: the rule's prefix
// and SES's message id, in UTF-8, no control characters, and no path
// segments that a server or proxy might resolve ("." and "..", a leading
// "/").
func checkObjectKey(key, prefix string) error {
	switch {
	case key == "" || len(key) > sesS3MaxKeyBytes:
		return fmt.Errorf("object key of %d bytes", len(key))
	case !utf8.ValidString(key) || strings.ContainsFunc(key, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("object key %.200q: not UTF-8 text", key)
	case !strings.HasPrefix(key, prefix):
		return fmt.Errorf("object key %.200q is not under the action's prefix %.200q", key, prefix)
	case strings.HasPrefix(key, "/") || slices.ContainsFunc(strings.Split(key, "/"), func(s string) bool { return s == "." || s == ".." }):
		return fmt.Errorf("object key %.200q has a path segment . or .., or a leading /", key)
	}
	return s3utils.CheckValidObjectName(key)
}

// s3Encrypted reports whether an object's user metadata is the Amazon S3
// encryption client's envelope (x-amz-meta-x-amz-key-v2, -cek-alg,
// -wrap-alg...): the mail is encrypted on the client side.
func s3Encrypted(meta map[string]string) bool {
	for k := range meta {
		switch strings.ToLower(k) {
		case "x-amz-key", "x-amz-key-v2", "x-amz-cek-alg", "x-amz-wrap-alg", "x-amz-matdesc":
			return true
		}
	}
	return false
}

// s3Notification delivers the mail an S3 action stored: it checks the
// bucket and key, HEADs the object, GETs at most MaxBytes+1 of it into a
// writer of the sink's, delivers it, then deletes the object if asked.
// S3's failures that a later attempt may not have are answered 503, which
// SNS retries; a missing object, a bucket not allowed, an object too large
// or encrypted get a 4xx, which SNS does not.
func (h *SES) s3Notification(ctx context.Context, x *ingest.Exchange, m *snsMessage, n *sesNotification, act *sesS3Action) {
	s := h.s3
	if s == nil {
		x.Refuse("No mail in the notification: the S3 action is not enabled",
			"action S3 of bucket "+act.BucketName+": give the buckets to fetch from (--ses-s3-bucket)")
		return
	}
	bucket, key := act.BucketName, act.ObjectKey
	if !slices.Contains(s.opts.Buckets, bucket) {
		x.Reply(http.StatusForbidden, msgForbidden, fmt.Sprintf("bucket %.100q is not one of the buckets taken", bucket))
		return
	}
	if err := checkObjectKey(key, act.ObjectKeyPrefix); err != nil {
		x.Refuse("Malformed object key", err.Error())
		return
	}
	region := s.opts.Region
	if region == "" {
		region = strings.Split(m.TopicArn, ":")[3] // checked by NewSES
	}
	client := s.clients[region]
	env, ok := h.envelope(x, m, n)
	if !ok {
		return
	}
	object := "s3://" + bucket + "/" + key
	env.Extra["s3_object"] = object

	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	info, err := client.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		h.s3Failed(ctx, x, object, "HEAD", err)
		return
	}
	if s3Encrypted(info.UserMetadata) {
		x.Refuse("The mail is encrypted with a KMS key, which certharvest cannot decrypt",
			object+" was stored by the Amazon S3 encryption client (the S3 action's KMS key): not supported; remove the key from the action")
		return
	}
	if info.Size > s.opts.MaxBytes {
		x.Reply(http.StatusRequestEntityTooLarge, fmt.Sprintf("Mail larger than %d bytes", s.opts.MaxBytes),
			fmt.Sprintf("%s is %d bytes, over --max-size: not fetched", object, info.Size))
		return
	}
	var get minio.GetObjectOptions
	get.SetMatchETag(info.ETag) // the object the HEAD saw, or 412
	body, _, _, err := minio.Core{Client: client}.GetObject(ctx, bucket, key, get)
	if err != nil {
		h.s3Failed(ctx, x, object, "GET", err)
		return
	}
	defer body.Close()
	src := &s3Body{r: io.LimitReader(body, s.opts.MaxBytes+1)}
	w, err := x.ReadMessageFrom(src)
	switch {
	case src.err != nil:
		h.s3Failed(ctx, x, object, "GET", src.err)
		return
	case err != nil:
		x.Fail(err) // the spool's
		return
	case w.Size() > s.opts.MaxBytes:
		x.Reply(http.StatusRequestEntityTooLarge, fmt.Sprintf("Mail larger than %d bytes", s.opts.MaxBytes),
			fmt.Sprintf("%s: more than %d bytes read, over --max-size", object, s.opts.MaxBytes))
		return
	case w.Size() != info.Size:
		x.Header().Set("Retry-After", "60")
		x.Reply(http.StatusServiceUnavailable, "Cannot fetch the mail from S3 now; retry later",
			fmt.Sprintf("%s: %d bytes read of %d", object, w.Size(), info.Size))
		return
	}
	line := envelopeLine(env.EnvelopeFrom, env.EnvelopeTo, int(w.Size())) + ",s3_object=" + object
	if !x.Deliver([]ingest.Incoming{{Writer: w, Envelope: env}}, []string{line}) {
		return
	}
	if s.opts.Delete {
		// Spooled durably: the bucket's copy is no longer needed. A
		// failure leaves it there, for a lifecycle rule.
		if err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
			x.Log(slog.LevelWarn, "could not delete "+object+" after spooling it", "error", err)
		} else {
			x.Log(slog.LevelInfo, "deleted "+object)
		}
	}
	x.Respond(http.StatusOK, msgOK)
}

// s3Failed answers an S3 request that failed: a bucket or object that does
// not exist gets 404 (given up), or 200 when objects are deleted once
// spooled (an earlier delivery of the same notification took it); anything
// else, 503 (retried): S3 unreachable or slow, its 5xx, or access denied,
// which a fix of the credentials or the policy may mend.
func (h *SES) s3Failed(ctx context.Context, x *ingest.Exchange, object, op string, err error) {
	code := minio.ToErrorResponse(err).Code
	switch {
	case code == minio.NoSuchKey && h.s3.opts.Delete:
		x.Log(slog.LevelWarn, op+" "+object+": no such object: taken and deleted by an earlier delivery of this notification, or removed")
		x.Reply(http.StatusOK, msgOK, "nothing to take")
	case code == minio.NoSuchKey || code == minio.NoSuchBucket:
		x.Reply(http.StatusNotFound, "No such object in S3", op+" "+object+": "+err.Error())
	default:
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", h.s3.opts.Timeout, err)
		}
		x.Header().Set("Retry-After", "60")
		x.Reply(http.StatusServiceUnavailable, "Cannot fetch the mail from S3 now; retry later", op+" "+object+": "+err.Error())
	}
}

// s3Body reads an object's body, keeping its error apart from the
// spool's.
type s3Body struct {
	r   io.Reader
	err error
}

func (b *s3Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}
