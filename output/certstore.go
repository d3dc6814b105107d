package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certharvest/certharvest/internal/tmpfile"
	"github.com/certharvest/certharvest/verify"
)

// CertStore keeps the current certificate of each address as
// <dir>/<address>.crt, and every certificate it replaced as
// <dir>/history/<address>/<sha256>.crt. It is safe for concurrent use.
//
// A certificate is durable when Store returns, and a crash leaves each file
// with its old content or its new content, never a mix (see
// WriteFileAtomic).
//
// Several processes may share the folder: the compare-and-replace of an
// address holds an flock(2) on the lock file of its stripe,
// <dir>/.locks/<NN>.lock, one of 256 that the addresses share.
type CertStore struct {
	dir string
	// locks serialise the Stores of one stripe of addresses in this
	// process; the stripe's lock file excludes other processes.
	locks [lockStripes]sync.Mutex
	// lockFiles are the stripes' lock files, opened on first use and then
	// kept open; each is guarded by its stripe's mutex.
	lockFiles [lockStripes]*os.File
	group     *groupCommit // nil: each Store syncs alone
	// unnamed: group commits write unnamed temporary files
	// (internal/tmpfile), where the folder's file system allows.
	unnamed bool
}

// lockStripes is how many locks the addresses share, in the process and
// as lock files (<dir>/.locks/00.lock to ff.lock): two addresses of one
// stripe are stored one after the other, never at once.
const lockStripes = 256

// CertStoreOptions configure OpenCertStoreOptions.
type CertStoreOptions struct {
	// GroupCommit makes concurrent Store calls share the syncs that make
	// their files durable: the files of every Store waiting at that moment
	// are written, made durable with one sync of the file system (syncfs on
	// Linux; one fsync per file elsewhere), renamed into place, and their
	// folders synced once each. A group of one file is synced with fsync,
	// as without the option.
	//
	// The guarantees do not change: Store returns once its certificate is
	// durable, and a crash leaves every file old or new. What changes is
	// the cost when many Stores run at once (a scan with many workers):
	// about two syncs per group instead of two per certificate. syncfs
	// flushes every file of the file system with unwritten data, not only
	// the store's: on a file system busy with other writes one group can
	// take longer. Linux reports a write error to syncfs since 5.8.
	GroupCommit bool
}

// OpenCertStore creates dir if needed and checks that it is writable.
func OpenCertStore(dir string) (*CertStore, error) {
	return OpenCertStoreOptions(dir, CertStoreOptions{})
}

// OpenCertStoreOptions is OpenCertStore with options.
func OpenCertStoreOptions(dir string, opts CertStoreOptions) (*CertStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificate folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("certificate folder %s is not writable: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	removeStaleTemps(dir, time.Hour)
	s := &CertStore{dir: dir}
	if opts.GroupCommit {
		s.group = &groupCommit{}
		s.unnamed = tmpfile.Supported(dir)
	}
	return s, nil
}

// Close releases the lock files the store kept open. No Store may be
// running or start after it.
func (s *CertStore) Close() error {
	var errs []error
	for i, f := range s.lockFiles {
		if f != nil {
			errs = append(errs, f.Close())
			s.lockFiles[i] = nil
		}
	}
	return errors.Join(errs...)
}

// removeStaleTemps removes the temporary files of writes that a crash
// interrupted (.tmp-*), once older than age: a younger one may belong to
// another process sharing the folder, in the middle of its write.
func removeStaleTemps(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Dir returns the store's folder.
func (s *CertStore) Dir() string { return s.dir }

// Path returns the file of an address. addr must be normalised
// (verify.NormalizeAddress); anything else is refused, so that no address
// can name a file outside the folder.
func (s *CertStore) Path(addr string) (string, error) {
	norm, err := verify.NormalizeAddress(addr)
	if err != nil {
		return "", err
	}
	if norm != addr {
		return "", fmt.Errorf("%w %q: not normalised", verify.ErrInvalidAddress, addr)
	}
	return filepath.Join(s.dir, addr+".crt"), nil
}

// Load returns the current certificate of an address, or an error wrapping
// fs.ErrNotExist.
func (s *CertStore) Load(addr string) (*x509.Certificate, error) {
	path, err := s.Path(addr)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePEMCertificate(data)
}

// Addresses lists the addresses that have a certificate.
func (s *CertStore) Addresses() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if norm, err := verify.NormalizeAddress(name); err == nil && norm == name {
			addrs = append(addrs, name)
		}
	}
	return addrs, nil
}

