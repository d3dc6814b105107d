// Package maildir is certharvest's durable queue: a Maildir
// (https://cr.yp.to/proto/maildir.html) that the network inputs deliver
// into before they acknowledge a message (it is their ingest.Sink), that an
// MTA may deliver into as well, and that the service takes messages from.
//
// A message is in one of the Maildir's folders:
//
//   - tmp/ while it is written (or nowhere, written unnamed and linked into
//     new/ once whole: internal/tmpfile);
//   - new/ once delivered, waiting to be verified: Watcher (watcher.go)
//     hands over each name once, however it arrived, and the service reads
//     it with Spool.LoadFile;
//   - cur/ once reported (Spool.Archive), with the Maildir flags S, or ST
//     for a rejected message: the archive, which scan can read again, kept
//     as its ArchivePolicy says (archive.go), rejected mail giving way first
//     when the disk is short of room for new mail (pressure.go).
//
// The context a message arrived with (its verify.Envelope: source,
// envelope, remote address, a relay's ids) is kept in an extended attribute
// of its file, user.certharvest.envelope, or, where the file system has
// none, beside it in meta/<name>.json: the file's bytes are exactly those
// received (spool.go, spool_read.go).
//
// Deliveries are made durable by a journal (journal/, journal.go,
// journal_segment.go): each delivery's messages are appended to the
// current segment, one fdatasync shared by every delivery waiting, before
// their files are written into new/ unsynced; about once a second a
// segment is retired, once one syncfs has made its files durable, and what
// a crash leaves is replayed when the spool opens (spool_replay.go). A
// message received into a file of its own (over ingest.DefaultSpillBytes,
// or no room in memory) bypasses the journal: its file is synced and linked
// into new/, new/ synced, before the delivery returns (spool_stream.go).
//
// The in-flight log (quarantine.go, the file inflight) tells the next start
// which messages were being verified when the process crashed, so that a
// message crashing it again and again is set aside in quarantine/ rather
// than stop the service for good.
//
// Queue (queue.go) is the spool as the engine's queue (internal/queue):
// the Watcher's names in order, each marked in flight while it is
// verified, acked by its move to cur/.
//
// The spool never follows a symbolic link inside the Maildir; on Linux it
// reads and moves files relative to folders opened once (internal/fsutil,
// sys_linux.go).
package maildir
