package maildir

// Messages that do not go through the journal: those received into a file of
// tmp/ as they arrived (ingest.MessageWriter), and those too large to be worth
// copying into it. Each is made durable by itself, the Maildir way
// (https://cr.yp.to/proto/maildir.html): its file written in tmp/ (or unnamed),
// its context set, the file synced, then linked or renamed into new/ and new/
// synced (one folder sync shared by the deliveries waiting), before the
// delivery returns. No journal record is needed, nor any replay: after a crash
// the message is in new/ whole, or was never acknowledged and is not there at
// all (an unnamed file vanishes; a named one in tmp/ is removed by sweepTmp).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

// NewWriter returns a writer for a message to deliver into s (Sink): its
// file, if it needs one, in tmp/.
func (s *Spool) NewWriter(opts ingest.MessageWriterOptions) *ingest.MessageWriter {
	if !opts.Scratch {
		opts.Named, opts.MakeRoom = !s.unnamed, s.MakeRoom
	}
	return ingest.NewMessageWriter(filepath.Join(s.dir, SubTmp), opts)
}

// hasWriter reports whether a message of msgs is held by its writer.
func hasWriter(msgs []ingest.Incoming) bool {
	for _, m := range msgs {
		if m.Writer != nil {
			return true
		}
	}
	return false
}

// deliverWriters is Deliver for messages some of which their writers hold:
// those in memory as Deliver delivers the others, those in files from their
// files. Every writer is closed.
func (s *Spool) deliverWriters(ctx context.Context, msgs []ingest.Incoming) ([]string, error) {
	tmp := filepath.Join(s.dir, SubTmp)
	for _, m := range msgs {
		if m.Writer != nil {
			defer m.Writer.Close()
		}
	}
	for _, m := range msgs {
		if w := m.Writer; w != nil {
			if err := w.Err(); err != nil {
				return nil, err
			}
			if w.Dir() != tmp {
				return nil, errors.New("spool: message writer of another spool")
			}
		}
	}
	plain := make([]ingest.Incoming, len(msgs))
	var files []*ingest.SpillFile
	for i, m := range msgs {
		plain[i] = ingest.Incoming{Raw: m.Raw, Envelope: m.Envelope}
		switch w := m.Writer; {
		case w == nil:
		case !w.Spilled():
			plain[i].Raw = w.Bytes()
		default:
			if files == nil {
				files = make([]*ingest.SpillFile, len(msgs))
			}
			files[i] = w.TakeFile() // placed, or discarded by deliverFiles
		}
	}
	if files == nil {
		return s.Deliver(ctx, plain...)
	}
	return s.deliverFiles(ctx, plain, files)
}

// rawSize is the bytes of msgs' messages.
func rawSize(msgs []ingest.Incoming) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Raw))
	}
	return n
}

// hasLarge reports whether a message of msgs is over DefaultSpillBytes:
// written to its own file rather than copied into the journal.
func hasLarge(msgs []ingest.Incoming) bool {
	for _, m := range msgs {
		if len(m.Raw) > ingest.DefaultSpillBytes {
			return true
		}
	}
	return false
}