// holdsCertificate reports whether data, a certificate file, is cert's PEM
// block: then parsePEMCertificate would return a certificate equal to cert.
func holdsCertificate(data []byte, cert *x509.Certificate) bool {
	block, _ := pem.Decode(data)
	return block != nil && block.Type == "CERTIFICATE" && bytes.Equal(block.Bytes, cert.Raw)
}

func parsePEMCertificate(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Store makes cert the current certificate of addr, unless that is already
// the case (ActionUnchanged) or cert's NotBefore is not strictly later than
// the current one's (ActionKeptExisting: an old message replayed must not
// roll an address back to an older key). A tie keeps the current
// certificate: CAs often truncate NotBefore to the day and a user may
// re-key the same day, and if a tie replaced it, replaying the messages of
// two such certificates in turn would flip the address between their keys.
func (s *CertStore) Store(ctx context.Context, addr string, cert *x509.Certificate) (verify.StoreResult, error) {
	path, err := s.Path(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	unlock, err := s.lock(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return verify.StoreResult{}, err
	}

	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return verify.StoreResult{}, fmt.Errorf("reading the current certificate: %w", err)
	}
	if old != nil && holdsCertificate(old, cert) {
		// The same certificate again (a message reprocessed, a sender
		// writing twice): known without parsing it.
		return verify.StoreResult{Action: verify.ActionUnchanged, Path: path}, nil
	}
	var hist *tempFile // group commit: the replaced certificate, for the history
	if old != nil {
		current, err := parsePEMCertificate(old)
		switch {
		case err != nil:
			// Not ours, or damaged: keep it in the history and replace it.
		case bytes.Equal(current.Raw, cert.Raw):
			return verify.StoreResult{Action: verify.ActionUnchanged, Path: path}, nil
		case !cert.NotBefore.After(current.NotBefore):
			return verify.StoreResult{Action: verify.ActionKeptExisting, Path: path}, nil
		}
		sum := sha256.Sum256(old)
		if current != nil {
			sum = sha256.Sum256(current.Raw)
		}
		histDir := filepath.Join(s.dir, "history", addr)
		if err := os.MkdirAll(histDir, 0o755); err != nil {
			return verify.StoreResult{}, fmt.Errorf("history folder: %w", err)
		}
		histPath := filepath.Join(histDir, hex.EncodeToString(sum[:])+".crt")
		if s.group != nil {
			hist, err = writeTemp(histPath, old, 0o644, s.unnamed)
			if err != nil {
				return verify.StoreResult{}, fmt.Errorf("keeping the replaced certificate: %w", err)
			}
		} else if err := WriteFileAtomic(histPath, old, 0o644); err != nil {
			return verify.StoreResult{}, fmt.Errorf("keeping the replaced certificate: %w", err)
		}
	}
	data := EncodeCertificatePEM(cert)
	if s.group == nil {
		if err := WriteFileAtomic(path, data, 0o644); err != nil {
			return verify.StoreResult{}, err
		}
		return verify.StoreResult{Action: verify.ActionStored, Path: path, Bytes: len(data)}, nil
	}
	// Group commit: the history file (first) and the certificate are
	// renamed into place together once durable. The address's lock is held
	// until then, so the next Store for it reads the new file.
	cur, err := writeTemp(path, data, 0o644, s.unnamed)
	if err != nil {
		hist.discard()
		return verify.StoreResult{}, err
	}
	req := &commitRequest{files: []*tempFile{cur}}
	if hist != nil {
		req.files = []*tempFile{hist, cur}
	}
	if err := s.group.commit(req); err != nil {
		if hist != nil && req.failed == hist {
			return verify.StoreResult{}, fmt.Errorf("keeping the replaced certificate: %w", err)
		}
		return verify.StoreResult{}, err
	}
	return verify.StoreResult{Action: verify.ActionStored, Path: path, Bytes: len(data)}, nil
}

// lock takes the locks of addr's stripe: its mutex, then its lock file, for
// other certharvest processes sharing the folder. It returns the function
// that releases both.
func (s *CertStore) lock(addr string) (unlock func(), err error) {
	i := lockStripe(addr)
	mu := &s.locks[i]
	mu.Lock()
	f := s.lockFiles[i]
	if f == nil {
		if f, err = openLockFile(s.lockPath(i)); err != nil {
			mu.Unlock()
			return nil, fmt.Errorf("locking %s: %w", addr, err)
		}
		s.lockFiles[i] = f
	}
	if err := flockExclusive(f); err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("locking %s: %w", addr, err)
	}
	return func() {
		funlock(f)
		mu.Unlock()
	}, nil
}

