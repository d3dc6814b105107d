package providers_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/ingest/maildir"
	"github.com/certharvest/certharvest/ingest/providers"
)

// Every handler registers at its own path on the mux of the SparkPost
// webhook, as serve's --http listener has them; they share its health
// check: a provider's failed delivery fails /healthz as the webhook's
// does.
func TestOneMux(t *testing.T) {
	spool, err := maildir.Open(t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	sink := &failingSink{Sink: spool, n: 1}
	health := &ingest.DeliveryHealth{}
	budget := ingest.NewMemoryBudget(0)
	in := ingest.HTTPInputOptions{Health: health, Budget: budget, MaxRequestBytes: 1 << 20}
	mux := http.NewServeMux()
	webhook, err := ingest.NewWebhook(sink, ingest.WebhookOptions{Health: health, Budget: budget, MaxRequestBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	webhook.Handle(mux)
	var hs []handler
	add := func(h handler, err error) {
		if err != nil {
			t.Fatal(err)
		}
		h.Handle(mux)
		hs = append(hs, h)
	}
	add(providers.NewSendGrid(sink, providers.SendGridOptions{BasicAuth: "u:p", Input: in}))
	add(providers.NewMailgun(sink, providers.MailgunOptions{SigningKey: mailgunKey, Input: in}))
	add(providers.NewPostmark(sink, providers.PostmarkOptions{BasicAuth: "u:p", Input: in}))
	add(providers.NewSES(sink, providers.SESOptions{TopicARNs: []string{sesTopic}, Input: in}))
	add(providers.NewMandrill(sink, providers.MandrillOptions{WebhookKey: "k", URL: "https://x/mandrill", Input: in}))
	add(providers.NewRaw(sink, providers.RawOptions{Token: "t0ken", Input: in}))

	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	for _, path := range []string{"/sendgrid", "/mailgun/mime", "/postmark", "/ses", "/mandrill", "/raw"} {
		if w := serve(httptest.NewRequest(http.MethodGet, path, nil)); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405 from its handler", path, w.Code)
		}
	}
	if w := serve(httptest.NewRequest(http.MethodGet, "/elsewhere", nil)); w.Code != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %d, want the webhook's 404", w.Code)
	}
	healthz := func() int { return serve(httptest.NewRequest(http.MethodGet, ingest.WebhookHealthPath, nil)).Code }
	if c := healthz(); c != http.StatusOK {
		t.Fatalf("healthz %d before any delivery", c)
	}
	expect(t, serve(rawPost(testMessage, "t0ken")), http.StatusServiceUnavailable, "retry later")
	if c := healthz(); c != http.StatusServiceUnavailable {
		t.Errorf("healthz %d after the raw input's failed delivery, want 503", c)
	}
	expect(t, serve(rawPost(testMessage, "t0ken")), http.StatusOK, "ok")
	if c := healthz(); c != http.StatusOK {
		t.Errorf("healthz %d after a delivery succeeded, want 200", c)
	}
	if budget.Used() != 0 {
		t.Errorf("%d bytes of the budget still held", budget.Used())
	}
}
