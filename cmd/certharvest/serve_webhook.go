package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/metrics"
	"github.com/certharvest/certharvest/verify"
)

// HTTP server limits of the webhook. The handler holds the body to a
// minimum rate as it arrives, within webhookBodyTimeout
// (ingest.WebhookOptions.BodyTimeout, MinBodyRate and BodyGrace).
const (
	webhookReadHeaderTimeout = 10 * time.Second
	webhookBodyTimeout       = ingest.DefaultWebhookBodyTimeout
	// WriteTimeout runs from the end of the headers: the body, the
	// spooling and the answer.
	webhookWriteTimeout = webhookBodyTimeout + time.Minute
	webhookIdleTimeout  = 2 * time.Minute
	webhookMaxHeader    = 64 << 10
)

// webhookFlags are the flags of the SparkPost inbound-relay webhook input.
type webhookFlags struct {
	addr          string
	path          string
	token         string
	tokenFile     string
	maxRequest    string
	maxConcurrent int
	maxItems      int
	providers     providerFlags
}

func (f *webhookFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "http", "", "listen `address` of the webhook, e.g. :443 (HTTPS with --tls-cert)")
	fs.StringVar(&f.path, "http-path", "/", "URL `path` the relay webhook posts to")
	fs.StringVar(&f.token, "webhook-token", "", "require this X-MessageSystems-Webhook-Token `value` (prefer --webhook-token-file)")
	fs.StringVar(&f.tokenFile, "webhook-token-file", "", "read the webhook token from `file` (surrounding white space trimmed)")
	fs.StringVar(&f.maxRequest, "max-request-bytes", formatSize(ingest.DefaultWebhookMaxRequestBytes), "largest webhook request body (`bytes`; suffixes KiB, MiB, GiB); larger gets 413")
	fs.IntVar(&f.maxConcurrent, "http-max-requests", ingest.DefaultWebhookMaxConcurrent, "webhook requests handled at once; more get 503 with Retry-After")
	fs.IntVar(&f.maxItems, "http-max-messages", ingest.DefaultWebhookMaxItems, "relay messages in one webhook request; more get 413")
	f.providers.register(fs)
}

func (f *webhookFlags) build(env *inputEnv) (input, error) {
	if f.addr == "" {
		// The other webhook flags are ignored: a configuration file (the
		// original service's webapp.ini) may set the token for a serve
		// that runs without the webhook. A provider's secret is not: it
		// says its webhook is wanted.
		if on := f.providers.enabled(); len(on) > 0 {
			return nil, usagef("the %s webhook needs --http, the listener it is served on", strings.Join(on, ", "))
		}
		return nil, nil
	}
	if f.token != "" && f.tokenFile != "" {
		return nil, usagef("give --webhook-token or --webhook-token-file, not both")
	}
	token := f.token
	if f.tokenFile != "" {
		data, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("webhook token: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			return nil, fmt.Errorf("webhook token file %s is empty", f.tokenFile)
		}
	}
	maxRequest, err := parseSize(f.maxRequest)
	if err != nil {
		return nil, usagef("--max-request-bytes: %v", err)
	}
	if f.maxItems < 1 {
		return nil, usagef("--http-max-messages must be at least 1")
	}
	if env.Memory != nil && env.Memory.Size() < 2*maxRequest {
		// A request is decoded in memory: its body and its messages.
		return nil, usagef("--input-memory (%d bytes) must be at least twice --max-request-bytes (%d bytes)", env.Memory.Size(), maxRequest)
	}
	var headerLimits verify.HeaderLimits
	if env.Setup != nil {
		headerLimits = env.Setup.opts.HeaderLimits
	}
	if f.maxConcurrent < 1 {
		return nil, usagef("--http-max-requests must be at least 1")
	}
	if !strings.HasPrefix(f.path, "/") || f.path == ingest.WebhookHealthPath || f.path == metricsPath || strings.HasPrefix(f.path, lookupPrefix) {
		return nil, usagef("--http-path %q: want a path starting with / other than %s, %s and %s...", f.path,
			ingest.WebhookHealthPath, metricsPath, lookupPrefix)
	}
	provs, err := f.providers.build([]string{f.path, ingest.WebhookHealthPath, metricsPath, lookupPrefix})
	if err != nil {
		return nil, err
	}
	var observe func(int)
	if env.Metrics != nil {
		observe = env.Metrics.WebhookResponse
	}
	health := &ingest.DeliveryHealth{}
	return &webhookInput{
		addr:   f.addr,
		tls:    env.TLS,
		routes: env.Routes,
		opts: ingest.WebhookOptions{
			Path:            f.path,
			Token:           token,
			MaxRequestBytes: maxRequest,
			MaxMessageBytes: env.MaxSize,
			MaxConcurrent:   f.maxConcurrent,
			MaxItems:        f.maxItems,
			BodyTimeout:     webhookBodyTimeout,
			BlockPrefix:     env.Setup != nil && env.Setup.opts.BlockPrefix,
			ObserveResponse: observe,
			PipelineAlive:   env.Health.alive,
			ReportWritable:  env.Health.reportWritable,
			StoreAvailable:  env.Store.available,
			Budget:          env.Memory,
			HeaderLimits:    headerLimits,
			Health:          health,
		},
		providers: provs,
		metrics:   env.Metrics,
		done:      make(chan struct{}),
	}, nil
}

