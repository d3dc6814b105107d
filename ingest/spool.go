package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// Spool is a Maildir that live inputs deliver into before they acknowledge a
// message, and that the service processes messages from. A message is in
// exactly one of three places (https://cr.yp.to/proto/maildir.html):
//
//   - tmp/: being written; never read;
//   - new/: delivered and durable, waiting to be processed;
//   - cur/: processed and reported (flag S, seen), an archive that scan can
//     reprocess.
//
// The context a message arrived with (envelope, remote address, a relay's
// ids) is kept in an extended attribute of the message's file (or, where the
// file system has none, beside it in meta/<name>.json), so that the message's
// bytes are exactly the bytes received. Messages delivered by an MTA have no
// context.
type Spool struct {
	dir  string
	host string
	pid  int
	seq  atomic.Uint64

	syncReqs chan syncRequest
	noXattr  atomic.Bool // the file system refused an extended attribute
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Envelope is the context a message arrived with, stored beside it.
type Envelope struct {
	Source       string            `json:"source"`
	EnvelopeFrom string            `json:"envelope_from,omitempty"`
	EnvelopeTo   []string          `json:"envelope_to,omitempty"`
	RemoteAddr   string            `json:"remote_addr,omitempty"`
	Received     time.Time         `json:"received"`
	Extra        map[string]string `json:"extra,omitempty"`
}

// Incoming is a message to deliver into the spool.
type Incoming struct {
	Raw      []byte
	Envelope Envelope
}

// Spool sub-folders.
const (
	SpoolTmp  = "tmp"
	SpoolNew  = "new"
	SpoolCur  = "cur"
	SpoolMeta = "meta"
)

// OpenSpool creates the Maildir dir (tmp/, new/, cur/ and meta/) if needed.
// Close stops its background syncer.
func OpenSpool(dir string) (*Spool, error) {
	for _, sub := range []string{SpoolTmp, SpoolNew, SpoolCur, SpoolMeta} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// Maildir: '/' and ':' in the host name are written as \057 and \072.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	s := &Spool{dir: dir, host: host, pid: os.Getpid(), syncReqs: make(chan syncRequest), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.syncLoop()
	return s, nil
}

// Dir returns the Maildir's folder.
func (s *Spool) Dir() string { return s.dir }

// Close stops the spool's syncer.
func (s *Spool) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

// uniqueName returns a Maildir unique name: time, then M<microseconds>,
// P<pid> and Q<delivery counter> so that names never repeat within a
// process, then the host.
func (s *Spool) uniqueName(now time.Time) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, s.pid, s.seq.Add(1), s.host)
}

// Deliver writes msgs into new/ and returns their names once all of them are
// durable (data and folder entries synced). Either every message is
// delivered or, on error, none is: files already written are removed.
// Concurrent deliveries share folder syncs (group commit).
//
// Each message is one file: its context travels in an extended attribute
// (user.certharvest.envelope) of that file, which the same fsync makes
// durable. Where the file system has no user extended attributes, the
// context goes in meta/<name>.json instead, written and synced before the
// message is renamed into new/.
func (s *Spool) Deliver(ctx context.Context, msgs ...Incoming) ([]string, error) {
	names := make([]string, len(msgs))
	var tmpFiles, metaFiles, newFiles []string
	undo := func() {
		for _, p := range append(append(tmpFiles, metaFiles...), newFiles...) {
			os.Remove(p)
		}
	}
	metaTmps := make([]string, len(msgs)) // "" when the context is in an xattr
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			undo()
			return nil, err
		}
		name := s.uniqueName(time.Now())
		names[i] = name
		env, err := json.Marshal(m.Envelope)
		if err != nil {
			undo()
			return nil, fmt.Errorf("spool: encoding context: %w", err)
		}
		tmp := filepath.Join(s.dir, SpoolTmp, name)
		tmpFiles = append(tmpFiles, tmp)
		inXattr, err := s.writeMessage(tmp, m.Raw, env)
		if err != nil {
			undo()
			return nil, fmt.Errorf("spool: %w", err)
		}
		if !inXattr {
			metaTmps[i] = tmp + ".json"
			tmpFiles = append(tmpFiles, metaTmps[i])
			if err := writeSynced(metaTmps[i], env); err != nil {
				undo()
				return nil, fmt.Errorf("spool: %w", err)
			}
		}
	}
	// The context first, so a message in new/ always finds it.
	for i, name := range names {
		if metaTmps[i] == "" {
			continue
		}
		metaPath := s.metaPath(name)
		if err := os.Rename(metaTmps[i], metaPath); err != nil {
			undo()
			return nil, fmt.Errorf("spool: %w", err)
		}
		metaFiles = append(metaFiles, metaPath)
	}
	for _, name := range names {
		newPath := filepath.Join(s.dir, SpoolNew, name)
		if err := os.Rename(filepath.Join(s.dir, SpoolTmp, name), newPath); err != nil {
			undo()
			return nil, fmt.Errorf("spool: %w", err)
		}
		newFiles = append(newFiles, newPath)
	}
	if err := s.syncDirs(len(metaFiles) > 0, false); err != nil {
		// The entries may or may not be durable: the caller must not
		// acknowledge. Removing them avoids processing a message the
		// sender will deliver again.
		undo()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return names, nil
}

