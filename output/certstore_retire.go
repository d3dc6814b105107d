package output

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/certharvest/certharvest/verify"
)

// ActionRetired is the report's action for a certificate that revalidate
// moved to the history: its address has no current certificate any more.
const ActionRetired verify.Action = "retired"

// Retirement is why a certificate leaves its address (certharvest
// revalidate): revoked, says its issuer.
type Retirement struct {
	// Reason is the report's reason: verify.ReasonCertRevoked.
	Reason verify.Reason `json:"reason"`
	// Detail says it in words: who said so, and when.
	Detail string `json:"detail"`
	// RevokedAt and RevocationReason are the issuer's (a CRLReason's
	// name, e.g. keyCompromise).
	RevokedAt        time.Time `json:"revoked_at"`
	RevocationReason string    `json:"revocation_reason"`
	// At is when it was found.
	At time.Time `json:"retired_at"`
}

// retiredRecord is a history's .revoked file: the retirement, the
// certificate's NotBefore, which bounds what may be stored after it, and
// the kind it bounds (As).
type retiredRecord struct {
	Address   string    `json:"address"`
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"not_before"`
	// As is what the certificate was to its address: RetiredBoth (the
	// certificate to encrypt to, which signed too), RetiredEncryption or
	// RetiredSigning (a dual-key sender's). "" reads as RetiredBoth.
	As string `json:"retired_as,omitempty"`
	Retirement
}

// What a retired certificate was to its address, and so which of its
// kinds its NotBefore bounds afterwards.
const (
	RetiredBoth       = "both"       // <address>.crt, without <address>.sign.crt
	RetiredEncryption = "encryption" // <address>.crt, beside <address>.sign.crt
	RetiredSigning    = "signing"    // <address>.sign.crt
)

// retiredSuffix ends the name of a retirement's file in an address's
// history folder, beside the certificate's <sha256>.crt.
const retiredSuffix = ".revoked"

// maxRetiredFile bounds a .revoked file read back.
const maxRetiredFile = 4 << 10

// Retire moves cert, a current certificate of addr, to the history, as a
// replaced one (history/<addr>/<sha256>.crt) with why beside it
// (<sha256>.revoked, JSON). cert is either:
//
//   - the certificate to encrypt to (<addr>.crt): addr is left without a
//     current certificate; its capabilities go, and a signing certificate
//     kept beside it goes to the history too (replaced, not revoked);
//   - the signing certificate kept beside it (<addr>.sign.crt): only that
//     file goes, and <addr>.crt stays, the certificate to encrypt to.
//
// It reports false, and does nothing, when cert is neither (a newer one
// arrived meanwhile).
//
// The rollback guard holds across it: StoreSet takes as a kind of
// certificate cert was (RetiredBoth, RetiredEncryption, RetiredSigning)
// only one with a NotBefore strictly later than cert's (retiredFloors),
// so a replayed old message brings back neither the revoked certificate
// nor an older one.
//
// The history files are durable before the current ones are removed, and
// the removal when Retire returns. It holds the address's lock, as
// StoreSet does.
func (s *CertStore) Retire(ctx context.Context, addr string, cert *x509.Certificate, why Retirement) (bool, error) {
	path, err := s.Path(addr)
	if err != nil {
		return false, err
	}
	unlock, err := s.lock(addr)
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	root := rootFolder(s.dir)
	encName, signName := filepath.Base(path), addr+SignSuffix
	enc, err := readCurrent(root, encName)
	if err != nil {
		return false, fmt.Errorf("reading the current certificate: %w", err)
	}
	var sign Current
	if len(signName) <= maxNameBytes {
		if sign, err = readCurrent(root, signName); err != nil {
			return false, fmt.Errorf("reading the current signing certificate: %w", err)
		}
	}
	var as string
	var current []byte  // cert's file
	var replaced []byte // the signing certificate that goes with it
	var remove []string // the files that go
	switch {
	case enc.Data != nil && holdsCertificate(enc.Data, cert):
		as, current, remove = RetiredBoth, enc.Data, []string{encName}
		if sign.Data != nil {
			as, replaced = RetiredEncryption, sign.Data
			remove = append(remove, signName)
		}
		if len(addr+CapsSuffix) <= maxNameBytes {
			remove = append(remove, addr+CapsSuffix)
		}
	case sign.Data != nil && holdsCertificate(sign.Data, cert):
		as, current, remove = RetiredSigning, sign.Data, []string{signName}
	default:
		return false, nil
	}
	histDir, err := historyFolder(root, addr)
	if err != nil {
		return false, fmt.Errorf("history folder: %w", err)
	}
	defer histDir.close()
	sum := sha256.Sum256(cert.Raw)
	base := hex.EncodeToString(sum[:])
	rec, err := json.Marshal(retiredRecord{Address: addr, SHA256: base, NotBefore: cert.NotBefore.UTC(), As: as, Retirement: why})
	if err != nil {
		return false, err
	}
	if replaced != nil {
		if err := writeFileAtomicIn(histDir, sign.sum()+".crt", replaced, 0o644); err != nil {
			return false, fmt.Errorf("keeping the replaced signing certificate: %w", err)
		}
	}
	if err := writeFileAtomicIn(histDir, base+".crt", current, 0o644); err != nil {
		return false, fmt.Errorf("keeping the retired certificate: %w", err)
	}
	if err := writeFileAtomicIn(histDir, base+retiredSuffix, append(rec, '\n'), 0o644); err != nil {
		return false, fmt.Errorf("keeping why the certificate was retired: %w", err)
	}
	s.known.forget(addr)
	for _, name := range remove {
		root.remove(name)
	}
	if _, err := root.readFile(remove[0]); !errors.Is(err, fs.ErrNotExist) { // cert's own file
		return false, fmt.Errorf("removing %s: it is still there (%v)", filepath.Join(s.dir, remove[0]), err)
	}
	if err := root.sync(); err != nil {
		return false, err
	}
	return true, nil
}

// Retirements returns why certificates were retired from addr
// (Retire), by the SHA-256 of the certificate (hex), for an import into
// another store.
func (s *CertStore) Retirements(addr string) (map[string]Retirement, error) {
	if _, err := s.Path(addr); err != nil {
		return nil, err
	}
	recs, err := retiredRecords(rootFolder(s.dir), addr)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Retirement, len(recs))
	for _, r := range recs {
		out[r.SHA256] = r.Retirement
	}
	return out, nil
}

// RetiredAddresses lists the addresses with a certificate retired from
// them (Retire), current certificate or not, for an import into another
// store.
func (s *CertStore) RetiredAddresses() ([]string, error) {
	history, err := rootFolder(s.dir).sub("history", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer history.close()
	entries, err := history.readDir()
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range entries {
		addr := e.Name()
		if norm, err := verify.NormalizeAddress(addr); err != nil || norm != addr || !e.IsDir() {
			continue
		}
		if recs, err := retiredRecords(rootFolder(s.dir), addr); err == nil && len(recs) > 0 {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// retiredFloors returns the latest NotBefore of the certificates retired
// from addr as certificates to encrypt to (RetiredBoth, RetiredEncryption)
// and as signing certificates (RetiredBoth, RetiredSigning), zero for
// none: StoreSet stores as a kind without a current certificate only a
// strictly later one (Current.Floor).
func retiredFloors(root folder, addr string) (enc, sign time.Time, err error) {
	recs, err := retiredRecords(root, addr)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	for _, r := range recs {
		if r.As != RetiredSigning && r.NotBefore.After(enc) {
			enc = r.NotBefore
		}
		if r.As != RetiredEncryption && r.NotBefore.After(sign) {
			sign = r.NotBefore
		}
	}
	return enc, sign, nil
}

// retiredRecords reads the .revoked files of addr's history folder.
func retiredRecords(root folder, addr string) ([]retiredRecord, error) {
	history, err := root.sub("history", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer history.close()
	d, err := history.sub(addr, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.close()
	entries, err := d.readDir()
	if err != nil {
		return nil, err
	}
	var recs []retiredRecord
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), retiredSuffix) || !e.Type().IsRegular() {
			continue
		}
		data, err := d.readFile(e.Name())
		if err != nil {
			return nil, err
		}
		var rec retiredRecord
		if len(data) > maxRetiredFile || json.Unmarshal(data, &rec) != nil {
			return nil, fmt.Errorf("%s: not a retirement record", filepath.Join(d.path, e.Name()))
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
