package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// ReadErrorResult is the verdict on a message that could not be given to
// the pipeline: a file that could not be read (read_error) or one too large
// (message_too_large), at the time at. It is the one such verdict, of every
// command and input. A message too large is identified by its bytes, as
// any other; one that could not be read at all, by its path (readErrorID).
func ReadErrorResult(m *verify.Message, err error, at time.Time) *verify.Result {
	if m.ID == "" {
		m.ID = ingest.MessageIDOf(err) // a message too large to read
	}
	if m.ID == "" && len(m.Raw) == 0 {
		key := m.Path
		if m.MboxIndex > 0 {
			// One of the messages of an mbox: each its own id.
			key += "#" + strconv.Itoa(m.MboxIndex)
		}
		m.ID = readErrorID(key)
	}
	res := &verify.Result{ID: verify.MessageIDFor(m), Reason: verify.ReasonOf(err), Detail: readErrorDetail(err), At: at}
	if res.Reason == verify.ReasonInternalError {
		res.Reason = verify.ReasonReadError
	}
	return res
}

// readErrorID is the id of a message that could not be read: derived from
// its path (and, for a message of an mbox, its number there: "PATH#N"), so
// that each such message has its own id, the same on every run (the hash
// of its bytes would be that of nothing, the same for all).
// It has the form of verify.MessageIDFor's, and the hash is of a prefix
// and the path, so that it is no message's id by its bytes.
func readErrorID(path string) string {
	sum := sha256.Sum256([]byte("certharvest read_error\x00" + path))
	return hex.EncodeToString(sum[:6])
}

// readErrorDetail says why a message could not be read, in words and never
// with its content: a file that is not a regular file (a symbolic link in
// the spool's new/, which is not followed) is "not a regular file";
// anything else is the error's text, escaped and bounded as the pipeline's
// details are (a path in new/ is named by whoever delivered there).
func readErrorDetail(err error) string {
	if errors.Is(err, ingest.ErrNotRegular) {
		return ingest.ErrNotRegular.Error()
	}
	if e, ok := errors.AsType[*verify.Error](err); ok && e.Err != nil {
		err = e.Err
	}
	return verify.SanitizeDetail(err.Error())
}
