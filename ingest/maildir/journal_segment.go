package maildir

// The journal's segments on disk (journal.go: how they are written and
// retired).
//
// A segment, journal/<seq>.log, is a sequence of records, each
//
//	magic    4 bytes  "chj1"
//	length   4 bytes  of the body, big endian
//	checksum 4 bytes  CRC-32C (Castagnoli) of length and body, big endian
//	body:
//	  name length     2 bytes, then the message's Maildir unique name
//	  context length  4 bytes, then its verify.Envelope as JSON
//	  the message's bytes, to the end of the body
//
// A crash in the middle of an append leaves a torn tail: a record whose
// length runs past the end of the file, or whose checksum does not match.
// Replay stops reading the segment there; the deliveries of that append were
// never acknowledged.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	recordMagic      = "chj1"
	recordHeaderSize = 12
	segmentExt       = ".log"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn is a record cut short or damaged: the end of a segment's valid
// records.
var errTorn = errors.New("torn or damaged record")

// record is one delivered message, as the journal holds it.
type record struct {
	name string // Maildir unique name
	env  []byte // context: the verify.Envelope as JSON
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