// webhookInput serves the webhook over HTTP, or HTTPS with --tls-cert, and
// the service's other HTTP endpoints (routes) beside it.
type webhookInput struct {
	addr   string
	tls    *tls.Config
	opts   ingest.WebhookOptions
	routes *httpRoutes // nil: the webhook alone
	// providers are the other providers' webhooks on the same listener,
	// sharing the SparkPost webhook's limits and health.
	providers []provider
	metrics   *metrics.Metrics // nil counts nothing
	srv       *http.Server
	done      chan struct{} // closed when Serve has returned
}

// httpRoutes are the endpoints the --http listener serves besides the
// webhook. runServe sets them before the inputs start.
type httpRoutes struct {
	// lookup serves lookupPrefix; nil when the lookup API is off.
	lookup http.Handler
	// metrics serves metricsPath, to the lookup token's holders alone
	// (bearerOnly); nil when they are served elsewhere (--metrics) or
	// there is no lookup token.
	metrics http.Handler
}

// mux returns the --http listener's routes: the webhook's (its path, the
// health check, and a 404 in its words for any path no one else takes),
// the lookup API and the metrics when they are served here.
func (rt *httpRoutes) mux(webhook *ingest.Webhook) *http.ServeMux {
	mux := http.NewServeMux()
	webhook.Handle(mux)
	if rt == nil || rt.lookup == nil {
		// Not the webhook's bare 404, which reads as "no certificate".
		mux.Handle(lookupPrefix, lookupOff{})
	}
	if rt == nil {
		return mux
	}
	if rt.lookup != nil {
		mux.Handle(lookupPrefix, rt.lookup)
		// The folder itself is no certificate: the webhook's 404, not
		// the redirect to lookupPrefix ServeMux would answer.
		mux.Handle(strings.TrimSuffix(lookupPrefix, "/"), webhook)
	}
	if rt.metrics != nil {
		mux.Handle(metricsPath, rt.metrics)
	}
	return mux
}

// lookupOff answers lookupPrefix when the lookup API is off: 404, saying
// so, for an operator who forgot --lookup-token-file would otherwise take
// the webhook's 404 for a missing certificate.
type lookupOff struct{}

// lookupOffAnswer is lookupOff's answer.
const lookupOffAnswer = `{"message":"Not Found: the certificate lookup API is off (serve --lookup-token-file turns it on)"}`

func (lookupOff) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, lookupOffAnswer+"\n")
}

// metricsAccess tells the start-up log who may read metricsPath here:
// "bearer" (the lookup token's holders) or "off".
func (rt *httpRoutes) metricsAccess() string {
	if rt == nil || rt.metrics == nil {
		return "off"
	}
	return "bearer"
}