// envelopeXattr is the extended attribute holding a message's context.
const envelopeXattr = "user.certharvest.envelope"

// writeMessage creates path with data, stores env in its extended
// attribute when the file system allows (inXattr), and syncs it.
func (s *Spool) writeMessage(path string, data, env []byte) (inXattr bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if _, err := f.Write(data); err != nil {
		return false, err
	}
	if !s.noXattr.Load() {
		if err := setXattr(f, envelopeXattr, env); err == nil {
			inXattr = true
		} else {
			// Not supported here (or the context is too large for
			// one): meta/ files from now on.
			s.noXattr.Store(true)
		}
	}
	return inXattr, f.Sync()
}

func (s *Spool) metaPath(name string) string {
	return filepath.Join(s.dir, SpoolMeta, name+".json")
}

// writeSynced creates path with data and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDirs makes renames into new/ durable, and into meta/ and cur/ when
// asked. Callers that arrive while a sync runs share the next one (group
// commit).
func (s *Spool) syncDirs(meta, cur bool) error {
	req := syncRequest{meta: meta, cur: cur, reply: make(chan error, 1)}
	select {
	case s.syncReqs <- req:
		return <-req.reply
	case <-s.stop:
		return errors.New("spool closed")
	}
}

// syncRequest asks the syncer for a folder sync.
type syncRequest struct {
	meta, cur bool
	reply     chan error
}

func (s *Spool) syncLoop() {
	defer s.wg.Done()
	for {
		var batch []syncRequest
		select {
		case r := <-s.syncReqs:
			batch = append(batch, r)
		case <-s.stop:
			return
		}
		// Gather every request already waiting: they all share this sync.
	gather:
		for {
			select {
			case r := <-s.syncReqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		meta, cur := false, false
		for _, r := range batch {
			meta, cur = meta || r.meta, cur || r.cur
		}
		dirs := []string{SpoolNew}
		if meta {
			dirs = append(dirs, SpoolMeta)
		}
		if cur {
			dirs = append(dirs, SpoolCur)
		}
		var err error
		for _, sub := range dirs {
			if e := syncDir(filepath.Join(s.dir, sub)); e != nil && err == nil {
				err = e
			}
		}
		for _, r := range batch {
			r.reply <- err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads a message from new/ with its context. A message without a
// context file was delivered by an MTA: its source is "maildir" and its
// received time the Maildir name's time, else the file's modification time.
// A message that is no longer in new/ gives an error wrapping
// fs.ErrNotExist.
func (s *Spool) Load(name string, maxSize int64) (*verify.Message, error) {
	path := filepath.Join(s.dir, SpoolNew, name)
	m := &verify.Message{Path: path, Source: "maildir"}
	raw, err := ReadMessageFile(path, maxSize)
	if err != nil {
		return m, err
	}
	m.Raw = raw
	data, err := getXattr(path, envelopeXattr)
	if err != nil {
		data, err = os.ReadFile(s.metaPath(name))
	}
	if err == nil {
		var env Envelope
		if json.Unmarshal(data, &env) == nil {
			m.Source, m.EnvelopeFrom, m.EnvelopeTo = env.Source, env.EnvelopeFrom, env.EnvelopeTo
			m.RemoteAddr, m.Received, m.Extra = env.RemoteAddr, env.Received, env.Extra
		}
	}
	if m.Received.IsZero() {
		m.Received = deliveryTime(path, name)
	}
	return m, nil
}

// deliveryTime is the time a Maildir message was delivered: the leading
// seconds of its unique name, else its modification time.
func deliveryTime(path, name string) time.Time {
	var sec int64
	if _, err := fmt.Sscanf(name, "%d.", &sec); err == nil && sec > 0 {
		return time.Unix(sec, 0)
	}
	if info, err := os.Stat(path); err == nil {
		return info.ModTime()
	}
	return time.Now()
}

// Archive moves a processed message from new/ to cur/ with the seen flag
// (Maildir info "2,S") and removes its context file. The move is made
// durable by the next folder sync; call Sync to force one. A message already
// moved is not an error.
func (s *Spool) Archive(name string) error {
	err := os.Rename(filepath.Join(s.dir, SpoolNew, name), filepath.Join(s.dir, SpoolCur, name+":2,S"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	if err := os.Remove(s.metaPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	return nil
}

// Sync makes earlier Archive moves durable.
func (s *Spool) Sync() error { return s.syncDirs(false, true) }

// Writable reports whether a message could be delivered now.
func (s *Spool) Writable() error {
	f, err := os.CreateTemp(filepath.Join(s.dir, SpoolTmp), ".probe-*")
	if err != nil {
		return fmt.Errorf("spool not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}
