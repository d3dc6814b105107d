package maildir

import (
	"context"
	"fmt"
)

// When the spool's file system is full, a delivery fails with ENOSPC (or
// EDQUOT). Before it is refused, and its sender told to come back later
// (SMTP 451, webhook 503), the spool makes room (MakeRoom) and tries once
// more. What may go, in this order:
//
//  1. the journal's copies of messages delivered in the last second or so,
//     which are in new/ or cur/ already: its segments are retired early
//     (one syncfs(2)), as they would be within a second;
//  2. the archive's rejected messages, oldest first.
//
// A delivery is refused only when what fills the disk is mail still to
// verify (new/), accepted mail the policy keeps (cur/), or other files.
// None of it costs a delivery anything until the disk is full: the check is
// on Deliver's error path.

// pressureHeadroom is the room MakeRoom leaves beyond what was asked, when
// it must remove archived messages: removing junk a message at a time would
// list cur/ for every delivery while the disk stays full.
const pressureHeadroom = 16 << 20

// roomSlack is what a message's files take beyond their bytes: the
// rounding of each file to the file system's blocks, folder entries.
const roomSlack = 64 << 10

// MakeRoom frees room on the spool's file system for need more bytes of
// new mail, when it has less: the journal's copies of delivered messages
// first, then the archive's rejected messages, oldest first, and then
// pressureHeadroom more. Deliver and Room call it when the disk is
// full; an input that writes into the spool by other means (a message
// streamed into tmp/) should call it when a write fails with ENOSPC, then
// try once more. It returns an error only when it could not look.
func (s *Spool) MakeRoom(ctx context.Context, need int64) error {
	a := &s.archive
	a.pressure.Lock()
	defer a.pressure.Unlock()
	want := need + roomSlack
	free, err := a.freeSpace(s.dir)
	known := err == nil
	if known && free >= uint64(want) {
		return nil // made by another delivery meanwhile
	}
	// The journal's segments hold copies: retiring them loses nothing.
	if err := s.journal.flush(ctx); err != nil {
		a.log.Warn("spool short of room: retiring the journal early failed", "error", err)
	}
	if known {
		if free, err = a.freeSpace(s.dir); err == nil && free >= uint64(want) {
			return nil
		}
	}
	bytes := want + a.headroom
	if known {
		bytes -= int64(min(free, uint64(want)))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	victims, err := s.oldestRejected(bytes)
	if err != nil {
		return fmt.Errorf("spool: making room: %w", err)
	}
	var removed ArchiveCount
	for _, e := range victims {
		if s.evict(e, EvictPressure) {
			removed.add(e)
		}
	}
	if removed.Messages > 0 {
		a.log.Warn(fmt.Sprintf("spool short of room for new mail: removed %d archived rejected messages, oldest first", removed.Messages),
			"removed_bytes", removed.Bytes, "free_bytes", free, "needed_bytes", need)
	} else {
		a.log.Warn("spool short of room for new mail, and the archive holds no rejected message to remove",
			"free_bytes", free, "needed_bytes", need)
	}
	return nil
}

// placeShortOfRoom is place on a full disk: once MakeRoom has made room,
// the messages are placed again. MakeRoom retires the journal's segments
// early, this delivery's own too: its records are let go first (release),
// so the files placed are made durable here, before the delivery is
// acknowledged, as the journal's retirement would have. A crash before
// then loses only messages not acknowledged.
func (s *Spool) placeShortOfRoom(ctx context.Context, names []string, recs []record, release func()) error {
	release()
	if err := s.MakeRoom(ctx, roomFor(recs)); err != nil {
		return err
	}
	if err := s.place(recs); err != nil {
		return err
	}
	return s.syncMessages(names)
}

// roomFor returns the bytes that placing recs takes on disk, about.
func roomFor(recs []record) int64 {
	var n int64
	for _, r := range recs {
		n += r.size() + roomSlack
	}
	return n
}

// reclaimable returns the bytes MakeRoom could free: the journal's
// segments and the archive's rejected messages.
func (s *Spool) reclaimable() int64 {
	return s.journal.bytes.Load() + s.archive.rejected.bytes.Load()
}
