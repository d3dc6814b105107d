package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OldestNew returns the delivery time of the oldest message waiting in new/,
// or the zero time when none is waiting, reading at most limit entries of the
// folder (all of them when limit <= 0). complete is false when new/ has more
// entries than that: oldest is then the oldest of those read.
//
// The delivery time is the one LoadFile gives a message without a context: the
// leading seconds of its Maildir unique name ("time.unique.host",
// https://cr.yp.to/proto/maildir.html), which certharvest's inputs and every
// Maildir deliverer write, so such an entry costs no system call; a name in
// another form costs one lstat, for its modification time. Names starting
// with a dot are not messages (Maildir readers skip them).
func (s *Spool) OldestNew(limit int) (oldest time.Time, complete bool, err error) {
	dir := filepath.Join(s.dir, SubNew)
	d, err := os.Open(dir)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	read := 0
	for {
		n := 1024
		if limit > 0 {
			n = min(n, limit-read)
			if n == 0 {
				// More may follow: the caller learns it was cut.
				more, _ := d.Readdirnames(1)
				return oldest, len(more) == 0, nil
			}
		}
		// Names only: ReadDir would lstat every entry on a file system
		// that does not report file types in its listing.
		names, err := d.Readdirnames(n)
		for _, name := range names {
			read++
			if strings.HasPrefix(name, ".") {
				continue
			}
			t, ok := maildirNameTime(name)
			if !ok {
				info, err := os.Lstat(filepath.Join(dir, name))
				if err != nil {
					continue // gone since the listing
				}
				t = info.ModTime()
			}
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
		if errors.Is(err, io.EOF) {
			return oldest, true, nil
		}
		if err != nil {
			return oldest, false, fmt.Errorf("spool: listing %s: %w", dir, err)
		}
	}
}

// maildirNameTime returns the time of a Maildir unique name: its leading
// decimal seconds, up to the first dot.
func maildirNameTime(name string) (time.Time, bool) {
	var sec int64
	i := 0
	for ; i < len(name) && name[i] >= '0' && name[i] <= '9'; i++ {
		if sec > (1<<62)/10 {
			return time.Time{}, false
		}
		sec = sec*10 + int64(name[i]-'0')
	}
	if i == 0 || i == len(name) || name[i] != '.' || sec == 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}
