package output

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// Record is one report line: the verdict on one message. Field names are
// stable; new fields may be added. Its fields are in the order of the
// line's members, which is part of the report's format: so a message's
// context (its verify.Envelope) is not embedded but spread among them, by
// NewRecord.
type Record struct {
	Time   time.Time `json:"time"`
	ID     string    `json:"id"`
	Source string    `json:"source"`
	Path   string    `json:"path,omitempty"`
	// MboxIndex and MboxOffset place a message of an mbox file (Path):
	// its number there, from 1, and the offset of its "From " line (in
	// the decompressed bytes of a compressed file). Absent for a message
	// that is a file of its own.
	MboxIndex    int                `json:"mbox_index,omitempty"`
	MboxOffset   *int64             `json:"mbox_offset,omitempty"`
	MessageID    string             `json:"message_id,omitempty"`
	EnvelopeFrom string             `json:"envelope_from,omitempty"`
	EnvelopeTo   []string           `json:"envelope_to,omitempty"`
	RemoteAddr   string             `json:"remote_addr,omitempty"`
	Context      map[string]string  `json:"context,omitempty"`
	From         string             `json:"from,omitempty"`
	Outcome      string             `json:"outcome"`
	Reason       verify.Reason      `json:"reason"`
	Detail       string             `json:"detail"`
	Action       verify.Action      `json:"action,omitempty"`
	DKIM         *verify.DKIMResult `json:"dkim,omitempty"`
	Cert         *verify.CertInfo   `json:"cert,omitempty"`
	// EncryptionCert is the certificate to encrypt to when it is not
	// Cert, the signer's (a dual-key sender); Capabilities, the sender's
	// SMIMECapabilities (verify.Result.Capabilities).
	EncryptionCert *verify.CertInfo `json:"encryption_cert,omitempty"`
	Capabilities   []string         `json:"capabilities,omitempty"`
	CertFile       string           `json:"cert_file,omitempty"`
	// SignCertFile is the signing certificate's file, kept beside
	// CertFile when it is another certificate.
	SignCertFile string    `json:"sign_cert_file,omitempty"`
	VerifiedAt   time.Time `json:"verified_at"`
	DurationMS   float64   `json:"duration_ms"`

	// Revocation is what the revocation check found (--revocation) for
	// Cert's chain, EncryptionRevocation for EncryptionCert's, and
	// Warnings what passed but deserves a look.
	Revocation           *verify.RevocationInfo `json:"revocation,omitempty"`
	EncryptionRevocation *verify.RevocationInfo `json:"encryption_revocation,omitempty"`
	Warnings             []string               `json:"warnings,omitempty"`
}

// Outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// NewRecord builds the report line of a message and its result. The
// message's context goes field by field into the line's own (Record), where
// the report's format puts them: that mapping is the one place an envelope
// is copied; its Received is not reported.
func NewRecord(m *verify.Message, res *verify.Result) *Record {
	env := &m.Envelope
	rec := &Record{
		Time:                 time.Now().UTC(),
		ID:                   res.ID,
		Source:               env.Source,
		Path:                 m.Path,
		MessageID:            res.MessageID,
		EnvelopeFrom:         env.EnvelopeFrom,
		EnvelopeTo:           env.EnvelopeTo,
		RemoteAddr:           env.RemoteAddr,
		Context:              env.Extra,
		From:                 res.From,
		Outcome:              OutcomeRejected,
		Reason:               res.Reason,
		Detail:               res.Detail,
		DKIM:                 res.DKIM,
		Cert:                 res.CertInfo,
		Capabilities:         res.Capabilities,
		VerifiedAt:           res.At.UTC(),
		DurationMS:           float64(res.Duration.Microseconds()) / 1000,
		Revocation:           res.Revocation,
		Warnings:             res.Warnings,
		EncryptionRevocation: res.EncRevocation,
	}
	if m.MboxIndex > 0 {
		// A message of an mbox: its number and where it begins.
		off := m.MboxOffset
		rec.MboxIndex, rec.MboxOffset = m.MboxIndex, &off
	}
	if res.Accepted() {
		rec.Outcome = OutcomeAccepted
		rec.Action = res.Action
		rec.CertFile = res.CertFile
		rec.SignCertFile = res.SignCertFile
		if res.EncCert != nil && res.EncCert != res.Cert {
			rec.EncryptionCert = res.EncCertInfo
		}
	}
	return rec
}

