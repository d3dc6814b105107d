package pgstore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Path returns the name of an address's certificate (Options.PathOf).
// addr must be normalised (verify.NormalizeAddress), as the folder store
// requires.
func (s *Store) Path(addr string) (string, error) {
	if err := checkAddress(addr); err != nil {
		return "", err
	}
	return s.opts.PathOf(addr), nil
}

// checkAddress refuses an address that is not normalised.
func checkAddress(addr string) error {
	norm, err := verify.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	if norm != addr {
		return fmt.Errorf("%w %q: not normalised", verify.ErrInvalidAddress, addr)
	}
	return nil
}

// Store makes cert the current certificate of addr, unless it already is
// (ActionUnchanged) or cert's NotBefore is not strictly later than the
// current one's (ActionKeptExisting), as output.CertStore does; see
// verify.CertStore. It returns once the transaction that stored it has
// committed. Concurrent calls share one transaction (group commit).
//
// An error is never final (store_failed, retried): the server is
// unreachable, refused, or failed, and the error says which.
func (s *Store) Store(ctx context.Context, addr string, cert *x509.Certificate) (verify.StoreResult, error) {
	path, err := s.Path(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	req := &storeRequest{addr: addr, cert: cert, message: verify.StoringMessage(ctx)}
	// Most certificates are the current one already, or older: one read
	// decides, without a transaction, a lock or a commit. (The current
	// certificate only ever gets newer, so what the read saw still holds.)
	if action, ok, err := s.decideFromRead(ctx, req); err != nil {
		return verify.StoreResult{}, fmt.Errorf("reading the current certificate: %w", err)
	} else if ok {
		return verify.StoreResult{Action: action, Path: path}, nil
	}
	if err := s.group.commit(ctx, req, s.commitGroup); err != nil {
		return verify.StoreResult{}, err
	}
	res := verify.StoreResult{Action: req.action, Path: path}
	if req.action == verify.ActionStored {
		res.Bytes = len(output.EncodeCertificatePEM(cert))
	}
	return res, nil
}

// storeRequest is one Store waiting for its group's transaction.
type storeRequest struct {
	addr    string
	cert    *x509.Certificate
	message string // the report id of the message it came from; "": none
	action  verify.Action
	err     error
	// wake receives true when this request's goroutine is to commit the
	// waiting group, false when another committed it.
	wake chan bool
}

// decideFromRead reads addr's current certificate, without a lock, and
// decides when it can: the same certificate (unchanged), or one as new or
// newer (kept). ok is false when cert may have to be stored.
func (s *Store) decideFromRead(ctx context.Context, req *storeRequest) (verify.Action, bool, error) {
	var der []byte
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT der FROM certificates WHERE address = $1", req.addr).Scan(&der)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	action := decide(der, req.cert)
	return action, action != verify.ActionStored, nil
}

// decide compares cert with an address's current certificate (DER): the
// same one is unchanged; one that is not strictly newer is kept; else cert
// is to be stored. A current certificate that does not parse (damaged, or
// not ours) is replaced, as the folder store replaces such a file.
func decide(current []byte, cert *x509.Certificate) verify.Action {
	if bytes.Equal(current, cert.Raw) {
		return verify.ActionUnchanged
	}
	cur, err := x509.ParseCertificate(current)
	if err == nil && !cert.NotBefore.After(cur.NotBefore) {
		return verify.ActionKeptExisting
	}
	return verify.ActionStored
}

// commitGroup stores the certificates of a group in one transaction, in
// the order of their addresses, so that two instances' groups lock the
// rows they share in the same order and never wait for each other in a
// cycle. If the transaction fails and the group has several requests, each
// is tried alone, so that one that the server refuses fails alone.
func (s *Store) commitGroup(ctx context.Context, group []*storeRequest) {
	sorted := slices.Clone(group)
	slices.SortStableFunc(sorted, func(a, b *storeRequest) int { return strings.Compare(a.addr, b.addr) })
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, r := range sorted {
			var err error
			if r.action, err = storeLocked(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	if len(sorted) == 1 || unreachable(err) {
		for _, r := range sorted {
			r.err = err
		}
		return
	}
	s.log.Warn("storing a group of certificates failed; storing them one by one", "error", err, "certificates", len(sorted))
	for _, r := range sorted {
		r.err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			r.action, err = storeLocked(ctx, tx, r)
			return err
		})
	}
}

// unreachable reports whether err is the connection's, not a statement's:
// then trying the requests one by one would fail as well.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) || strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57") || strings.HasPrefix(pgErr.Code, "53")
}

