package output

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certharvest/certharvest/internal/groupcommit"
	"github.com/certharvest/certharvest/internal/tmpfile"
	"github.com/certharvest/certharvest/verify"
)

// CertStore keeps the current certificate of each address, the one to
// encrypt to, as <dir>/<address>.crt; the address's signing certificate,
// when it is another, as <dir>/<address>.sign.crt; the sender's
// SMIMECapabilities as <dir>/<address>.caps; and every certificate it
// replaced as <dir>/history/<address>/<sha256>.crt (certstore_set.go). It
// is safe for concurrent use.
//
// A certificate is durable when Store returns, and a crash leaves each file
// with its old content or its new content, never a mix (see
// writeFileAtomicIn).
//
// Several processes may share the folder: the compare-and-replace of an
// address holds an flock(2) on the lock file of its stripe,
// <dir>/.locks/<NN>.lock, one of 256 that the addresses share.
//
// Inside the folder, no symbolic link is followed and only regular files
// and folders are read or replaced (certdir.go): anything else gives a
// *NotRegularError, and nothing is written for that address.
type CertStore struct {
	dir string
	// locks serialise the Stores of one stripe of addresses in this
	// process; the stripe's lock file excludes other processes.
	locks [lockStripes]sync.Mutex
	// lockFiles are the stripes' lock files, opened on first use and then
	// kept open; each is guarded by its stripe's mutex.
	lockFiles [lockStripes]*os.File
	// group makes the files of concurrent Stores durable together; nil:
	// each Store syncs alone.
	group *groupcommit.Group[*commitRequest]
	// temps: how group commits write their temporary files: unnamed
	// (internal/tmpfile), where the folder's file system allows.
	temps tempOptions
	// foldsCase: the folder's file system finds a name in another case
	// (macOS, Windows, ext4's casefold): two internationalised addresses
	// that differ in case would share a file (see Store).
	foldsCase bool
	// known remembers the certificates of addresses found unchanged
	// (certstore_known.go).
	known knownCerts
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
	// The probe's name in upper case finds it where the file system
	// folds case.
	_, err = os.Lstat(filepath.Join(dir, strings.ToUpper(filepath.Base(f.Name()))))
	foldsCase := err == nil
	os.Remove(f.Name())
	removeStaleTemps(dir, time.Hour)
	s := &CertStore{dir: dir, foldsCase: foldsCase}
	s.known.init(dir)
	if opts.GroupCommit {
		s.group = &groupcommit.Group[*commitRequest]{}
		if tmpfile.Supported(dir) {
			s.temps = tempOptions{unnamed: true, linkByFD: linkByFD(dir)}
		}
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
// can name a file outside the folder, and two addresses that are one
// (Bob@ and bob@, bücher.example and xn--bcher-kva.example) name one file.
// An internationalised address's file has its UTF-8 local part as the
// address has it (NFC) and its domain in A-labels (docs/OPERATIONS.md).
func (s *CertStore) Path(addr string) (string, error) {
	norm, err := verify.NormalizeAddress(addr)
	if err != nil {
		return "", err
	}
	if norm != addr {
		return "", fmt.Errorf("%w %q: not normalised", verify.ErrInvalidAddress, addr)
	}
	if err := CheckStorable(addr); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, addr+".crt"), nil
}

// Load returns the current certificate of an address, or an error wrapping
// fs.ErrNotExist. A link or anything else that is not a regular file is
// not read: a *NotRegularError.
func (s *CertStore) Load(addr string) (*x509.Certificate, error) {
	if _, err := s.Path(addr); err != nil {
		return nil, notStored(err)
	}
	data, err := rootFolder(s.dir).readFile(addr + ".crt")
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
		if !ok || !e.Type().IsRegular() || CheckStorable(name) != nil {
			continue // <address>.sign.crt is no address's
		}
		if norm, err := verify.NormalizeAddress(name); err == nil && norm == name {
			addrs = append(addrs, name)
		}
	}
	return addrs, nil
}

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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

// Store is StoreSet with cert alone: the certificate to encrypt to, which
// signs too, and no capabilities.
func (s *CertStore) Store(ctx context.Context, addr string, cert *x509.Certificate) (verify.StoreResult, error) {
	return s.StoreSet(ctx, addr, verify.CertSet{Encryption: cert})
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
		if f, err = s.openStripeLock(i); err != nil {
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

// EncodeCertificatePEM returns cert as a PEM CERTIFICATE block (RFC 7468
// §5).
func EncodeCertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// lockName is the name of stripe i's lock file in .locks/: its number in
// hex. An address holds an "@", so these never clash with the per-address
// lock files (<address>.lock) of earlier versions, which are left alone.
func lockName(i int) string { return fmt.Sprintf("%02x.lock", i) }

// historyFolder opens history/<addr>/ in root, creating what is missing,
// following no link (certdir.go). The caller closes it.
func historyFolder(root folder, addr string) (folder, error) {
	history, err := root.sub("history", true)
	if err != nil {
		return folder{}, err
	}
	defer history.close()
	return history.sub(addr, true)
}