// Report appends records to a JSON-lines file. Each line reaches the file in
// one write(2), so lines are never interleaved, even with several processes
// appending to the same file. It is safe for concurrent use.
//
// A line is never left cut in the file: a write that fails part way (a
// full disk) is taken back, the file truncated to the end of its last
// complete line, and the lines kept to be written again by the next Sync.
// So a failure is not sticky: once there is room again, the same lines are
// written, each once. A file that ends in a cut line when it is
// opened (a crash during a write) gets a newline before the next line, so
// that the cut line stays alone, where a reader skips it, and is never glued
// to the next one.
type Report struct {
	mu   sync.Mutex
	w    io.Writer
	file reportFile // nil for a writer that is not a file
	path string     // the file's name, for Reopen
	buf  []byte     // whole lines, not yet written
	// regular is set for a regular file: it is locked while written, and
	// a failed write is taken back by truncating it.
	regular bool
	// readable is set when the file was opened for reading too, so that
	// its last byte can be read (closeCutLine).
	readable bool
	// checkEnd is set when the file may end in a cut line: just opened, or
	// a failed write could not be taken back. The next write closes it.
	checkEnd bool
}

// reportFile is what a Report needs of its file: an *os.File (a test's may
// fail its writes).
type reportFile interface {
	io.Writer
	io.ReaderAt
	io.Seeker
	io.Closer
	Stat() (os.FileInfo, error)
	Sync() error
	Truncate(size int64) error
	Fd() uintptr
}

// reportBufferSize is how much is gathered before a write.
const reportBufferSize = 64 << 10

// OpenReport opens path for appending, creating it if needed; "-" is
// standard output.
func OpenReport(path string) (*Report, error) {
	if path == "-" {
		return &Report{w: os.Stdout}, nil
	}
	f, readable, err := openAppend(path)
	if err != nil {
		return nil, fmt.Errorf("opening report: %w", err)
	}
	return newFileReport(path, f, readable), nil
}

// newFileReport is the report written to f, opened at path.
func newFileReport(path string, f reportFile, readable bool) *Report {
	r := &Report{path: path}
	r.setFile(f, readable)
	return r
}

// setFile makes f the report's file.
func (r *Report) setFile(f reportFile, readable bool) {
	r.file, r.w = f, f
	fi, err := f.Stat()
	r.regular = err == nil && fi.Mode().IsRegular()
	r.readable = readable
	r.checkEnd = r.regular && readable
}

// Reopen writes the buffered lines to the current file, then opens the
// report's path again, so that logrotate can move the file away and signal
// the service. Lines the current file cannot take (a full disk) are taken
// back from it, and go to the new file with the next Sync.
func (r *Report) Reopen() error {
	if r.file == nil {
		return nil
	}
	f, readable, err := openAppend(r.path)
	if err != nil {
		return fmt.Errorf("reopening report: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The lines from before the rotation go to the old file; those it
	// cannot take stay gathered, for the new one.
	var syncErr error
	if r.flushTo(false) == nil && r.regular {
		syncErr = r.file.Sync()
	}
	r.file.Close()
	r.setFile(f, readable)
	if syncErr != nil {
		return fmt.Errorf("syncing the rotated report: %w", syncErr)
	}
	return nil
}

// Write adds one record. It is buffered: call Sync to write it. An error
// means the record was not taken (the lines gathered before it could not
// be written to make room); the lines taken before are kept, for the next
// Sync.
func (r *Report) Write(rec *Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding report line: %w", err)
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf)+len(line) > reportBufferSize {
		if err := r.flushLocked(); err != nil {
			return err
		}
	}
	r.buf = append(r.buf, line...)
	return nil
}

// Sync writes the buffered lines and makes them durable. On an error, the
// file holds only whole lines, and the lines not written are kept: nothing
// is cut and nothing lost; the next Sync tries again.
func (r *Report) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.flushLocked(); err != nil {
		return err
	}
	// Only a regular file has anything to make durable: fsync on a
	// character device (--report /dev/null) or a FIFO fails with EINVAL.
	if r.file != nil && r.regular {
		if err := r.file.Sync(); err != nil {
			return fmt.Errorf("syncing report: %w", err)
		}
	}
	return nil
}

