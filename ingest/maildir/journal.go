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
//
// A segment, journal/<seq>.log, is a sequence of records, each
//
//	magic    4 bytes  "chj1"
//	length   4 bytes  of the body, big endian
//	checksum 4 bytes  CRC-32C (Castagnoli) of length and body, big endian
//	body:
//	  name length     2 bytes, then the message's Maildir unique name
//	  context length  4 bytes, then its ingest.Envelope as JSON
//	  the message's bytes, to the end of the body
//
// A crash in the middle of an append leaves a torn tail: a record whose
// length runs past the end of the file, or whose checksum does not match.
// Replay stops reading the segment there; the deliveries of that append were
// never acknowledged.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SubJournal is the spool's sub-folder holding the journal's segments.
const SubJournal = "journal"

const (
	recordMagic      = "chj1"
	recordHeaderSize = 12
	segmentExt       = ".log"
)

// Journal defaults.
const (
	defaultRotateEvery = time.Second
	defaultMaxSegment  = 64 << 20
	defaultMaxGroup    = 64 << 20
	// keepBuffer is the largest group buffer kept for the next group; a
	// larger one (a very large request) is left to the garbage collector.
	keepBuffer = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn is a record cut short or damaged: the end of a segment's valid
// records.
var errTorn = errors.New("torn or damaged record")

// errJournalClosed is the error of a delivery after Close.
var errJournalClosed = errors.New("spool: journal: closed")

// record is one delivered message, as the journal holds it.
type record struct {
	name string // Maildir unique name
	env  []byte // context: the ingest.Envelope as JSON
	raw  []byte // the message
}

func (r record) bodySize() int64 {
	return 2 + int64(len(r.name)) + 4 + int64(len(r.env)) + int64(len(r.raw))
}

// size is the record's size in a segment.
func (r record) size() int64 { return recordHeaderSize + r.bodySize() }

// check reports whether r fits in a record.
func (r record) check() error {
	if !validRecordName(r.name) {
		return fmt.Errorf("journal: invalid message name %q", r.name)
	}
	if r.bodySize() > math.MaxUint32 {
		return fmt.Errorf("journal: message %s too large (%d bytes)", r.name, len(r.raw))
	}
	return nil
}

// validRecordName reports whether name can be a file name in the Maildir's
// folders: replay creates files by the names it reads.
func validRecordName(name string) bool {
	return name != "" && len(name) <= math.MaxUint16 && name[0] != '.' && !strings.ContainsAny(name, "/\x00")
}

// appendRecord appends r, encoded, to buf.
func appendRecord(buf []byte, r record) []byte {
	start := len(buf)
	buf = append(buf, recordMagic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(r.bodySize()))
	buf = append(buf, 0, 0, 0, 0) // the checksum, once the body is in
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.name)))
	buf = append(buf, r.name...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.env)))
	buf = append(buf, r.env...)
	buf = append(buf, r.raw...)
	sum := crc32.Update(crc32.Checksum(buf[start+4:start+8], castagnoli), castagnoli, buf[start+recordHeaderSize:])
	binary.BigEndian.PutUint32(buf[start+8:], sum)
	return buf
}

// segmentReader reads a segment's records.
type segmentReader struct {
	r    io.Reader
	left int64 // bytes of the segment not read yet
	hdr  [recordHeaderSize]byte
}

func newSegmentReader(r io.Reader, size int64) *segmentReader {
	return &segmentReader{r: bufio.NewReaderSize(r, 64<<10), left: size}
}

// next returns the next record: io.EOF at the end of the segment, errTorn
// at a record cut short or damaged (the end of what can be trusted).
func (sr *segmentReader) next() (record, error) {
	if sr.left == 0 {
		return record{}, io.EOF
	}
	if sr.left < recordHeaderSize {
		return record{}, errTorn
	}
	if _, err := io.ReadFull(sr.r, sr.hdr[:]); err != nil {
		return record{}, readErr(err)
	}
	sr.left -= recordHeaderSize
	if string(sr.hdr[:4]) != recordMagic {
		return record{}, errTorn
	}
	n := int64(binary.BigEndian.Uint32(sr.hdr[4:8]))
	if n > sr.left || n < 6 {
		return record{}, errTorn
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(sr.r, body); err != nil {
		return record{}, readErr(err)
	}
	sr.left -= n
	if crc32.Update(crc32.Checksum(sr.hdr[4:8], castagnoli), castagnoli, body) != binary.BigEndian.Uint32(sr.hdr[8:]) {
		return record{}, errTorn
	}
	nameLen := int64(binary.BigEndian.Uint16(body))
	if 2+nameLen+4 > n {
		return record{}, errTorn
	}
	name := string(body[2 : 2+nameLen])
	rest := body[2+nameLen:]
	envLen := int64(binary.BigEndian.Uint32(rest))
	if 4+envLen > int64(len(rest)) || !validRecordName(name) {
		return record{}, errTorn
	}
	return record{name: name, env: rest[4 : 4+envLen], raw: rest[4+envLen:]}, nil
}

// readErr: a segment shorter than its size when opened is cut short too.
func readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errTorn
	}
	return err
}

// readSegment calls fn for each record of the segment at path, up to its
// end or its first torn or damaged record.
func readSegment(path string, fn func(record) error) error {
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	sr := newSegmentReader(f, info.Size())
	for {
		rec, err := sr.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTorn) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// segmentInfo is a segment found in the journal's folder.
type segmentInfo struct {
	seq  uint64
	path string
}

// listSegments returns the segments in dir, oldest first.
func listSegments(dir string) ([]segmentInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segmentInfo
	for _, e := range entries {
		num, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segmentInfo{seq: seq, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b segmentInfo) int { return compareUint(a.seq, b.seq) })
	return segs, nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// segmentName is the file name of segment seq: fixed width, so that names
// sort as numbers do.
func segmentName(seq uint64) string { return fmt.Sprintf("%016d%s", seq, segmentExt) }

// segmentFile is the journal's handle on a segment: *os.File with Sync
// being fdatasync(2) where there is one. Tests substitute files that fail.
type segmentFile interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

// dataSyncFile is a segment on disk.
type dataSyncFile struct{ *os.File }

func (f dataSyncFile) Sync() error { return fdatasync(f.File) }

// createSegment creates a new, empty segment file.
func createSegment(path string) (segmentFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return dataSyncFile{f}, nil
}

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
