package maildir

// The spool's journal makes deliveries durable with one fdatasync(2) shared
// by every delivery waiting, instead of an fsync per message file.
//
// Deliver hands the records of its messages to the journal's committer
// goroutine, which appends every request waiting to the current segment
// with one write, syncs the segment once and answers them all. Each Deliver
// then writes its message files into the Maildir without syncing them: until
// the segment holding their records is retired, a crash is recovered by
// replaying the segment (Spool.replay). The retirer closes a segment about
// once a second, makes the Maildir's files durable (syncfs(2) on Linux) and
// deletes the segment.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SubJournal is the spool's sub-folder holding the journal's segments.
const SubJournal = "journal"

// Journal defaults.
const (
	defaultRotateEvery = time.Second
	defaultMaxSegment  = 64 << 20
	defaultMaxGroup    = 64 << 20
	// keepBuffer is the largest group buffer kept for the next group; a
	// larger one (a very large request) is left to the garbage collector.
	keepBuffer = 4 << 20
)

// errJournalClosed is the error of a delivery after Close.
var errJournalClosed = errors.New("spool: journal: closed")

// journalOptions tune a journal; zero fields take the defaults.
type journalOptions struct {
	// rotateEvery: a segment is closed (and retired) once this old.
	rotateEvery time.Duration
	// maxSegment: a segment is closed once this large.
	maxSegment int64
	// maxGroup: the bytes appended by one write, unless a single request
	// is larger.
	maxGroup int64
	// createSegment creates a segment file (tests inject faults).
	createSegment func(path string) (segmentFile, error)
	// syncData, when set, replaces the spool's way of making the files
	// of retired messages durable (tests keep segments with one that
	// fails).
	syncData func(names []string) error
}

func (o journalOptions) withDefaults() journalOptions {
	if o.rotateEvery <= 0 {
		o.rotateEvery = defaultRotateEvery
	}
	if o.maxSegment <= 0 {
		o.maxSegment = defaultMaxSegment
	}
	if o.maxGroup <= 0 {
		o.maxGroup = defaultMaxGroup
	}
	if o.createSegment == nil {
		o.createSegment = createSegment
	}
	return o
}

// segment is a segment being appended to, or closed and waiting for
// retirement.
type segment struct {
	path   string
	f      segmentFile // nil once closed
	size   int64       // bytes appended and synced
	opened time.Time
	names  []string // the messages appended, for retirement
	// pending counts the deliveries of this segment still writing their
	// message files: the segment is not retired before they are done.
	pending sync.WaitGroup
}

// commitRequest is one Deliver call's records, waiting for the committer.
type commitRequest struct {
	recs  []record
	size  int64
	seg   *segment // set before a successful reply
	reply chan error
}

// journal is the spool's write-ahead log. Two goroutines own it: the
// committer appends and syncs groups of requests; the retirer deletes
// closed segments once the files of their messages are durable.
type journal struct {
	dir  string
	opts journalOptions
	// syncData makes the files of the messages named durable, wherever
	// they are in the Maildir now, and their folder entries.
	syncData func(names []string) error

	reqs      chan *commitRequest
	flushReqs chan chan struct{} // rotate now (flush), then close the channel
	retireNow chan struct{}      // a segment was closed (capacity 1)
	retireMu  sync.Mutex         // one retire at a time: the retirer's, or a flush's
	bytes     atomic.Int64       // of the segments not yet deleted
	stop      chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	closed []*segment // closed segments waiting for retirement, oldest first

	// The committer's own.
	cur *segment
	seq uint64 // number of the last segment created
}

// startJournal starts the committer and retirer of the journal in dir,
// whose next segment is lastSeq+1.
func startJournal(dir string, lastSeq uint64, syncData func([]string) error, opts journalOptions) *journal {
	if opts.syncData != nil {
		syncData = opts.syncData
	}
	j := &journal{
		dir:       dir,
		opts:      opts.withDefaults(),
		syncData:  syncData,
		reqs:      make(chan *commitRequest),
		flushReqs: make(chan chan struct{}),
		retireNow: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		seq:       lastSeq,
	}
	j.wg.Add(2)
	go j.commitLoop()
	go j.retireLoop()
	return j
}

// commit appends recs to the journal and returns once they are durable.
// Concurrent calls share one write and one sync. On success the caller must
// call release once it has written (or given up writing) the messages'
// files: the records' segment is not retired before.
//
// ctx can abandon the wait for the committer, not an append in progress.
func (j *journal) commit(ctx context.Context, recs []record) (release func(), err error) {
	r := &commitRequest{recs: recs, reply: make(chan error, 1)}
	for _, rec := range recs {
		r.size += rec.size()
	}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-j.stop:
		return nil, errJournalClosed
	}
	if err := <-r.reply; err != nil {
		return nil, err
	}
	return r.seg.pending.Done, nil
}

// commitLoop is the committer: it takes a request, gathers every other one
// already waiting (up to maxGroup bytes), commits them as one group, and
// closes the current segment once it is old or large enough.
func (j *journal) commitLoop() {
	defer j.wg.Done()
	tick := time.NewTicker(max(j.opts.rotateEvery/4, time.Millisecond))
	defer tick.Stop()
	var (
		buf   []byte
		group []*commitRequest
		carry *commitRequest // taken, but did not fit in the last group
	)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-j.reqs:
			case done := <-j.flushReqs:
				j.rotate()
				close(done)
				continue
			case <-tick.C:
				j.rotateIfDue()
				continue
			case <-j.stop:
				j.rotate()
				return
			}
		}
		group = append(group[:0], first)
		size := first.size
	gather:
		for size < j.opts.maxGroup {
			select {
			case r := <-j.reqs:
				if size+r.size > j.opts.maxGroup {
					carry = r
					break gather
				}
				group = append(group, r)
				size += r.size
			default:
				break gather
			}
		}
		buf = j.commitGroup(group, buf[:0])
		if cap(buf) > keepBuffer {
			buf = nil
		}
		clear(group) // the requests' messages are not kept until the next group
		j.rotateIfDue()
	}
}