// lockStripe is the stripe of an address: its FNV-1a hash modulo
// lockStripes.
func lockStripe(addr string) int {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return int(h.Sum32() % lockStripes)
}

// lockPath is the lock file of stripe i, <dir>/.locks/<i in hex>.lock. An
// address holds an "@", so these never clash with the per-address lock
// files (<address>.lock) of earlier versions, which are left alone.
func (s *CertStore) lockPath(i int) string {
	return filepath.Join(s.dir, ".locks", fmt.Sprintf("%02x.lock", i))
}

// EncodeCertificatePEM returns cert as a PEM CERTIFICATE block (RFC 7468
// §5).
func EncodeCertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// WriteFileAtomic writes data to path so that path holds either its old
// content or all of data, even across a crash: a temporary file in the same
// folder is written and synced, renamed over path, and the folder synced so
// the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir makes the entries of a folder (a rename into it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}

// tempFile is the new content of a file, written to a temporary file beside
// it and not yet synced (group commit). The temporary file is unnamed where
// the system allows (internal/tmpfile): then no temporary name is created,
// renamed, or left behind by a crash.
type tempFile struct {
	f       *os.File
	path    string // where it goes
	unnamed bool   // f has no name: place links it
}

// writeTemp writes data to a temporary file in path's folder, without
// syncing it; an unnamed one when unnamed is true.
func writeTemp(path string, data []byte, perm os.FileMode, unnamed bool) (*tempFile, error) {
	var f *os.File
	var err error
	if unnamed {
		f, err = tmpfile.Create(filepath.Dir(path), perm)
	} else {
		f, err = os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	t := &tempFile{f: f, path: path, unnamed: unnamed}
	if _, err := f.Write(data); err != nil {
		t.discard()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		t.discard()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return t, nil
}

// place closes the temporary file and puts it at its path, replacing what
// is there.
func (t *tempFile) place() error {
	f := t.f
	t.f = nil
	if !t.unnamed {
		tmp := f.Name()
		if err := f.Close(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("writing %s: %w", t.path, err)
		}
		if err := os.Rename(tmp, t.path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("renaming into %s: %w", t.path, err)
		}
		return nil
	}
	defer f.Close()
	err := tmpfile.Link(f, t.path)
	if errors.Is(err, fs.ErrExist) {
		// A file to replace (a link never does): link under a
		// temporary name, then rename over it.
		tmp := filepath.Join(filepath.Dir(t.path), fmt.Sprintf(".tmp-%s-%d", filepath.Base(t.path), rand.Uint64()))
		if err = tmpfile.Link(f, tmp); err == nil {
			if err = os.Rename(tmp, t.path); err != nil {
				os.Remove(tmp)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("placing %s: %w", t.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", t.path, err)
	}
	return nil
}

// discard removes a temporary file that will not be placed.
func (t *tempFile) discard() {
	if t == nil || t.f == nil {
		return
	}
	t.f.Close()
	if !t.unnamed {
		os.Remove(t.f.Name())
	}
	t.f = nil
}

// commitRequest is the files of one Store, to be made durable and renamed
// into place in order.
type commitRequest struct {
	files  []*tempFile
	err    error
	failed *tempFile // the file err is about
	// wake receives true when this request's goroutine is to commit the
	// waiting group, false when another committed it.
	wake chan bool
}

func (r *commitRequest) fail(t *tempFile, err error) {
	if r.err == nil {
		r.err, r.failed = err, t
	}
}

// groupCommit makes the files of concurrent commits durable together. The
// first commit to arrive while none is running commits alone; those that
// arrive meanwhile wait, and the first of them then commits them all as one
// group, and so on: no goroutine of its own, no timer.
type groupCommit struct {
	mu      sync.Mutex
	waiting []*commitRequest
	busy    bool // a group is being committed
	// groups and requests count what was committed (for tests).
	groups, requests int
}

// commit returns once req's files are durable and renamed into place, or
// not renamed at all (an error).
func (g *groupCommit) commit(req *commitRequest) error {
	req.wake = make(chan bool, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, req)
	if g.busy {
		g.mu.Unlock()
		if lead := <-req.wake; !lead {
			return req.err
		}
		g.mu.Lock()
	}
	g.busy = true
	group := g.waiting
	g.waiting = nil
	g.groups++
	g.requests += len(group)
	g.mu.Unlock()

	commitGroup(group)

	g.mu.Lock()
	if len(g.waiting) > 0 {
		g.waiting[0].wake <- true
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, r := range group {
		if r != req {
			r.wake <- false
		}
	}
	return req.err
}

// commitGroup makes the files of a group durable, renames them into place
// and syncs their folders, as WriteFileAtomic does for one file. The files
// of a request are renamed in rounds: its second file (the certificate) is
// renamed only once its first (the history copy of the one it replaces) is
// durably in place, as when each is written by WriteFileAtomic.
func commitGroup(group []*commitRequest) {
	var files []*tempFile
	rounds := 0
	for _, r := range group {
		files = append(files, r.files...)
		rounds = max(rounds, len(r.files))
	}
	// The data first: a crash must not leave a renamed file without its
	// content.
	synced := false
	if len(files) > 1 {
		if ok, err := syncFileSystem(files[0].f); ok {
			synced = true
			if err != nil {
				for _, r := range group {
					r.fail(r.files[0], fmt.Errorf("syncing %s: %w", r.files[0].path, err))
				}
			}
		}
	}
	if !synced {
		for _, r := range group {
			for _, t := range r.files {
				if r.err != nil {
					break
				}
				if err := t.f.Sync(); err != nil {
					r.fail(t, fmt.Errorf("syncing %s: %w", t.path, err))
				}
			}
		}
	}
	for round := range rounds {
		// Each folder is synced once per round, for every request that
		// renamed a file into it.
		dirs := map[string][]*commitRequest{}
		var order []string
		for _, r := range group {
			if round >= len(r.files) {
				continue
			}
			t := r.files[round]
			if r.err != nil {
				t.discard()
				continue
			}
			if err := t.place(); err != nil {
				r.fail(t, err)
				continue
			}
			dir := filepath.Dir(t.path)
			if _, ok := dirs[dir]; !ok {
				order = append(order, dir)
			}
			dirs[dir] = append(dirs[dir], r)
		}
		for _, dir := range order {
			if err := SyncDir(dir); err != nil {
				for _, r := range dirs[dir] {
					r.fail(r.files[round], err)
				}
			}
		}
	}
}
