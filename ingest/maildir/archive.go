package maildir

// The archive is the spool's cur/: every message, once reported, is moved
// there (Spool.Archive), so that scan can process it again. Anyone can mail
// certharvest, so most of what it archives is junk; kept for ever, it would
// fill the disk and then every sender would be refused. So the archive is
// kept by a retention policy:
//
//   - A rejected message is kept ArchivePolicy.KeepRejected (serve's
//     --keep-rejected, 7 days), an accepted one KeepAccepted (for ever by
//     default), counted from its delivery.
//   - Past MaxBytes (--archive-max-size, 1 GiB), the oldest rejected
//     messages are removed first; accepted ones are only ever removed by
//     age.
//   - When the file system runs short of room for new mail, rejected
//     messages are removed, oldest first, before any delivery is refused
//     (MakeRoom, pressure.go).
//
// Which is which is in the message's own name, never in an index that
// could drift from the folder: Archive gives a rejected message the Maildir
// flags "ST", seen and trashed (https://cr.yp.to/proto/maildir.html: T,
// "the user has moved this message to the trash; the trash will be emptied
// by a later user action"), and an accepted one "S" alone, as every message
// had before there was a policy. So the archive of an older certharvest is
// all taken as accepted, kept, not removed; a mail client showing cur/ shows
// the rejected messages as deleted; and a message whose flags say nothing of
// trash, whoever put it there, is never removed as junk.

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/internal/fsutil"
)

// The Maildir info (":2," and the flags, in ASCII order) Archive gives a
// message in cur/.
const (
	infoAccepted = ":2,S"
	infoRejected = ":2,ST"
)

// Retention defaults, serve's flags' defaults.
const (
	// DefaultKeepRejected is how long a rejected message stays in the
	// archive: long enough to look into a complaint ("I sent my
	// certificate last week"), short enough that junk goes.
	DefaultKeepRejected = 7 * 24 * time.Hour
	// DefaultArchiveMaxBytes caps the archive's disk use.
	DefaultArchiveMaxBytes = 1 << 30
	// DefaultArchiveSweep is how often cur/ is swept. A sweep looks at
	// every file of cur/ (about a microsecond each, from the cache);
	// rejected messages kept a few days need no finer a clock, and the
	// size cap is watched between sweeps.
	DefaultArchiveSweep = 10 * time.Minute
)

// archiveLowWater: a sweep over the size cap removes down to the cap less
// 1/archiveLowWater of it, so that the next message archived does not
// start another sweep at once.
const archiveLowWater = 16

// minSweepGap is the least time between two sweeps started by the size
// cap: when accepted mail alone is over it, a sweep cannot bring the
// archive under, and each rejected message archived would start another.
const minSweepGap = time.Minute

// ArchivePolicy says how long cur/ keeps what. The zero value keeps every
// message for ever, as a Maildir does; serve gives DefaultKeepRejected and
// DefaultArchiveMaxBytes. Whatever the policy, rejected messages give way
// when the disk is short of room for new mail (MakeRoom).
type ArchivePolicy struct {
	// KeepRejected and KeepAccepted are how long a rejected or accepted
	// message is kept, from its delivery (the time its Maildir name
	// starts with, or its file's modification time when that is later);
	// 0 keeps it.
	KeepRejected time.Duration
	KeepAccepted time.Duration
	// MaxBytes caps the disk space of cur/: past it, the oldest rejected
	// messages are removed. 0: no cap.
	MaxBytes int64
	// SweepEvery is how often the policy is applied, the first time as
	// the spool opens. Default DefaultArchiveSweep; negative: never in
	// the background (a test sweeps itself).
	SweepEvery time.Duration
	// Now is the clock ages are measured by (default time.Now).
	Now func() time.Time
}

// EvictCause is why an archived message was removed.
type EvictCause int

const (
	EvictAge      EvictCause = iota // older than its policy keeps
	EvictSize                       // the archive was over its size cap
	EvictPressure                   // the disk was short of room for new mail
	NumEvictCauses
)

func (c EvictCause) String() string {
	switch c {
	case EvictAge:
		return "age"
	case EvictSize:
		return "size"
	case EvictPressure:
		return "pressure"
	}
	return fmt.Sprintf("EvictCause(%d)", int(c))
}

// ArchiveCount is a number of messages in the archive and the disk space
// they take.
type ArchiveCount struct {
	Messages int64
	Bytes    int64
}

// ArchiveStats are the archive's contents, as of its last sweep and the
// moves and removals since, and the messages removed since the spool
// opened.
type ArchiveStats struct {
	Accepted ArchiveCount // and any message not flagged as rejected
	Rejected ArchiveCount
	Evicted  [NumEvictCauses]int64
}

// ArchiveStats returns what cur/ holds and what was removed from it.
func (s *Spool) ArchiveStats() ArchiveStats {
	a := &s.archive
	st := ArchiveStats{Accepted: a.accepted.load(), Rejected: a.rejected.load()}
	for c := range st.Evicted {
		st.Evicted[c] = a.evicted[c].Load()
	}
	return st
}