// commitGroup appends the records of every request of group with one write
// and one sync, then answers each request. buf is scratch space, returned
// for the next group.
func (j *journal) commitGroup(group []*commitRequest, buf []byte) []byte {
	seg, err := j.current()
	if err == nil {
		for _, r := range group {
			for _, rec := range r.recs {
				buf = appendRecord(buf, rec)
			}
		}
		err = j.append(seg, buf)
	}
	for _, r := range group {
		if err == nil {
			seg.pending.Add(1)
			for _, rec := range r.recs {
				seg.names = append(seg.names, rec.name)
			}
			r.seg = seg
		}
		r.reply <- err
	}
	return buf
}

// current returns the segment to append to, creating one if needed. A new
// segment's folder entry is synced before anything is acknowledged from it.
func (j *journal) current() (*segment, error) {
	if j.cur != nil {
		return j.cur, nil
	}
	j.seq++
	path := filepath.Join(j.dir, segmentName(j.seq))
	f, err := j.opts.createSegment(path)
	if err != nil {
		return nil, fmt.Errorf("spool: journal: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("spool: journal: %w", err)
	}
	j.cur = &segment{path: path, f: f, opened: time.Now()}
	return j.cur, nil
}

// append writes data at the end of seg and syncs it. When either fails,
// seg is cut back to its size before the write, so that none of these
// records is ever replayed (their deliveries fail), and closed: after a
// failed write or sync its state is unknown, the next group starts a new
// segment.
func (j *journal) append(seg *segment, data []byte) error {
	_, err := seg.f.Write(data)
	if err == nil {
		err = seg.f.Sync()
	}
	if err == nil {
		seg.size += int64(len(data))
		j.bytes.Add(int64(len(data)))
		return nil
	}
	// Should the truncation not reach the disk either, those records may
	// be replayed after a crash that comes before this segment's
	// retirement: messages delivered twice (their senders retry), none
	// lost.
	if terr := seg.f.Truncate(seg.size); terr == nil {
		seg.f.Sync()
	}
	j.rotate()
	return fmt.Errorf("spool: journal: %w", err)
}

// rotateIfDue closes the current segment once it is old or large enough.
func (j *journal) rotateIfDue() {
	if j.cur != nil && (j.cur.size >= j.opts.maxSegment || time.Since(j.cur.opened) >= j.opts.rotateEvery) {
		j.rotate()
	}
}

// rotate closes the current segment and hands it to the retirer.
func (j *journal) rotate() {
	seg := j.cur
	if seg == nil {
		return
	}
	j.cur = nil
	// What was appended is synced already (or cut back): an error closing
	// changes nothing to it.
	seg.f.Close()
	seg.f = nil
	j.mu.Lock()
	j.closed = append(j.closed, seg)
	j.mu.Unlock()
	select {
	case j.retireNow <- struct{}{}:
	default: // the retirer has been told already
	}
}

// retireLoop is the retirer. A retirement that fails is tried again at the
// next rotation, and by Close.
func (j *journal) retireLoop() {
	defer j.wg.Done()
	for {
		select {
		case <-j.retireNow:
			j.retireMu.Lock()
			j.retire()
			j.retireMu.Unlock()
		case <-j.stop:
			return
		}
	}
}

// retire makes the messages of the closed segments durable in the Maildir,
// then deletes the segments. Only the retirer calls it, and Close once the
// retirer has stopped.
func (j *journal) retire() error {
	j.mu.Lock()
	segs := slices.Clone(j.closed)
	j.mu.Unlock()
	if len(segs) == 0 {
		return nil
	}
	var names []string
	for _, seg := range segs {
		seg.pending.Wait()
		names = append(names, seg.names...)
	}
	var err error
	if len(names) > 0 {
		err = j.syncData(names)
	}
	retired := 0
	if err == nil {
		for _, seg := range segs {
			if e := os.Remove(seg.path); e != nil && !errors.Is(e, fs.ErrNotExist) {
				err = e
				break
			}
			j.bytes.Add(-seg.size)
			retired++
		}
	}
	j.mu.Lock()
	j.closed = j.closed[retired:]
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spool: journal: retiring segments: %w", err)
	}
	return nil
}

// flush retires every segment now, the current one too: MakeRoom frees
// the disk space of their copies of messages. It waits for the deliveries
// still writing the files of their messages, so a delivery must release
// its records (commit's release) before it calls flush.
func (j *journal) flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case j.flushReqs <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-j.stop:
		return errJournalClosed
	}
	<-done
	j.retireMu.Lock()
	defer j.retireMu.Unlock()
	return j.retire()
}

// halt stops the committer and the retirer. The current segment is closed:
// retire deletes it with the others.
func (j *journal) halt() {
	j.stopOnce.Do(func() { close(j.stop) })
	j.wg.Wait()
}

// close stops the journal and retires every segment. When it fails, the
// segments left are replayed by the next Open.
func (j *journal) close() error {
	j.halt()
	j.retireMu.Lock()
	defer j.retireMu.Unlock()
	return j.retire()
}
