// Package engine runs the verification pipeline (package verify) over a
// queue of messages (internal/queue): scan's walk of files, serve's Maildir
// spool, or a queue on another system. It is the part of certharvest
// between where a message waits and its report line:
//
//   - process.go: readers take messages from the queue (Queue.Next), read
//     each within a budget of bytes in memory (budget.go: eight messages at
//     --max-size, 256 MiB at most), and verify it holding one of
//     Options.Workers CPU slots (slots.go). A message waiting for the disk
//     (its certificate's group commit) or for DNS gives its slot to another
//     meanwhile, so that many wait together (WithSlotWaits).
//   - commit.go: one goroutine commits the verdicts in batches: the report
//     lines of a batch are written and synced once, then the messages are
//     acked to the queue (group commit). A temporary failure (dkim_temperror,
//     store_failed) is not reported but offered again later (Queue.RetryAt),
//     with back-off, for Options.RetryFor. A report that cannot be written
//     holds its batch and is tried again, with back-off, until it can.
//   - archivesync.go: the acks are made durable (Queue.Sync) in the
//     background, about once a second.
//   - suspects.go: the messages in flight at the last crash are verified
//     first, each alone; one in flight in QuarantineAfterCrashes crashes in
//     a row is reported internal_error and set aside (Queue.Quarantine).
//   - health.go: whether the engine runs and keeps up (Engine.Alive), for
//     a health check.
//   - readerr.go: the verdict on a message that could not be read.
//
// Its clock for retry times, verdict times and health is Options.Now; it
// counts nothing itself but tells its Options.Observer (serve's metrics,
// scan's summary); it has no package-level state: each Engine stands
// alone, and tests run it in-process.
package engine
