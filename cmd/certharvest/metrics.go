package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/certharvest/certharvest/internal/lookup"
)

// metricsPath is where the Prometheus metrics are served.
const metricsPath = "/metrics"

// bearerOnly serves the metrics on the public --http listener: only to a
// client sending the lookup API's bearer token, checked as the lookup
// checks it. Anyone else could otherwise post a message to the webhook and
// read its verdict off certharvest_messages_total, which the webhook's own
// answer never tells (docs/SECURITY.md).
func bearerOnly(api *lookup.Handler, h http.Handler) http.Handler {
	return api.Guard("metrics", h)
}

// metricsServer is the listener of --metrics: /metrics alone, over plain
// HTTP, for a Prometheus on a private network or loopback.
type metricsServer struct {
	addr string
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// start listens on addr (port 0 picks a free one: the log tells which).
func (ms *metricsServer) start(ctx context.Context, h http.Handler, log *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", ms.addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, h)
	ms.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadHeaderTimeout,
		WriteTimeout:      time.Minute,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeader,
		ErrorLog:          newHTTPErrorLog(log, "metrics"),
	}
	ms.done = make(chan struct{})
	go func() {
		defer close(ms.done)
		if err := ms.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "error", err)
		}
	}()
	log.Info("metrics listening on "+ln.Addr().String(), "path", metricsPath)
	return nil
}

// shutdown stops the listener.
func (ms *metricsServer) shutdown(ctx context.Context) error {
	if ms == nil || ms.srv == nil {
		return nil
	}
	err := ms.srv.Shutdown(ctx)
	if err != nil {
		ms.srv.Close()
	}
	<-ms.done
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
