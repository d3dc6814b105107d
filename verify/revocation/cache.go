package revocation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The cache's bounds.
const (
	// DefaultMaxMemoryEntries bounds the statuses kept in memory: about
	// 300 bytes each.
	DefaultMaxMemoryEntries = 100_000
	// DefaultMaxCacheFiles bounds the status files of the cache folder:
	// about 4 KiB of disk each.
	DefaultMaxCacheFiles = 200_000
	// DefaultMaxCRLs bounds the CRLs kept in memory, and
	// DefaultMaxCRLEntries the serial numbers they list in all (about 40
	// bytes each).
	DefaultMaxCRLs       = 32
	DefaultMaxCRLEntries = 1 << 20
	// maxIssuerFiles bounds the issuer files of the cache folder, and
	// maxIssuerCerts the certificates of one (CAs of one name).
	maxIssuerFiles = 4096
	maxIssuerCerts = 8
	// maxCacheFileBytes bounds a status file read back; a status is a few
	// hundred bytes.
	maxCacheFileBytes = 8 << 10
	// maxIssuerFileBytes bounds an issuer file read back.
	maxIssuerFileBytes = maxIssuerCerts * 16 << 10
	// staleTempAge is the age after which a temporary file of the folder
	// is an interrupted write's, and removed.
	staleTempAge = time.Hour
)

// memCache is the in-memory layer: statuses by key, each valid until its
// NextUpdate. When it is full, the statuses already expired at the time
// of the insertion go, and if that is not enough an eighth of the rest.
type memCache struct {
	max  int
	skew time.Duration
	mu   sync.RWMutex
	m    map[string]CertStatus
}

// get returns the status of key if it is valid at at.
func (mc *memCache) get(key string, at time.Time) (CertStatus, bool) {
	mc.mu.RLock()
	st, ok := mc.m[key]
	mc.mu.RUnlock()
	if !ok || !validAt(st, at, mc.skew) {
		return CertStatus{}, false
	}
	return st, true
}

func (mc *memCache) put(key string, st CertStatus, at time.Time) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.m == nil {
		mc.m = map[string]CertStatus{}
	}
	if _, ok := mc.m[key]; !ok && len(mc.m) >= mc.max {
		for k, old := range mc.m {
			if !at.Before(old.NextUpdate) {
				delete(mc.m, k)
			}
		}
		for k := range mc.m {
			if len(mc.m) < mc.max-mc.max/8 {
				break
			}
			delete(mc.m, k)
		}
	}
	mc.m[key] = st
}

// validAt reports whether a kept status still holds at at.
func validAt(st CertStatus, at time.Time, skew time.Duration) bool {
	return st.Status != Unknown && !st.ThisUpdate.After(at.Add(skew)) && at.Before(st.NextUpdate)
}

// diskCache is the cache folder: a status per file, s-<key>.json
// (statusKey), its modification time its NextUpdate; and the intermediate
// certificates of the chains checked, i-<digest of their subject>.pem, for
// Checker.Issuers. Files are written whole under a temporary name and
// renamed into place, so a reader sees an old file or a new one; a file
// that does not parse is a miss. Names are made here, from digests and
// hex, and checked before use; the folder is read through an os.Root, and
// a link or anything else that is not a regular file is never read.
type diskCache struct {
	root     *os.Root
	fd       folderFD // for the reads
	max      int
	skew     time.Duration
	log      *slog.Logger
	files    atomic.Int64 // status files, counted at the start, then added
	issuers  atomic.Int64 // issuer files
	full     atomic.Bool  // the folder is full: said once
	mu       sync.Mutex
	known    map[string]bool // issuer certificates in the folder, by DER
	rememMu  sync.Mutex      // one issuer file written at a time
	sweeping sync.Mutex
}

// statusName matches a status file's key: issuerKey, "-", the serial
// number in hex (at most 64 digits), "n" first for a negative one.
var statusName = regexp.MustCompile(`^[0-9a-f]{32}-n?[0-9a-f]{0,64}$`)

