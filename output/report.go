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
// stable; new fields may be added.
type Record struct {
	Time         time.Time          `json:"time"`
	ID           string             `json:"id"`
	Source       string             `json:"source"`
	Path         string             `json:"path,omitempty"`
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
	CertFile     string             `json:"cert_file,omitempty"`
	VerifiedAt   time.Time          `json:"verified_at"`
	DurationMS   float64            `json:"duration_ms"`
}

// Outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// NewRecord builds the report line of a message and its result.
func NewRecord(m *verify.Message, res *verify.Result) *Record {
	rec := &Record{
		Time:         time.Now().UTC(),
		ID:           res.ID,
		Source:       m.Source,
		Path:         m.Path,
		MessageID:    res.MessageID,
		EnvelopeFrom: m.EnvelopeFrom,
		EnvelopeTo:   m.EnvelopeTo,
		RemoteAddr:   m.RemoteAddr,
		Context:      m.Extra,
		From:         res.From,
		Outcome:      OutcomeRejected,
		Reason:       res.Reason,
		Detail:       res.Detail,
		DKIM:         res.DKIM,
		Cert:         res.CertInfo,
		VerifiedAt:   res.At.UTC(),
		DurationMS:   float64(res.Duration.Microseconds()) / 1000,
	}
	if res.Accepted() {
		rec.Outcome = OutcomeAccepted
		rec.Action = res.Action
		rec.CertFile = res.CertFile
	}
	return rec
}

// Report appends records to a JSON-lines file. Each line reaches the file in
// one write(2), so lines are never interleaved or cut, even with several
// processes appending to the same file. It is safe for concurrent use.
type Report struct {
	mu   sync.Mutex
	w    io.Writer
	file *os.File // nil for a writer that is not a file
	path string   // the file's name, for Reopen
	buf  []byte
	err  error
}

// reportBufferSize is how much is gathered before a write.
const reportBufferSize = 64 << 10

// OpenReport opens path for appending, creating it if needed; "-" is
// standard output.
func OpenReport(path string) (*Report, error) {
	if path == "-" {
		return &Report{w: os.Stdout}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening report: %w", err)
	}
	return &Report{w: f, file: f, path: path}, nil
}

// Reopen writes the buffered lines to the current file, then opens the
// report's path again, so that logrotate can move the file away and signal
// the service. A failed write before (a deleted disk, say) is forgotten: the
// new file starts clean.
func (r *Report) Reopen() error {
	if r.file == nil {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("reopening report: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	flushErr := r.flushTo(false) // lines from before the rotation stay in the old file
	if flushErr == nil {
		flushErr = r.file.Sync()
	}
	r.file.Close()
	r.file, r.w, r.err = f, f, nil
	if flushErr != nil {
		// The lines still buffered go to the new file.
		if _, err := f.Write(r.buf); err != nil {
			r.err = fmt.Errorf("writing report: %w", err)
			return r.err
		}
		r.buf = r.buf[:0]
	}
	return nil
}

// NewReport writes records to w.
func NewReport(w io.Writer) *Report { return &Report{w: w} }

// Write adds one record. It is buffered: call Flush or Sync to write it.
func (r *Report) Write(rec *Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding report line: %w", err)
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if len(r.buf)+len(line) > reportBufferSize {
		if err := r.flushLocked(); err != nil {
			return err
		}
	}
	r.buf = append(r.buf, line...)
	return nil
}

// Flush writes the buffered lines.
func (r *Report) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked()
}

// Sync writes the buffered lines and makes them durable.
func (r *Report) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.flushLocked(); err != nil {
		return err
	}
	if r.file != nil {
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
		return r.err
	}
	if follow {
		r.followPath()
	}
	if r.err != nil {
		return r.err
	}
	// Only whole lines are in buf, so a short write leaves at most one cut
	// line, and the error is sticky.
	if _, err := r.w.Write(r.buf); err != nil {
		r.err = fmt.Errorf("writing report: %w", err)
		return r.err
	}
	r.buf = r.buf[:0]
	return nil
}

// followPath makes sure the lines go to the file that is at the report's
// path now: if it was deleted or moved away (rotated without a SIGHUP), a new
// file is opened there, as "tail -F" follows a log, so that no line goes to a
// deleted file. A failed open leaves the old file in use and the error for
// the next write.
func (r *Report) followPath() {
	if r.file == nil {
		return
	}
	cur, err := os.Stat(r.path)
	if err == nil {
		if mine, err := r.file.Stat(); err == nil && os.SameFile(cur, mine) {
			return
		}
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		r.err = fmt.Errorf("report %s is gone and cannot be created again: %w", r.path, err)
		return
	}
	r.file.Close()
	r.file, r.w, r.err = f, f, nil
}

// Close flushes, syncs and closes the report.
func (r *Report) Close() error {
	err := r.Sync()
	if r.file != nil {
		if cerr := r.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