// archive is a Spool's state of cur/.
type archive struct {
	policy ArchivePolicy
	log    *slog.Logger
	// freeSpace returns the bytes free on the file system of a folder
	// (statfs; tests inject a full disk).
	freeSpace func(dir string) (uint64, error)
	headroom  int64         // pressureHeadroom (tests make it smaller)
	sweepNow  chan struct{} // the size cap is passed (capacity 1)

	mu        sync.Mutex // one sweep or eviction at a time
	lastSweep time.Time  // under mu
	pressure  sync.Mutex // one MakeRoom at a time

	accepted, rejected tally
	evicted            [NumEvictCauses]atomic.Int64
}

func (a *archive) init(opts Options) {
	a.policy = opts.Archive
	if a.policy.SweepEvery == 0 {
		a.policy.SweepEvery = DefaultArchiveSweep
	}
	if a.policy.Now == nil {
		a.policy.Now = time.Now
	}
	a.log = opts.Logger
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.freeSpace = freeSpace
	a.headroom = pressureHeadroom
	a.sweepNow = make(chan struct{}, 1)
}

// tally counts messages and bytes, safe for concurrent use.
type tally struct{ messages, bytes atomic.Int64 }

func (t *tally) add(n, bytes int64) {
	t.messages.Add(n)
	t.bytes.Add(bytes)
}

func (t *tally) load() ArchiveCount {
	return ArchiveCount{Messages: max(t.messages.Load(), 0), Bytes: max(t.bytes.Load(), 0)}
}

func (t *tally) store(c ArchiveCount) {
	t.messages.Store(c.Messages)
	t.bytes.Store(c.Bytes)
}

func (a *archive) tallyOf(rejected bool) *tally {
	if rejected {
		return &a.rejected
	}
	return &a.accepted
}

// added counts the message just archived as name in d (cur/), and starts a
// sweep when the archive is now over its size cap.
func (a *archive) added(d *fsutil.Dir, name string, accepted bool) {
	st, err := fsutil.StatAt(d, name)
	if err != nil {
		return // gone already; the next sweep counts right
	}
	a.tallyOf(!accepted).add(1, st.Usage)
	if max := a.policy.MaxBytes; max > 0 && a.accepted.bytes.Load()+a.rejected.bytes.Load() > max {
		select {
		case a.sweepNow <- struct{}{}:
		default:
		}
	}
}

// archived is a message file in cur/.
type archived struct {
	name     string
	rejected bool
	at       time.Time // its delivery
	usage    int64     // bytes of disk
}

// rejectedName reports whether the Maildir name of a message in cur/ has
// the trashed flag: Archive's mark of a rejected message.
func rejectedName(name string) bool {
	_, flags, ok := strings.Cut(name, ":2,")
	return ok && strings.IndexByte(flags, 'T') >= 0
}

// eachArchived calls fn for each message file in cur/ (only the rejected
// ones with rejectedOnly), as it lists the folder. A folder in cur/ is no
// message; names starting with a dot are not messages either.
func (s *Spool) eachArchived(rejectedOnly bool, fn func(archived)) error {
	path := filepath.Join(s.dir, SubCur)
	d, err := openFolder(path)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			rejected := rejectedName(name)
			if strings.HasPrefix(name, ".") || (rejectedOnly && !rejected) {
				continue
			}
			st, err := fsutil.StatAt(s.curDir, name)
			if err != nil || st.IsDir {
				continue // gone since the listing, or a folder
			}
			fn(archived{name: name, rejected: rejected, at: archivedTime(name, st.ModTime), usage: st.Usage})
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", path, err)
		}
		select {
		case <-s.stop:
			return errSpoolClosed // Close waits for a sweep: not for all of it
		default:
		}
	}
}

// errSpoolClosed: the spool was closed during a sweep.
var errSpoolClosed = errors.New("spool closed")

// archivedTime is the delivery time of a message in cur/, by which its age
// is counted: the later of the time its Maildir name starts with and its
// modification time, so that a name whose leading number is no time (a file
// named "2.x" by hand) never makes a message look older than it is.
func archivedTime(name string, modTime time.Time) time.Time {
	if sec, ok := nameSeconds(name); ok && sec > 0 {
		if t := time.Unix(sec, 0); t.After(modTime) {
			return t
		}
	}
	return modTime
}

// evict removes the archived message e (and its context file, should one
// be left in meta/), and counts it. It reports whether e was removed.
func (s *Spool) evict(e archived, cause EvictCause) bool {
	a := &s.archive
	path := filepath.Join(s.dir, SubCur, e.name)
	if err := os.Remove(path); err != nil {
		if !os.IsNotExist(err) {
			a.log.Warn("archive: removing a message failed", "path", path, "error", err)
		}
		return false
	}
	if s.metaUsed.Load() {
		base, _, _ := strings.Cut(e.name, ":2,")
		if err := os.Remove(s.metaPath(base)); err != nil && !os.IsNotExist(err) {
			a.log.Warn("archive: removing a context file failed", "path", s.metaPath(base), "error", err)
		}
	}
	a.tallyOf(e.rejected).add(-1, -e.usage)
	a.evicted[cause].Add(1)
	return true
}

