package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/providers"
)

// providerFlags are the flags of the other providers' inbound webhooks
// (ingest/providers), served on --http beside the SparkPost webhook, each
// at its own path and enabled by its own secret. docs/WEBHOOKS.md has each
// provider's settings.
type providerFlags struct {
	sendgridPath, sendgridKeyFile, sendgridAuthFile string
	mailgunPath, mailgunKeyFile                     string
	mailgunMaxAge                                   time.Duration
	mailgunMaxTokens                                int
	postmarkPath, postmarkAuthFile                  string
	sesPath                                         string
	sesTopics                                       smtpList
	ses3                                            sesS3Flags
	mandrillPath, mandrillKeyFile, mandrillURL      string
	rawPath, rawTokenFile                           string
}

func (f *providerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.sendgridPath, "sendgrid-path", providers.DefaultSendGridPath, "URL `path` SendGrid Inbound Parse posts to")
	fs.StringVar(&f.sendgridKeyFile, "sendgrid-public-key-file", "", "SendGrid's signed-webhook verification key `file`; enables SendGrid")
	fs.StringVar(&f.sendgridAuthFile, "sendgrid-basic-auth-file", "", "`file` holding user:password required of SendGrid; enables SendGrid")
	fs.StringVar(&f.mailgunPath, "mailgun-path", providers.DefaultMailgunPath, "URL `path` a Mailgun route's forward() posts to (ends in mime)")
	fs.StringVar(&f.mailgunKeyFile, "mailgun-signing-key-file", "", "Mailgun's HTTP webhook signing key `file`; enables Mailgun")
	fs.DurationVar(&f.mailgunMaxAge, "mailgun-max-age", providers.DefaultMailgunMaxAge, "oldest Mailgun signature taken (its retries reuse it)")
	fs.IntVar(&f.mailgunMaxTokens, "mailgun-max-tokens", providers.DefaultMailgunMaxTokens, "Mailgun tokens remembered against replay; beyond, 503")
	fs.StringVar(&f.postmarkPath, "postmark-path", providers.DefaultPostmarkPath, "URL `path` Postmark's inbound webhook posts to")
	fs.StringVar(&f.postmarkAuthFile, "postmark-basic-auth-file", "", "`file` holding the user:password of Postmark's webhook URL; enables Postmark")
	fs.StringVar(&f.sesPath, "ses-path", providers.DefaultSESPath, "URL `path` of the SNS subscription of Amazon SES")
	fs.Var(&f.sesTopics, "ses-topic-arn", "SNS topic `arn` taken and confirmed (repeatable); enables Amazon SES")
	f.ses3.register(fs)
	fs.StringVar(&f.mandrillPath, "mandrill-path", providers.DefaultMandrillPath, "URL `path` Mandrill's inbound webhook posts to")
	fs.StringVar(&f.mandrillKeyFile, "mandrill-webhook-key-file", "", "Mandrill's webhook key `file`; enables Mandrill, with --mandrill-url")
	fs.StringVar(&f.mandrillURL, "mandrill-url", "", "the webhook `URL` exactly as given to Mandrill (it is signed)")
	fs.StringVar(&f.rawPath, "raw-path", providers.DefaultRawPath, "URL `path` of raw message/rfc822 posts")
	fs.StringVar(&f.rawTokenFile, "raw-token-file", "", "bearer token `file` of raw posts; enables the raw input")
}

// enabled names the providers whose secret is given.
func (f *providerFlags) enabled() []string {
	var names []string
	for _, p := range []struct {
		name string
		on   bool
	}{
		{"sendgrid", f.sendgridKeyFile != "" || f.sendgridAuthFile != ""},
		{"mailgun", f.mailgunKeyFile != ""},
		{"postmark", f.postmarkAuthFile != ""},
		{"ses", len(f.sesTopics) > 0 || len(f.ses3.buckets) > 0},
		{"mandrill", f.mandrillKeyFile != "" || f.mandrillURL != ""},
		{"raw", f.rawTokenFile != ""},
	} {
		if p.on {
			names = append(names, p.name)
		}
	}
	return names
}

// provider is one provider's handler, made once the spool is open.
type provider struct {
	name, path string
	make       func(sink ingest.Sink, input ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error)
}

