// Package providers holds the inbound webhooks of the mail providers other
// than SparkPost (whose relay webhook is ingest.Webhook): each takes the
// provider's POST of a received message exactly as the provider sends it,
// checks that the provider sent it, and delivers the message, byte for
// byte, into an ingest.Sink before it answers with the status that tells
// the provider the message is taken. Every other answer is the one that
// makes the provider retry (the sink cannot take it now) or give up (no
// later attempt can pass). docs/WEBHOOKS.md describes each request and
// answer, with the provider documentation it follows.
//
//   - sendgrid.go: SendGrid Inbound Parse with "POST the raw, full MIME
//     message" (multipart/form-data, field email), its signed-webhook
//     policy (ECDSA P-256) and/or basic auth.
//   - mailgun.go: a Mailgun route's forward() to a URL ending in "mime"
//     (field body-mime), HMAC-SHA256 of timestamp and token, with a
//     bounded memory of the tokens seen (tokens.go) against replay.
//   - postmark.go: Postmark inbound with the raw email (RawEmail), basic
//     auth.
//   - ses.go: Amazon SES receipt rules' SNS action, Base64 encoding; the
//     SNS message signature and its certificate (sns.go), topics allowed,
//     subscriptions confirmed. ses_s3.go: their S3 action, the mail fetched
//     with minio-go from the buckets allowed, its size bounded.
//   - mandrill.go: Mandrill (Mailchimp Transactional) inbound routes
//     (mandrill_events, msg.raw_msg), X-Mandrill-Signature.
//   - raw.go: POST of a message/rfc822 body with a bearer token, the
//     envelope in header fields: Cloudflare Email Workers, scripts.
//   - common.go: what they share: registration, method and auth checks,
//     the form decoder (form.go).
//
// Each handler is an http.Handler registered on the one mux of the --http
// listener at its own path (Handle), with the limits, memory budget, log
// block, metrics hook and health of ingest.HTTPInput.
package providers
