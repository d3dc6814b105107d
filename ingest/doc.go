// Package ingest brings messages to certharvest: the network inputs of
// serve, which deliver what they receive into a Sink, and the batch walk of
// scan, which reads files. Each input differs from the others only in how
// the bytes arrive and what context travels with them (an SMTP envelope, a
// relay's ids, a file path).
//
//   - sink.go: Sink, where a network input delivers the messages it
//     receives, durably, before it acknowledges them, each with its
//     verify.Envelope (the context it arrived with). The Maildir spool of package ingest/maildir is the Sink
//     serve uses; the service then verifies what it holds.
//   - writer.go: a message being received goes into a MessageWriter, held
//     in memory within the MemoryBudget all connections share (budget.go),
//     else written as it arrives to a file of the sink's, from which the
//     sink takes it.
//   - httpinput.go: HTTPInput, what every HTTP input shares (the
//     webhook's, and those of package ingest/providers): the cap on
//     requests at once, a body received within its size, time and memory
//     bounds, one log block per request, JSON answers and their count,
//     delivery before the success answer, DeliveryHealth.
//   - webhook.go: SparkPost's inbound-relay webhook (HTTP POST of JSON):
//     webhook_decode.go decodes a request, webhook_pace.go holds its body
//     to a rate, webhook_health.go answers the health check,
//     webhook_log.go writes a request's log block.
//   - smtp.go: a receiving SMTP server (RFC 5321) for direct MX delivery:
//     smtp_session.go its sessions, smtp_data.go a message's DATA,
//     smtp_listener.go the listener that caps the connections,
//     smtp_conn.go a connection and its limits, smtp_reply.go the replies
//     it sees go out.
//   - files.go: the batch input of scan: .eml files, folders of them and
//     Maildirs (https://cr.yp.to/proto/maildir.html: a message is a file in
//     new/ or cur/, never in tmp/), read within a size limit and never
//     through a symbolic link inside a folder (internal/fsutil); walk.go,
//     Walk, the same files as the engine's queue (internal/queue), for
//     scan; archive.go, the archives among them: mbox files (read by the
//     walk, package ingest/mbox) and files compressed with gzip
//     (docs/ARCHIVES.md).
//
// The inputs' tests that need a real spool are in package ingest_test:
// package ingest cannot import package maildir, which imports it.
package ingest