// maxTxAttempts is how many times a transaction is tried when the server
// aborts it for a deadlock or a serialization failure, which a new attempt
// resolves.
const maxTxAttempts = 3

// inTx runs fn in a transaction bounded by Options.Timeout (fn's ctx) and
// commits it, trying again after a deadlock or serialization failure, or
// on a broken connection (Store.do). The error is explained (explain).
func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	return s.do(ctx, func(ctx context.Context) error {
		var err error
		for range maxTxAttempts {
			if err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) }); !retryable(err) {
				break
			}
		}
		return err
	})
}

// retryable reports whether the server aborted a transaction for a
// deadlock (40P01) or a serialization failure (40001).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// storeLocked stores one certificate in tx: it locks the address's row,
// decides, and moves the replaced certificate to the history. A row that
// another transaction inserted after the lock found none is locked on the
// second turn (ON CONFLICT DO NOTHING waits for that transaction to end).
func storeLocked(ctx context.Context, tx pgx.Tx, r *storeRequest) (verify.Action, error) {
	info := verify.DescribeCertificate(r.cert)
	var message *string
	if r.message != "" {
		m := text(r.message)
		message = &m
	}
	for range 2 {
		var der []byte
		err := tx.QueryRow(ctx, "SELECT der FROM certificates WHERE address = $1 FOR UPDATE", r.addr).Scan(&der)
		if errors.Is(err, pgx.ErrNoRows) {
			tag, err := tx.Exec(ctx, `INSERT INTO certificates
				(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10)
				ON CONFLICT (address) DO NOTHING`,
				r.addr, r.cert.Raw, info.SHA256, info.NotBefore, info.NotAfter,
				text(info.Subject), text(info.Issuer), info.Serial, text(info.Key), message)
			if err != nil {
				return "", err
			}
			if tag.RowsAffected() == 1 {
				return verify.ActionStored, nil
			}
			continue // another transaction stored one first: lock it and decide
		}
		if err != nil {
			return "", err
		}
		if action := decide(der, r.cert); action != verify.ActionStored {
			return action, nil
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO certificate_history
			(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at)
			SELECT address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, now()
			FROM certificates WHERE address = $1
			ON CONFLICT (address, sha256) DO NOTHING`, r.addr)
		b.Queue(`UPDATE certificates SET der = $2, sha256 = $3, not_before = $4, not_after = $5,
			subject = $6, issuer = $7, serial = $8, key_type = $9, stored_at = now(), message_id = $10
			WHERE address = $1`,
			r.addr, r.cert.Raw, info.SHA256, info.NotBefore, info.NotAfter,
			text(info.Subject), text(info.Issuer), info.Serial, text(info.Key), message)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return "", err
		}
		return verify.ActionStored, nil
	}
	return "", fmt.Errorf("storing %s: its row changed twice while it was being locked", r.addr)
}

// text makes s storable in a PostgreSQL text column, which takes neither a
// NUL byte nor invalid UTF-8: each becomes U+FFFD. (A certificate's
// subject or a message's header is the sender's to choose.)
func text(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// groupCommit makes concurrent Stores share a transaction, as the folder
// store's group commit shares its syncs: the first Store to arrive while
// no transaction runs commits alone; those that arrive meanwhile wait, and
// the first of them then commits them all in one transaction, and so on:
// no goroutine of its own, no timer.
type groupCommit struct {
	mu      sync.Mutex
	waiting []*storeRequest
	busy    bool
	// groups and requests count what was committed (for tests).
	groups, requests int
}

// commit returns once req's transaction has ended, run by this goroutine
// (with its ctx) or another's; req.action, or the error, is the outcome.
func (g *groupCommit) commit(ctx context.Context, req *storeRequest, run func(context.Context, []*storeRequest)) error {
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

	run(ctx, group)

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

// stats returns how many groups were committed, and how many requests
// they held.
func (g *groupCommit) stats() (groups, requests int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups, g.requests
}