func (in *webhookInput) scheme() string {
	if in.tls != nil {
		return "https"
	}
	return "http"
}

func (in *webhookInput) String() string {
	return fmt.Sprintf("webhook %s://%s%s", in.scheme(), in.addr, in.opts.Path)
}

// Start listens on --http (port 0 picks a free one: the log tells which)
// and serves in the background.
func (in *webhookInput) Start(ctx context.Context, sink ingest.Sink, log *slog.Logger) error {
	opts := in.opts
	opts.Logger = log
	h, err := ingest.NewWebhook(sink, opts)
	if err != nil {
		return err
	}
	mux := in.routes.mux(h)
	var names []string
	for _, p := range in.providers {
		input := ingest.HTTPInputOptions{
			MaxRequestBytes: opts.MaxRequestBytes,
			MaxMessageBytes: opts.MaxMessageBytes,
			MaxConcurrent:   opts.MaxConcurrent,
			BodyTimeout:     opts.BodyTimeout,
			Budget:          opts.Budget,
			HeaderLimits:    opts.HeaderLimits,
			Logger:          log,
			BlockPrefix:     opts.BlockPrefix,
			Health:          opts.Health,
		}
		if in.metrics != nil {
			input.ObserveResponse = in.metrics.InboundResponse(p.name)
		}
		handler, err := p.make(sink, input)
		if err != nil {
			return fmt.Errorf("%s webhook: %w", p.name, err)
		}
		handler.Handle(mux)
		names = append(names, p.name+" "+p.path)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", in.addr)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	in.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadHeaderTimeout + webhookBodyTimeout,
		WriteTimeout:      webhookWriteTimeout,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeader,
		ErrorLog:          newHTTPErrorLog(log, "webhook"),
		// A request in flight at SIGTERM finishes its delivery:
		// Shutdown waits for it.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if in.tls != nil {
		// A copy: ServeTLS adds "h2" to its NextProtos, and the SMTP
		// input shares env.TLS.
		in.srv.TLSConfig = in.tls.Clone()
	}
	go func() {
		defer close(in.done)
		var err error
		if in.tls != nil {
			err = in.srv.ServeTLS(ln, "", "")
		} else {
			err = in.srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("webhook server failed", "error", err)
		}
	}()
	if ip := listenIP(ln.Addr()); in.opts.Token == "" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("webhook: --http listens beyond loopback without a webhook token: anyone who can reach " + ln.Addr().String() +
			" can post messages; give --webhook-token-file (the relay webhook's auth_token)")
	}
	attrs := []any{"scheme", in.scheme(), "path", in.opts.Path,
		"token", in.opts.Token != "", "max_request_bytes", in.opts.MaxRequestBytes,
		"lookup", in.routes != nil && in.routes.lookup != nil, "metrics", in.routes.metricsAccess()}
	if len(names) > 0 {
		attrs = append(attrs, "providers", strings.Join(names, ", "))
	}
	log.Info("webhook listening on "+ln.Addr().String(), attrs...)
	return nil
}

// listenIP returns the IP address a listener is bound to; nil if unknown.
func listenIP(addr net.Addr) net.IP {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP
	}
	return nil
}

// Shutdown stops listening and waits for the requests in flight; at the
// deadline it closes their connections (they are not acknowledged, so the
// relay delivers them again).
func (in *webhookInput) Shutdown(ctx context.Context) error {
	if in.srv == nil {
		return nil
	}
	err := in.srv.Shutdown(ctx)
	if err != nil {
		in.srv.Close()
	}
	<-in.done
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}

// newHTTPErrorLog routes net/http's own messages to the log, after the
// server's name: TLS handshake failures (scanners, old clients) at debug
// level, the rest as warnings.
func newHTTPErrorLog(logger *slog.Logger, name string) *log.Logger {
	return log.New(httpErrorWriter{logger, name}, "", 0)
}

type httpErrorWriter struct {
	log  *slog.Logger
	name string
}

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, w.name+": "+msg)
	return len(p), nil
}