// deliverFiles is Deliver for a delivery some of whose messages go to new/ by
// files of their own: msgs[i] is in files[i] when that is not nil (its Raw
// unused), or is written into one when larger than ingest.DefaultSpillBytes.
// The others take the journal's way. Either every message is delivered or, on
// error, none is; every file of files is placed or discarded.
func (s *Spool) deliverFiles(ctx context.Context, msgs []ingest.Incoming, files []*ingest.SpillFile) (names []string, err error) {
	files = append(files, make([]*ingest.SpillFile, len(msgs)-len(files))...)
	var placed []string // in new/ and meta/, removed should the delivery fail
	defer func() {
		for _, sf := range files {
			if sf != nil {
				sf.Discard()
			}
		}
		if err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names = make([]string, len(msgs))
	var recs []record
	var inFiles []int
	metaTmps := map[int]string{}
	for i, m := range msgs {
		env, err := json.Marshal(m.Envelope)
		if err != nil {
			return nil, fmt.Errorf("spool: encoding context: %w", err)
		}
		names[i] = s.uniqueName(time.Now())
		if files[i] == nil && len(m.Raw) <= ingest.DefaultSpillBytes {
			rec := record{name: names[i], env: env, raw: m.Raw}
			if err := rec.check(); err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
			recs = append(recs, rec)
			continue
		}
		if files[i] == nil {
			sf, err := ingest.CreateSpillFile(filepath.Join(s.dir, SubTmp), s.unnamed)
			if err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
			files[i] = sf
			if _, err := sf.File().Write(m.Raw); err != nil {
				return nil, fmt.Errorf("spool: writing %s: %w", sf.Path(), err)
			}
		}
		inFiles = append(inFiles, i)
		metaTmp, err := s.seal(files[i], names[i], env)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if metaTmp != "" {
			metaTmps[i] = metaTmp
			placed = append(placed, metaTmp)
		}
	}
	if len(recs) > 0 {
		release, err := s.journal.commit(ctx, recs)
		if err != nil {
			return nil, err
		}
		defer release()
		if err := s.place(recs); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		for _, rec := range recs {
			placed = append(placed, filepath.Join(s.dir, SubNew, rec.name), s.metaPath(rec.name))
		}
	}
	// The context first, so a message in new/ always finds it.
	for i, tmp := range metaTmps {
		s.metaUsed.Store(true) // before the message is in new/, for LoadFile
		if err := os.Rename(tmp, s.metaPath(names[i])); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		placed = append(placed, s.metaPath(names[i]))
	}
	for _, i := range inFiles {
		path := filepath.Join(s.dir, SubNew, names[i])
		if err := files[i].Place(path); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		placed = append(placed, path)
	}
	// The files are synced: their folder entries now.
	if err := s.syncDirs(len(metaTmps) > 0, false); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return names, nil
}

// seal gives a message's file its context (the extended attribute, else a
// context file written and synced in tmp/, whose path it returns for
// renaming into meta/) and syncs it.
func (s *Spool) seal(sf *ingest.SpillFile, name string, env []byte) (metaTmp string, err error) {
	if !s.noXattr.Load() {
		if err := setXattr(sf.File(), envelopeXattr, env); err != nil {
			// Not supported here: meta/ files from now on.
			s.noXattr.Store(true)
		}
	}
	if s.noXattr.Load() {
		metaTmp = filepath.Join(s.dir, SubTmp, name+".json")
		if err := writeSyncedFile(metaTmp, env); err != nil {
			os.Remove(metaTmp)
			return "", err
		}
	}
	// The data and the attribute, which fsync covers (fdatasync need not).
	if err := sf.File().Sync(); err != nil {
		if metaTmp != "" {
			os.Remove(metaTmp)
		}
		return "", fmt.Errorf("syncing %s: %w", sf.Path(), err)
	}
	return metaTmp, nil
}

// writeSyncedFile creates path with data and syncs it.
func writeSyncedFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sweeping tmp/. RFC-less but long-standing Maildir practice
// (https://cr.yp.to/proto/maildir.html): a file in tmp/ untouched for 36
// hours is a delivery that died, and whoever reads the Maildir removes it.
// certharvest's own leftovers (named ingest.SpillPrefix, where files cannot be
// unnamed) are removed at once when the spool opens: it holds the spool's
// lock, so no delivery of its own is under way.
const (
	tmpMaxAge     = 36 * time.Hour
	tmpSweepEvery = time.Hour
)

// startTmpSweeper sweeps tmp/ now, for the leftovers of a crash, then
// every tmpSweepEvery until Close.
func (s *Spool) startTmpSweeper() {
	s.sweepTmp(time.Now(), true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(tmpSweepEvery)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				s.sweepTmp(now, false)
			case <-s.stop:
				return
			}
		}
	}()
}

// sweepTmp removes the regular files of tmp/ last modified tmpMaxAge
// before now or earlier, and, atOpen, every file ingest.MessageWriter named. It
// returns how many it removed; a file it cannot remove is left for the
// next sweep.
func (s *Spool) sweepTmp(now time.Time, atOpen bool) int {
	entries, err := os.ReadDir(filepath.Join(s.dir, SubTmp))
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		ours := atOpen && strings.HasPrefix(e.Name(), ingest.SpillPrefix)
		if !ours {
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) < tmpMaxAge {
				continue
			}
		}
		err := os.Remove(filepath.Join(s.dir, SubTmp, e.Name()))
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			removed++
		}
	}
	return removed
}