// openDiskCache opens (creates) the folder dir and counts its files.
func openDiskCache(dir string, max int, skew time.Duration, log *slog.Logger) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("revocation cache: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("revocation cache: %w", err)
	}
	fd, err := openFolderFD(dir)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("revocation cache: %w", err)
	}
	d := &diskCache{root: root, fd: fd, max: max, skew: skew, log: log, known: map[string]bool{}}
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		d.close()
		return nil, fmt.Errorf("revocation cache: %w", err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, "s-"):
			d.files.Add(1)
		case strings.HasPrefix(name, "i-"):
			d.issuers.Add(1)
		case strings.HasPrefix(name, ".tmp-"):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTempAge {
				root.Remove(name)
			}
		}
	}
	// A probe, so that a folder that cannot be written to is said now.
	if err := d.write(".probe", nil, time.Time{}); err != nil {
		d.close()
		return nil, fmt.Errorf("revocation cache %s is not writable: %w", dir, err)
	}
	root.Remove(".probe")
	return d, nil
}

func (d *diskCache) close() error { return errors.Join(d.root.Close(), d.fd.close()) }

// cacheRecord is a status file.
type cacheRecord struct {
	Key        string    `json:"key"`
	Status     string    `json:"status"`
	Source     string    `json:"source"`
	URL        string    `json:"url"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Reason     int       `json:"reason,omitempty"`
}

// get returns the status of key kept in the folder, if valid at at.
func (d *diskCache) get(key string, at time.Time) (CertStatus, bool) {
	if !statusName.MatchString(key) {
		return CertStatus{}, false
	}
	data, err := d.read("s-"+key+".json", maxCacheFileBytes)
	if err != nil {
		return CertStatus{}, false
	}
	var rec cacheRecord
	if json.Unmarshal(data, &rec) != nil || rec.Key != key {
		return CertStatus{}, false
	}
	st := CertStatus{Source: rec.Source, URL: rec.URL, ThisUpdate: rec.ThisUpdate, NextUpdate: rec.NextUpdate,
		RevokedAt: rec.RevokedAt, Reason: rec.Reason}
	switch rec.Status {
	case "good":
		st.Status = Good
	case "revoked":
		st.Status = Revoked
	}
	if !validAt(st, at, d.skew) {
		return CertStatus{}, false
	}
	return st, true
}

// put keeps the status of key in the folder, unless it is full even once
// the expired statuses are gone. A failure (a full disk) is logged: the
// memory layer keeps the status all the same.
func (d *diskCache) put(key string, st CertStatus) {
	if !statusName.MatchString(key) {
		return
	}
	name := "s-" + key + ".json"
	_, err := d.root.Lstat(name)
	isNew := err != nil
	if isNew && d.files.Load() >= int64(d.max) && !d.sweep() {
		return
	}
	data, err := json.Marshal(cacheRecord{Key: key, Status: st.Status.String(), Source: st.Source, URL: st.URL,
		ThisUpdate: st.ThisUpdate.UTC(), NextUpdate: st.NextUpdate.UTC(), RevokedAt: st.RevokedAt.UTC(), Reason: st.Reason})
	if err != nil {
		return
	}
	if err := d.write(name, data, st.NextUpdate); err != nil {
		d.log.Warn("revocation cache: keeping a status failed; it is kept in memory", "error", err)
		return
	}
	if isNew {
		d.files.Add(1)
	}
}

// sweep removes the status files whose NextUpdate (their modification
// time) has passed, and reports whether there is room now. It says once
// when there is none.
func (d *diskCache) sweep() bool {
	d.sweeping.Lock()
	defer d.sweeping.Unlock()
	if d.files.Load() < int64(d.max) {
		return true
	}
	entries, err := fs.ReadDir(d.root.FS(), ".")
	if err != nil {
		return false
	}
	now := time.Now()
	var n int64
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "s-") {
			continue
		}
		n++
		if info, err := e.Info(); err == nil && info.ModTime().Before(now) && d.root.Remove(e.Name()) == nil {
			n--
		}
	}
	d.files.Store(n)
	if n < int64(d.max) {
		d.full.Store(false)
		return true
	}
	if !d.full.Swap(true) {
		d.log.Warn("revocation cache folder full: new statuses are kept in memory only", "files", n, "max", d.max)
	}
	return false
}

// read returns the regular file name of the folder, at most limit bytes,
// never through a link (cache_unix.go, cache_other.go).
func (d *diskCache) read(name string, limit int64) ([]byte, error) {
	return d.fd.readFile(name, limit)
}

// write puts data in the file name of the folder, atomically: a new file
// (never opened through a link), renamed over name, which replaces what
// was there, a link included, without following it. A non-zero mtime is
// set as the file's modification time.
func (d *diskCache) write(name string, data []byte, mtime time.Time) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = d.root.Chtimes(tmp, mtime, mtime)
	}
	if err == nil {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		d.root.Remove(tmp)
	}
	return err
}

// issuerFile is the name of the file of the CA certificates whose subject
// is raw (a DER Name).
func issuerFile(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "i-" + hex.EncodeToString(sum[:]) + ".pem"
}

// rememberIssuers keeps the CA certificates in the folder, by subject.
// The warm path is a look-up in memory per certificate.
func (d *diskCache) rememberIssuers(certs []*x509.Certificate) {
	for _, c := range certs {
		d.mu.Lock()
		known := d.known[string(c.Raw)]
		d.mu.Unlock()
		if known || !c.IsCA {
			continue
		}
		d.rememberIssuer(c)
		d.mu.Lock()
		if len(d.known) < maxIssuerFiles*maxIssuerCerts {
			d.known[string(c.Raw)] = true
		}
		d.mu.Unlock()
	}
}

func (d *diskCache) rememberIssuer(c *x509.Certificate) {
	d.rememMu.Lock()
	defer d.rememMu.Unlock()
	name := issuerFile(c.RawSubject)
	have := d.readIssuers(name)
	for _, h := range have {
		if bytes.Equal(h.Raw, c.Raw) {
			return
		}
	}
	if len(have) == 0 && d.issuers.Load() >= maxIssuerFiles || len(have) >= maxIssuerCerts {
		return
	}
	var b bytes.Buffer
	for _, h := range append(have, c) {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: h.Raw})
	}
	if err := d.write(name, b.Bytes(), time.Time{}); err != nil {
		d.log.Warn("revocation cache: keeping an issuer certificate failed", "error", err)
		return
	}
	if len(have) == 0 {
		d.issuers.Add(1)
	}
}

// readIssuers returns the certificates of an issuer file; none when it
// cannot be read.
func (d *diskCache) readIssuers(name string) []*x509.Certificate {
	data, err := d.read(name, maxIssuerFileBytes)
	if err != nil {
		return nil
	}
	var certs []*x509.Certificate
	for rest := data; len(certs) < maxIssuerCerts; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" {
			certs = append(certs, c)
		}
	}
	return certs
}

// Issuers returns the CA certificates named as cert's issuer among those
// of the chains checked before (CheckChain) with this cache folder: what
// revalidate needs to check a stored certificate, of which the store keeps
// no chain. None without a folder. They are candidates: verify a chain
// through them before trusting one.
func (c *Checker) Issuers(cert *x509.Certificate) []*x509.Certificate {
	if c.disk == nil {
		return nil
	}
	return c.disk.readIssuers(issuerFile(cert.RawIssuer))
}

// flight runs one call per key at a time: concurrent callers with the same
// key share its result. A caller that gives up (its ctx ends) leaves the
// call running for the others.
type flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (f *flight[T]) do(ctx context.Context, key string, fn func() (T, error)) (T, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*flightCall[T]{}
	}
	c, ok := f.calls[key]
	if !ok {
		c = &flightCall[T]{done: make(chan struct{})}
		f.calls[key] = c
		go func() {
			defer func() {
				// A panic here would end the process: nothing above
				// this goroutine recovers it.
				if r := recover(); r != nil {
					c.err = fmt.Errorf("internal error: %v", r)
				}
				f.mu.Lock()
				delete(f.calls, key)
				f.mu.Unlock()
				close(c.done)
			}()
			c.val, c.err = fn()
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("gave up waiting: %w", ctx.Err())
	}
}
