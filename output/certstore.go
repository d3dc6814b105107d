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
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/certharvest/certharvest/verify"
)

// CertStore keeps the current certificate of each address as
// <dir>/<address>.crt, and every certificate it replaced as
// <dir>/history/<address>/<sha256>.crt. It is safe for concurrent use.
type CertStore struct {
	dir   string
	locks [64]sync.Mutex // striped by address
}

// OpenCertStore creates dir if needed and checks that it is writable.
func OpenCertStore(dir string) (*CertStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificate folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("certificate folder %s is not writable: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return &CertStore{dir: dir}, nil
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

func parsePEMCertificate(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Store makes cert the current certificate of addr, unless that is already
// the case (ActionUnchanged) or the current one is newer, judged by
// NotBefore (ActionKeptExisting: an old message replayed must not roll an
// address back to an older key).
func (s *CertStore) Store(ctx context.Context, addr string, cert *x509.Certificate) (verify.StoreResult, error) {
	path, err := s.Path(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	mu := s.lockFor(addr)
	mu.Lock()
	defer mu.Unlock()
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
	if old != nil {
		current, err := parsePEMCertificate(old)
		switch {
		case err != nil:
			// Not ours, or damaged: keep it in the history and replace it.
		case bytes.Equal(current.Raw, cert.Raw):
			return verify.StoreResult{Action: verify.ActionUnchanged, Path: path}, nil
		case current.NotBefore.After(cert.NotBefore):
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
		if err := WriteFileAtomic(filepath.Join(histDir, hex.EncodeToString(sum[:])+".crt"), old, 0o644); err != nil {
			return verify.StoreResult{}, fmt.Errorf("keeping the replaced certificate: %w", err)
		}
	}
	data := EncodeCertificatePEM(cert)
	if err := WriteFileAtomic(path, data, 0o644); err != nil {
		return verify.StoreResult{}, err
	}
	return verify.StoreResult{Action: verify.ActionStored, Path: path, Bytes: len(data)}, nil
}

func (s *CertStore) lockFor(addr string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
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