// sweepResult is what a sweep did and found.
type sweepResult struct {
	removed            [NumEvictCauses]ArchiveCount
	accepted, rejected ArchiveCount // kept
}

func (c *ArchiveCount) add(e archived) {
	c.Messages++
	c.Bytes += e.usage
}

// sweepArchive applies the policy to cur/ once: messages older than their
// policy keeps go, then, while the archive is over its size cap, the
// oldest rejected ones. It recounts the archive as it goes.
func (s *Spool) sweepArchive() (sweepResult, error) {
	a := &s.archive
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.policy
	now := p.Now()
	var res sweepResult
	err := s.eachArchived(false, func(e archived) {
		keep, kept := p.KeepAccepted, &res.accepted
		if e.rejected {
			keep, kept = p.KeepRejected, &res.rejected
		}
		if keep > 0 && now.Sub(e.at) > keep && s.evict(e, EvictAge) {
			res.removed[EvictAge].add(e)
			return
		}
		kept.add(e)
	})
	if err != nil {
		return res, fmt.Errorf("spool: archive: %w", err)
	}
	if total := res.accepted.Bytes + res.rejected.Bytes; p.MaxBytes > 0 && total > p.MaxBytes {
		victims, err := s.oldestRejected(total - p.MaxBytes + p.MaxBytes/archiveLowWater)
		if err != nil {
			return res, fmt.Errorf("spool: archive: %w", err)
		}
		for _, e := range victims {
			if s.evict(e, EvictSize) {
				res.removed[EvictSize].add(e)
				res.rejected.Messages--
				res.rejected.Bytes -= e.usage
			}
		}
	}
	a.accepted.store(res.accepted)
	a.rejected.store(res.rejected)
	a.lastSweep = time.Now()
	return res, nil
}

// sweepLoop sweeps the archive as the spool opens, every SweepEvery, and
// soon after the archive passes its size cap.
func (s *Spool) sweepLoop() {
	defer s.wg.Done()
	a := &s.archive
	if a.policy.SweepEvery < 0 {
		return
	}
	tick := time.NewTicker(a.policy.SweepEvery)
	defer tick.Stop()
	for {
		s.sweepLogged()
		select {
		case <-tick.C:
		case <-a.sweepNow:
			a.mu.Lock()
			wait := minSweepGap - time.Since(a.lastSweep)
			a.mu.Unlock()
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-s.stop:
					return
				}
			}
		case <-s.stop:
			return
		}
	}
}

// sweepLogged sweeps the archive and tells the log what went.
func (s *Spool) sweepLogged() {
	a := &s.archive
	res, err := s.sweepArchive()
	if errors.Is(err, errSpoolClosed) {
		return
	}
	if err != nil {
		a.log.Error("archive sweep failed", "error", err)
		return
	}
	age, size := res.removed[EvictAge], res.removed[EvictSize]
	if age.Messages > 0 || size.Messages > 0 {
		a.log.Info(fmt.Sprintf("archive swept: removed %s past their retention, %d rejected over the size cap", messageCount(age.Messages), size.Messages),
			"removed_bytes", age.Bytes+size.Bytes, "accepted_messages", res.accepted.Messages, "accepted_bytes", res.accepted.Bytes,
			"rejected_messages", res.rejected.Messages, "rejected_bytes", res.rejected.Bytes)
	}
	if max := a.policy.MaxBytes; max > 0 && res.accepted.Bytes > max {
		a.log.Warn("archive: accepted messages alone are over the size cap; they are kept as the policy says (--keep-accepted)",
			"accepted_bytes", res.accepted.Bytes, "max_bytes", max)
	}
}

// oldestRejected returns the oldest rejected messages of cur/ that take
// at least bytes of disk together (all of them when they take less), oldest
// first. It holds no more of the listing than it returns: a heap of the
// oldest seen so far, the newest on top, cut back as older ones come.
func (s *Spool) oldestRejected(bytes int64) ([]archived, error) {
	if bytes <= 0 {
		return nil, nil
	}
	var h newestFirst
	var sum int64
	err := s.eachArchived(true, func(e archived) {
		if sum >= bytes && len(h) > 0 && !older(e, h[0]) {
			return // newer than every message that must go
		}
		heap.Push(&h, e)
		sum += e.usage
		for len(h) > 1 && sum-h[0].usage >= bytes {
			sum -= heap.Pop(&h).(archived).usage
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]archived, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(archived)
	}
	return out, nil
}

// older orders archived messages by delivery, then by name.
func older(a, b archived) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return cmp.Less(a.name, b.name)
}

// newestFirst is a max-heap of archived messages by age (container/heap).
type newestFirst []archived

func (h newestFirst) Len() int           { return len(h) }
func (h newestFirst) Less(i, j int) bool { return older(h[j], h[i]) }
func (h newestFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *newestFirst) Push(x any)        { *h = append(*h, x.(archived)) }
func (h *newestFirst) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// messageCount returns "1 message", "2 messages".
func messageCount(n int64) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}
