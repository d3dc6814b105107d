package maildir

import (
	"fmt"
	"math"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/verify"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// FileVersion tells one state of a message file from another: its size
// and modification time. A message delivered the Maildir way never changes
// in new/; one written straight into new/ changes until its writer is done.
type FileVersion struct {
	Size    int64
	ModTime time.Time
}

// LoadFile reads a message from new/ with its context, as opts say (a
// symbolic link is always refused), and returns the version of the file it
// read (the zero FileVersion when it could not open it), for Version to
// tell whether the file changed since.
//
// A message without a context was delivered by an MTA: its source is "maildir"
// and its received time the Maildir name's time, else the file's modification
// time. A message that is no longer in new/ gives an error wrapping
// fs.ErrNotExist. A message over opts.MaxSize is not read; its error wraps an
// *ingest.TooLargeError, and m has its context and its ID all the same.
func (s *Spool) LoadFile(name string, opts ingest.ReadOptions) (*verify.Message, FileVersion, error) {
	path := s.newDir.Join(name)
	m := &verify.Message{Path: path, Envelope: verify.Envelope{Source: "maildir"}}
	d := s.newDir
	if !fsutil.PlainName(name) {
		d = nil // opened by its path, as it says: not a file of new/
	}
	opts.NoFollow = true // a link in new/ is refused, never read
	f, err := fsutil.ReadFileAt(d, name, path, opts, envelopeXattr)
	if err != nil {
		// A message too large is still reported with its context (where
		// it came from) and its id.
		if m.ID = ingest.MessageIDOf(err); m.ID == "" {
			return m, FileVersion{}, err
		}
	}
	version := FileVersion{Size: f.Size, ModTime: f.ModTime}
	loadErr := err
	err = nil
	m.Raw = f.Raw
	data := f.Xattr
	if data == nil && s.metaUsed.Load() {
		data, err = s.readMeta(name)
	}
	if data != nil && err == nil {
		// Decoded into a zero envelope, as it was stored: a field the
		// context lacks stays zero (decoding merges into what is there).
		m.Envelope = verify.Envelope{}
		if decodeEnvelope(data, &m.Envelope) != nil {
			m.Envelope = verify.Envelope{Source: "maildir"} // as if it had none
		}
	}
	if m.Received.IsZero() {
		m.Received = deliveryTime(name, f.ModTime)
	}
	return m, version, loadErr
}

// Version returns the version of the message file name in new/ now, looked
// at as the Watcher looks (fstatat(2) relative to new/). An error
// wraps fs.ErrNotExist when the file has left new/.
func (s *Spool) Version(name string) (FileVersion, error) {
	d := s.newDir
	if !fsutil.PlainName(name) {
		d, name = nil, s.newDir.Join(name)
	}
	info, err := fsutil.StatAt(d, name)
	if err != nil {
		return FileVersion{}, err
	}
	return FileVersion{Size: info.Size, ModTime: info.ModTime}, nil
}

// decodeEnvelope decodes a message's context, which Deliver encoded with
// encoding/json, as encoding/json would (TestDecodeEnvelope), with
// github.com/go-json-experiment/json: half the time, a third of the
// allocations. The options are encoding/json's ways: member names matched
// without regard to case (but not to '_' and '-'), a member named twice
// taken the last time, bytes that are not UTF-8 replaced by U+FFFD, and
// times in RFC 3339 as loosely as time.Time's UnmarshalJSON reads them
// (FuzzDecodeEnvelope).
func decodeEnvelope(data []byte, env *verify.Envelope) error {
	return jsonv2.Unmarshal(data, env, jsonv2.MatchCaseInsensitiveNames(true), jsonv1.MatchCaseSensitiveDelimiter(true),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true), jsonv1.ParseTimeWithLooseRFC3339(true))
}

// deliveryTime is the time a Maildir message was delivered: the leading
// seconds of its unique name, else its modification time.
func deliveryTime(name string, modTime time.Time) time.Time {
	if sec, ok := nameSeconds(name); ok && sec > 0 {
		return time.Unix(sec, 0)
	}
	return modTime
}

// nameSeconds parses the leading decimal number of a Maildir unique name,
// which a dot ends ("1780308000.M1P42Q7.mx"): what fmt.Sscanf(name, "%d.")
// reads, without its cost for the usual name.
func nameSeconds(name string) (int64, bool) {
	var sec int64
	i := 0
	for ; i < len(name) && '0' <= name[i] && name[i] <= '9'; i++ {
		if sec > (math.MaxInt64-9)/10 {
			i = 0 // too large for the fast path
			break
		}
		sec = sec*10 + int64(name[i]-'0')
	}
	if i > 0 && i < len(name) && name[i] == '.' {
		return sec, true
	}
	// Anything else (a sign, spaces, a huge number) as fmt reads it.
	return scanSeconds(name)
}

// scanSeconds is nameSeconds with fmt.Sscanf, its variable apart: a
// variable Sscanf is given moves to the heap.
func scanSeconds(name string) (int64, bool) {
	var sec int64
	if _, err := fmt.Sscanf(name, "%d.", &sec); err != nil {
		return 0, false
	}
	return sec, true
}