// build reads the secrets of the enabled providers and checks their paths
// against each other and taken, the paths already served on --http.
func (f *providerFlags) build(taken []string) ([]provider, error) {
	var list []provider
	for _, name := range f.enabled() {
		p, err := f.provider(name)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(p.path, "/") {
			return nil, usagef("--%s-path %q: want a path starting with /", name, p.path)
		}
		for _, t := range taken {
			if pathClash(p.path, t) {
				return nil, usagef("--%s-path %q is taken already on --http (%s)", name, p.path, t)
			}
		}
		taken = append(taken, p.path)
		list = append(list, p)
	}
	return list, nil
}

// pathClash reports whether a provider's path collides with a path served
// already: the same, or inside a folder served whole ("/certs/"), other
// than the SparkPost webhook's default "/", which takes what no one else
// does.
func pathClash(path, taken string) bool {
	return path == taken || taken != "/" && strings.HasSuffix(taken, "/") && strings.HasPrefix(path, taken)
}

// provider reads one provider's settings.
func (f *providerFlags) provider(name string) (provider, error) {
	switch name {
	case "sendgrid":
		key, err := readSecretFile("sendgrid-public-key-file", f.sendgridKeyFile)
		if err != nil {
			return provider{}, err
		}
		auth, err := readSecretFile("sendgrid-basic-auth-file", f.sendgridAuthFile)
		if err != nil {
			return provider{}, err
		}
		return provider{name, f.sendgridPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewSendGrid(sink, providers.SendGridOptions{Path: f.sendgridPath, PublicKey: key, BasicAuth: auth, Input: in})
		}}, nil
	case "mailgun":
		key, err := readSecretFile("mailgun-signing-key-file", f.mailgunKeyFile)
		if err != nil {
			return provider{}, err
		}
		return provider{name, f.mailgunPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewMailgun(sink, providers.MailgunOptions{Path: f.mailgunPath, SigningKey: key,
				MaxAge: f.mailgunMaxAge, MaxTokens: f.mailgunMaxTokens, Input: in})
		}}, nil
	case "postmark":
		auth, err := readSecretFile("postmark-basic-auth-file", f.postmarkAuthFile)
		if err != nil {
			return provider{}, err
		}
		return provider{name, f.postmarkPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewPostmark(sink, providers.PostmarkOptions{Path: f.postmarkPath, BasicAuth: auth, Input: in})
		}}, nil
	case "ses":
		topics := []string(f.sesTopics)
		if len(topics) == 0 {
			return provider{}, usagef("Amazon SES needs --ses-topic-arn, the SNS topics whose notifications are taken")
		}
		s3, err := f.ses3.options()
		if err != nil {
			return provider{}, err
		}
		if s3 != nil {
			if err := s3.Check(topics); err != nil {
				return provider{}, usagef("%v", err)
			}
		}
		return provider{name, f.sesPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewSES(sink, providers.SESOptions{Path: f.sesPath, TopicARNs: topics, S3: s3, Input: in})
		}}, nil
	case "mandrill":
		if f.mandrillKeyFile == "" || f.mandrillURL == "" {
			return provider{}, usagef("Mandrill needs both --mandrill-webhook-key-file and --mandrill-url (the signature covers the URL)")
		}
		key, err := readSecretFile("mandrill-webhook-key-file", f.mandrillKeyFile)
		if err != nil {
			return provider{}, err
		}
		return provider{name, f.mandrillPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewMandrill(sink, providers.MandrillOptions{Path: f.mandrillPath, WebhookKey: key, URL: f.mandrillURL, Input: in})
		}}, nil
	case "raw":
		token, err := readSecretFile("raw-token-file", f.rawTokenFile)
		if err != nil {
			return provider{}, err
		}
		return provider{name, f.rawPath, func(sink ingest.Sink, in ingest.HTTPInputOptions) (interface{ Handle(*http.ServeMux) }, error) {
			return providers.NewRaw(sink, providers.RawOptions{Path: f.rawPath, Token: token, Input: in})
		}}, nil
	}
	return provider{}, fmt.Errorf("no provider %q", name)
}

// readSecretFile reads a secret from path, white space around it trimmed;
// "" for no path.
func readSecretFile(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		return "", fmt.Errorf("--%s: %s is empty", flag, path)
	}
	return secret, nil
}
