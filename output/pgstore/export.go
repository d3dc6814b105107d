package pgstore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// exportWorkers is how many addresses an export or an import handles at
// once: their writes share syncs (the folder's group commit, the store's).
const exportWorkers = 4

// ExportStats is what an export did.
type ExportStats struct {
	Addresses int // addresses in the store
	Written   int // certificates written to the folder (ActionStored)
}

// Export writes the store's certificates to the folder dir as the folder
// store (output.CertStore) keeps them, creating it if needed: each
// address's history, oldest first, then its current certificate, is given
// to the folder store's Store. So the files are byte for byte those the
// folder store would have written for the same certificates (<address>.crt,
// history/<address>/<sha256>.crt), each replaced atomically and durable
// when Export returns; a certificate the folder already holds is not
// written again (only what changed is); and the folder's own anti-rollback
// holds (a newer certificate already in the folder stays).
func (s *Store) Export(ctx context.Context, dir string) (ExportStats, error) {
	folder, err := output.OpenCertStoreOptions(dir, output.CertStoreOptions{GroupCommit: true})
	if err != nil {
		return ExportStats{}, err
	}
	defer folder.Close()
	return s.exportTo(ctx, folder, "")
}

// exportTo exports the certificates of every address, or of only that
// one, to folder.
func (s *Store) exportTo(ctx context.Context, folder *output.CertStore, only string) (ExportStats, error) {
	var stats ExportStats
	var mu sync.Mutex
	var errs []error
	type job struct {
		addr    string
		sets    []verify.CertSet
		retired map[string]output.Retirement
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range exportWorkers {
		wg.Go(func() {
			for j := range jobs {
				written, err := exportAddress(ctx, folder, j.addr, j.sets, j.retired)
				mu.Lock()
				stats.Written += written
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	err := s.eachAddress(ctx, only, func(addr string, sets []verify.CertSet, retired map[string]output.Retirement) {
		stats.Addresses++
		jobs <- job{addr, sets, retired}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		errs = append(errs, err)
	}
	return stats, errors.Join(errs...)
}

// exportAddress gives addr's certificates, in order, to the folder store;
// one that was retired from the address (retired, by SHA-256) is retired
// from the folder too, once given.
func exportAddress(ctx context.Context, folder *output.CertStore, addr string, sets []verify.CertSet, retired map[string]output.Retirement) (int, error) {
	written := 0
	for _, set := range sets {
		res, err := folder.StoreSet(ctx, addr, set)
		if err != nil {
			return written, fmt.Errorf("exporting the certificate of %s: %w", addr, err)
		}
		if res.Action == verify.ActionStored {
			written++
		}
		if err := retireFromSet(ctx, folder, addr, set, retired); err != nil {
			return written, fmt.Errorf("exporting the retirement of the certificate of %s: %w", addr, err)
		}
	}
	return written, nil
}

// retirer is a store that retires (output.CertStore, Store).
type retirer interface {
	Retire(ctx context.Context, addr string, cert *x509.Certificate, why output.Retirement) (bool, error)
}

// retireFromSet retires from to the certificates of set that retired (by
// SHA-256) says were retired from addr.
func retireFromSet(ctx context.Context, to retirer, addr string, set verify.CertSet, retired map[string]output.Retirement) error {
	if len(retired) == 0 {
		return nil
	}
	for _, c := range []*x509.Certificate{set.Encryption, set.Signing} {
		if c == nil {
			continue
		}
		if why, ok := retired[verify.DescribeCertificate(c).SHA256]; ok {
			if _, err := to.Retire(ctx, addr, c, why); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachAddress calls fn with each address (or only that one), the sets
// that give its certificates in the order they were current
// (output.ReplaySets): its history by NotBefore, then its current ones,
// and why certificates of its history were retired from it, by SHA-256
// (certharvest revalidate). A row that does not parse is skipped (the
// folder store skips such a file).
func (s *Store) eachAddress(ctx context.Context, only string, fn func(addr string, sets []verify.CertSet, retired map[string]output.Retirement)) error {
	rows, _ := s.pool.Query(ctx, `SELECT address, der, sign_der, capabilities, current,
			retired_reason, retired_detail, revoked_at, revocation_reason, replaced_at FROM (
			SELECT address, der, NULL::bytea AS sign_der, NULL::text[] AS capabilities, not_before, 0 AS current,
				retired_reason, retired_detail, revoked_at, revocation_reason, replaced_at
			FROM certificate_history
			UNION ALL
			SELECT address, der, sign_der, capabilities, not_before, 1, NULL, NULL, NULL, NULL, NULL FROM certificates) AS c
		WHERE $1 = '' OR address = $1
		ORDER BY address, current, not_before`, only)
	var addr string
	var history []*x509.Certificate
	var cur output.StoredCertificate
	var retired map[string]output.Retirement
	var a string
	var der, signDER []byte
	var caps []string
	var isCurrent int
	var reason, detail, revReason *string
	var revokedAt, retiredAt *time.Time
	flush := func() {
		fn(addr, output.ReplaySets(history, cur), retired)
		history, cur, retired = nil, output.StoredCertificate{}, nil
	}
	_, err := pgx.ForEachRow(rows, []any{&a, &der, &signDER, &caps, &isCurrent,
		&reason, &detail, &revokedAt, &revReason, &retiredAt}, func() error {
		if a != addr && addr != "" {
			flush()
		}
		addr = a
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		if isCurrent == 0 {
			history = append(history, c)
			if reason != nil {
				if retired == nil {
					retired = map[string]output.Retirement{}
				}
				retired[verify.DescribeCertificate(c).SHA256] = output.Retirement{Reason: verify.Reason(*reason), Detail: deref(detail),
					RevocationReason: deref(revReason), RevokedAt: derefTime(revokedAt), At: derefTime(retiredAt)}
			}
			return nil
		}
		cur = output.StoredCertificate{Address: a, Cert: c, Capabilities: caps}
		if signDER != nil {
			if sc, err := x509.ParseCertificate(signDER); err == nil {
				cur.Signing = sc
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the certificates: %w", s.explain(err))
	}
	if addr != "" {
		flush()
	}
	return nil
}

// ImportStats is what an import did, certificate by certificate.
type ImportStats struct {
	Addresses int
	Stored    int // became an address's current one (ActionStored)
	Unchanged int // the store held it already
	Kept      int // the store holds a newer one (ActionKeptExisting)
}

// Import loads the certificates of a folder store (output.CertStore's
// layout: <address>.crt and history/<address>/*.crt) into the store: each
// address's history, oldest first, then its current certificate, through
// Store, so that anti-rollback holds (a newer certificate in the store
// stays, and what it replaces goes to the history) and importing again
// changes nothing. A file that cannot be read is named in the error, and
// the others are imported all the same.
func (s *Store) Import(ctx context.Context, dir string) (ImportStats, error) {
	folder, err := output.ReadCertStore(dir)
	if err != nil {
		return ImportStats{}, err
	}
	addrs, err := folder.Addresses()
	if err != nil {
		return ImportStats{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	// And those whose certificate revalidate retired: they may have no
	// current one.
	retired, err := folder.RetiredAddresses()
	if err != nil {
		return ImportStats{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, a := range retired {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	stats := ImportStats{Addresses: len(addrs)}
	var mu sync.Mutex
	var errs []error
	next := make(chan string)
	var wg sync.WaitGroup
	for range exportWorkers {
		wg.Go(func() {
			for addr := range next {
				actions, err := s.importAddress(ctx, folder, addr)
				mu.Lock()
				for _, a := range actions {
					switch a {
					case verify.ActionStored:
						stats.Stored++
					case verify.ActionUnchanged:
						stats.Unchanged++
					case verify.ActionKeptExisting:
						stats.Kept++
					}
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, addr := range addrs {
		next <- addr
	}
	close(next)
	wg.Wait()
	return stats, errors.Join(errs...)
}

// importAddress stores addr's certificates from folder: its history, then
// its current one.
func (s *Store) importAddress(ctx context.Context, folder *output.CertStore, addr string) ([]verify.Action, error) {
	history, err := folder.History(addr)
	if err != nil {
		return nil, fmt.Errorf("importing the history of %s: %w", addr, err)
	}
	current, err := folder.LoadStored(addr)
	if errors.Is(err, fs.ErrNotExist) {
		current = output.StoredCertificate{} // removed since the folder was listed
	} else if err != nil {
		return nil, fmt.Errorf("importing the certificate of %s: %w", addr, err)
	}
	retired, err := folder.Retirements(addr)
	if err != nil {
		return nil, fmt.Errorf("importing the history of %s: %w", addr, err)
	}
	var actions []verify.Action
	for _, set := range output.ReplaySets(history, current) {
		res, err := s.StoreSet(ctx, addr, set)
		if err != nil {
			return actions, fmt.Errorf("importing the certificate of %s: %w", addr, err)
		}
		actions = append(actions, res.Action)
		// A certificate revalidate retired from the folder is retired here
		// too, once stored.
		if err := retireFromSet(ctx, s, addr, set, retired); err != nil {
			return actions, fmt.Errorf("importing the retirement of the certificate of %s: %w", addr, err)
		}
	}
	return actions, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
