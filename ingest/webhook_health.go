package ingest

// The webhook's health check (WebhookHealthPath), for a load balancer or a
// monitor.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// The answers of the health check, when it fails.
const (
	healthMsgPipeline = "pipeline not running"
	healthMsgWritable = "spool not writable"
	healthMsgSpace    = "spool low on space"
	healthMsgDelivery = "spool deliveries failing"
	healthMsgReport   = "report not writable"
	healthMsgStore    = "store unavailable"
)

// serveHealth answers a load balancer or a monitor: 200 while a message
// could be spooled and the pipeline runs, else 503 with the first reason
// found (the detail goes to the log, not to the client).
func (h *Webhook) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeWebhookJSON(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if msg, err := h.health(r.Context()); err != nil {
		h.opts.Logger.Warn("health check: 503 "+msg, "error", err)
		writeWebhookJSON(w, http.StatusServiceUnavailable, msg)
		return
	}
	writeWebhookJSON(w, http.StatusOK, webhookMsgOK)
}

// health checks, in order, that the certificate store answers (first: a
// store that does not answer also holds up the report's verdict rows and
// the pipeline, and is the cause), that the report can be written (a
// report that cannot be written also holds up the pipeline),
// that the pipeline runs, that the sink can be written and has room for a
// request of the largest size (a request's messages never take more room
// than its body: base64 and JSON escapes only shrink when decoded), and
// that the last delivery did not fail. It returns the answer's message and
// the cause.
func (h *Webhook) health(ctx context.Context) (string, error) {
	if h.opts.StoreAvailable != nil {
		if err := h.opts.StoreAvailable(); err != nil {
			return healthMsgStore, err
		}
	}
	if h.opts.ReportWritable != nil {
		if err := h.opts.ReportWritable(); err != nil {
			return healthMsgReport, err
		}
	}
	if h.opts.PipelineAlive != nil {
		if err := h.opts.PipelineAlive(); err != nil {
			return healthMsgPipeline, err
		}
	}
	if err := h.sink.Room(ctx, h.opts.MaxRequestBytes); err != nil {
		if e, ok := errors.AsType[*NoRoomError](err); ok {
			return healthMsgSpace, fmt.Errorf("%d bytes free, less than the largest request (%d bytes)", e.Free, h.opts.MaxRequestBytes)
		}
		return healthMsgWritable, err
	}
	if err := h.in.opts.Health.check(h.opts.Now()); err != nil {
		return healthMsgDelivery, err
	}
	return "", nil
}
