package ingest

// The webhook's answers, and the block of log lines each request gets.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// reply answers with status and logs the outcome as the block's last line:
// the answer's message, then the detail where it adds to it.
func (in *HTTPInput) reply(w http.ResponseWriter, log *webhookLog, status int, msg, detail string) {
	line := fmt.Sprintf("%d %s", status, msg)
	if extra := detailBeyond(msg, detail); extra != "" {
		line += ": " + extra
	}
	level := slog.LevelInfo
	if status >= 400 {
		level = slog.LevelWarn
	}
	log.add(level, line)
	in.respond(w, status, msg)
}

// detailBeyond returns what detail says beyond msg. An answer is often
// the error itself, capitalised (webhookErrorStatus), or the start of it:
// the log line would say it twice.
func detailBeyond(msg, detail string) string {
	if len(detail) >= len(msg) && strings.EqualFold(detail[:len(msg)], msg) {
		return strings.TrimLeft(detail[len(msg):], ": ")
	}
	return detail
}

// respond writes an answer of the input, and counts it.
func (in *HTTPInput) respond(w http.ResponseWriter, status int, msg string) {
	if in.opts.ObserveResponse != nil {
		in.opts.ObserveResponse(status)
	}
	writeWebhookJSON(w, status, msg)
}

// writeWebhookJSON writes the answer {"message": msg}.
func writeWebhookJSON(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// headerCount counts the request's header fields, Host included, as the
// original service's len(headers) did.
func headerCount(r *http.Request) int {
	n := 0
	for _, v := range r.Header {
		n += len(v)
	}
	if r.Host != "" {
		n++
	}
	return n
}

func plural(n int, word string) string { return pluralWord(n, word, word+"s") }

// pluralWord returns one when n is 1, else many.
func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// webhookLog gathers a request's lines and writes them together at the end,
// as one block like the original service's: the first line "Request from
// ...", the others prefixed "| " (BlockPrefix), all with the request's id.
type webhookLog struct {
	in      *HTTPInput
	id      string
	records []slog.Record
}

func (in *HTTPInput) newLog(r *http.Request) *webhookLog {
	l := &webhookLog{in: in, id: fmt.Sprintf("req-%08x", rand.Uint32())}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// The peer's address without its port, as the original service logged
	// it; the port is in the report's remote_addr.
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	first := fmt.Sprintf("Request from %s,scheme=%s,path=%s", peer, scheme, r.URL.Path)
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		first += ",forwarded_for=" + fwd
	}
	l.add(slog.LevelInfo, first)
	return l
}

func (l *webhookLog) add(level slog.Level, msg string, args ...any) {
	if !l.in.opts.Logger.Enabled(context.Background(), level) {
		return
	}
	if len(l.records) > 0 && l.in.opts.BlockPrefix {
		msg = "| " + msg
	}
	rec := slog.NewRecord(time.Now(), level, msg, 0)
	rec.Add(args...)
	l.records = append(l.records, rec)
}

// flush writes the block. The request's context may be done (the client
// went away): the block is written anyway.
func (l *webhookLog) flush(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	handler := l.in.opts.Logger.Handler().WithAttrs([]slog.Attr{slog.String("id", l.id)})
	l.in.logMu.Lock()
	defer l.in.logMu.Unlock()
	for _, rec := range l.records {
		_ = handler.Handle(ctx, rec)
	}
}
