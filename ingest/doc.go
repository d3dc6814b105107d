// Package ingest brings messages to the verification pipeline. Each input
// differs from the others only in how the bytes arrive and what context
// travels with them (a file path, an SMTP envelope, a relay's ids); all of
// them end as a verify.Message for the same pipeline.
//
//   - files.go: the batch input of scan: .eml files, folders of them and
//     Maildirs (https://cr.yp.to/proto/maildir.html: a message is a file in
//     new/ or cur/, never in tmp/).
//   - spool.go: the Maildir every live input delivers into, durably, before
//     it acknowledges a message; journal.go makes concurrent deliveries
//     durable together (one append and one fdatasync per group) and replays
//     them after a crash; maildir.go watches its new/ folder for the
//     service, whoever delivered there (an MTA, or the inputs below).
//   - sys_linux.go, sys_other.go: extended attributes, fdatasync, syncfs and
//     file locks, where the system has them; dir_linux.go, dir_other.go:
//     reading, renaming and looking at files relative to a folder opened
//     once (openat and its kin), for the spool's per-message work.
//   - spool_writer.go, spool_stream.go: a message the live inputs receive
//     goes into a MessageWriter, held in memory within the MemoryBudget
//     all connections share (budget.go), else written to tmp/ as it
//     arrives and delivered from that file, synced, outside the journal.
//   - webhook.go: SparkPost's inbound-relay webhook (HTTP POST of JSON).
//   - smtp.go: a receiving SMTP server (RFC 5321) for direct MX delivery:
//     its sessions; smtp_data.go, a message's DATA into the spool;
//     smtp_conn.go, the listener and connections, with their limits.
package ingest
