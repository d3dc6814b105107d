package main

import (
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest/providers"
)

// sesS3Flags are the flags of Amazon SES receipt rules' S3 action: the mail
// is fetched from the bucket the notification names (ingest/providers,
// ses_s3.go). docs/WEBHOOKS.md has the setup and the IAM policy.
type sesS3Flags struct {
	buckets           smtpList
	endpoint, region  string
	keyFile           string
	allowHTTP, delete bool
	timeout           time.Duration
}

func (f *sesS3Flags) register(fs *pflag.FlagSet) {
	fs.Var(&f.buckets, "ses-s3-bucket", "S3 `bucket` an SES S3 action may name (repeatable); enables the S3 action")
	fs.StringVar(&f.endpoint, "ses-s3-endpoint", "", "S3 endpoint `URL` (default https://s3.REGION.amazonaws.com)")
	fs.StringVar(&f.region, "ses-s3-region", "", "the buckets' `region` (default the SNS topic's)")
	fs.StringVar(&f.keyFile, "ses-s3-key-file", "", "`file` holding KEY_ID:SECRET for S3 (default: AWS_* env, ~/.aws, IAM role)")
	fs.BoolVar(&f.allowHTTP, "ses-s3-allow-http", false, "allow a plain http --ses-s3-endpoint beyond loopback")
	fs.DurationVar(&f.timeout, "ses-s3-timeout", providers.DefaultSESS3Timeout, "time to fetch one mail from S3; past it, 503 and SNS retries")
	fs.BoolVar(&f.delete, "ses-s3-delete", false, "delete the S3 object once its mail is spooled (needs s3:DeleteObject)")
}

// options returns the S3 action's options, nil when no bucket is given
// (the action is refused), reading the key file.
func (f *sesS3Flags) options() (*providers.SESS3Options, error) {
	if len(f.buckets) == 0 {
		if f.endpoint != "" || f.region != "" || f.keyFile != "" || f.allowHTTP || f.delete {
			return nil, usagef("the --ses-s3-* flags need --ses-s3-bucket, the buckets the S3 action may name")
		}
		return nil, nil
	}
	if f.timeout <= 0 {
		return nil, usagef("--ses-s3-timeout must be positive")
	}
	opts := &providers.SESS3Options{Buckets: f.buckets, Endpoint: f.endpoint, Region: f.region,
		AllowHTTP: f.allowHTTP, Timeout: f.timeout, Delete: f.delete}
	key, err := readSecretFile("ses-s3-key-file", f.keyFile)
	if err != nil {
		return nil, err
	}
	if key != "" {
		id, secret, ok := strings.Cut(key, ":")
		if !ok || id == "" || secret == "" || strings.ContainsAny(key, " \t\r\n") {
			return nil, usagef("--ses-s3-key-file: want one line ACCESS_KEY_ID:SECRET_ACCESS_KEY")
		}
		opts.Credentials = credentials.NewStaticV4(id, secret, "")
	}
	return opts, nil
}