func (r *Report) flushLocked() error { return r.flushTo(true) }

// flushTo writes the buffered lines, to the file now at the report's path
// when follow is set, else to the open file.
func (r *Report) flushTo(follow bool) error {
	if len(r.buf) == 0 {
		return nil
	}
	if r.file == nil {
		return r.writeStream()
	}
	if follow {
		if err := r.followPath(); err != nil {
			return err
		}
	}
	if !r.regular {
		return r.writeStream()
	}
	// Locked, so that another process appending to the same report
	// (docs/DEPLOYMENT.md) neither writes between a cut and its undoing,
	// nor sees the end of the file while a line is cut. A file system
	// without flock(2) is written unlocked.
	locked := flockExclusive(r.file) == nil
	if locked {
		defer funlock(r.file)
	}
	if r.checkEnd {
		if err := r.closeCutLine(); err != nil {
			return err
		}
	}
	n, err := r.file.Write(r.buf)
	if err != nil {
		r.undo(n)
		return fmt.Errorf("writing report: %w", err)
	}
	r.buf = r.buf[:0]
	return nil
}

// writeStream writes the buffered lines to a writer that is not a regular
// file (standard output, a pipe): bytes written cannot be taken back, so on
// a short write the rest of the line waits in the buffer, and completes it
// when written.
func (r *Report) writeStream() error {
	n, err := r.w.Write(r.buf)
	r.buf = r.buf[:copy(r.buf, r.buf[n:])]
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// undo takes back the n bytes a failed write left at the end of the file,
// so that it ends with its last complete line again; the lines stay in the
// buffer. Opened for appending, the write went to the end of the file, and
// left the file offset at the end of its bytes (write(2): POSIX; the lock
// keeps other certharvest processes out meanwhile). If the bytes cannot be
// taken back, the next write closes the cut line first.
func (r *Report) undo(n int) {
	if n <= 0 {
		return
	}
	end, err := r.file.Seek(0, io.SeekCurrent)
	if err == nil {
		err = r.file.Truncate(end - int64(n))
	}
	if err != nil {
		r.checkEnd = true
	}
}

// closeCutLine adds a newline if the file does not end with one: its last
// line was cut (a crash during a write), and must not be glued to the next.
// A reader skips the cut line as malformed; its message is still in the
// spool's new/ and is reported again (lines are synced before a message is
// archived).
func (r *Report) closeCutLine() error {
	if !r.readable {
		r.checkEnd = false
		return nil
	}
	cut, err := endsCut(r.file)
	if err != nil {
		return fmt.Errorf("reading the end of the report: %w", err)
	}
	if cut {
		if _, err := r.file.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	r.checkEnd = false
	return nil
}

// followPath makes sure the lines go to the file that is at the report's
// path now: if it was deleted or moved away (rotated without a SIGHUP), a new
// file is opened there, as "tail -F" follows a log, so that no line goes to a
// deleted file. A failed open leaves the old file in use and returns the
// error; the lines wait.
func (r *Report) followPath() error {
	cur, err := os.Stat(r.path)
	if err == nil {
		if mine, err := r.file.Stat(); err == nil && os.SameFile(cur, mine) {
			return nil
		}
	}
	f, readable, err := openAppend(r.path)
	if err != nil {
		return fmt.Errorf("report %s is gone and cannot be created again: %w", r.path, err)
	}
	r.file.Close()
	r.setFile(f, readable)
	return nil
}

// Close flushes, syncs and closes the report. Lines that could not be
// written are lost, and the error says so.
func (r *Report) Close() error {
	err := r.Sync()
	if r.file != nil {
		if cerr := r.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
