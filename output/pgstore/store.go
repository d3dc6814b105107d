package pgstore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// Store is StoreSet with cert alone: the certificate to encrypt to, which
// signs too, and no capabilities.
func (s *Store) Store(ctx context.Context, addr string, cert *x509.Certificate) (verify.StoreResult, error) {
	return s.StoreSet(ctx, addr, verify.CertSet{Encryption: cert})
}

// StoreSet makes set's certificates the current ones of addr, each where
// it is strictly newer than the current one of its kind (output.PlanSet,
// the folder store's rule; see verify.CertStore): the certificate to
// encrypt to in der, the signing certificate in sign_der when it is
// another, the capabilities with der. A certificate that stops being
// current goes to certificate_history. It returns once the transaction
// that stored it has committed. Concurrent calls share their statements
// and transactions (group commit, commitGroup).
//
// An error is never final (store_failed, retried): the server is
// unreachable, refused, or failed, and the error says which; except for an
// address no store keeps (output.CheckStorable).
func (s *Store) StoreSet(ctx context.Context, addr string, set verify.CertSet) (verify.StoreResult, error) {
	path, err := s.Path(addr)
	if err != nil {
		return verify.StoreResult{}, err
	}
	if err := output.CheckStorable(addr); err != nil {
		return verify.StoreResult{}, err
	}
	req := &storeRequest{addr: addr, set: set, message: verify.StoringMessage(ctx)}
	// Concurrent Stores share a transaction, as the folder store's share
	// their syncs (package groupcommit).
	s.group.Do(req, func(group []*storeRequest) { s.commitGroup(ctx, group) })
	if err := req.err; err != nil {
		return verify.StoreResult{}, err
	}
	res := verify.StoreResult{Action: req.action, Path: path}
	if req.signing {
		res.SignPath = s.opts.PathOf(addr + ".sign")
	}
	if req.action == verify.ActionStored {
		res.Bytes = len(output.EncodeCertificatePEM(set.Encryption))
	}
	return res, nil
}

// storeRequest is one Store waiting for its group's transaction.
type storeRequest struct {
	addr    string
	set     verify.CertSet
	message string // the report id of the message it came from; "": none
	action  verify.Action
	signing bool // a signing certificate is kept beside (sign_der)
	err     error
}

// current is an address's row as read: its certificate to encrypt to and
// its signing certificate (DER), and where either is missing, the floor
// of its kind (retiredFloors).
type current struct {
	der, signDER        []byte
	encFloor, signFloor time.Time
}

// plan decides the request against an address's current certificates.
func (r *storeRequest) plan(cur current) output.SetPlan {
	enc, sign := output.Current{Data: cur.der}, output.Current{Data: cur.signDER}
	if cur.der != nil {
		enc.Cert, _ = x509.ParseCertificate(cur.der)
	} else {
		enc.Floor = cur.encFloor
	}
	if cur.signDER != nil {
		sign.Cert, _ = x509.ParseCertificate(cur.signDER)
	} else {
		sign.Floor = cur.signFloor
	}
	p := output.PlanSet(enc, sign, r.set)
	r.action, r.signing = p.Action, p.Sign != nil
	return p
}

// signDER is the signing certificate of a new row: nil when the
// certificate to encrypt to signs.
func (r *storeRequest) signDER() []byte {
	if r.set.Signing == nil {
		return nil
	}
	return r.set.Signing.Raw
}

// capabilities is the capabilities column of set: NULL (nil) for none.
func capabilities(set verify.CertSet) []string {
	if set.Capabilities == nil {
		return nil
	}
	caps := make([]string, len(set.Capabilities))
	for i, c := range set.Capabilities {
		caps[i] = text(c)
	}
	return caps
}

// commitGroup decides and stores the certificates of a group, in the
// order of their addresses, so that two instances' groups lock (or insert)
// the rows they share in the same order and never wait for each other in
// a cycle. Each statement serves the whole group, whatever its size, as a
// round trip to the server costs more than the rows it handles:
//
//  1. One read, without a lock, of the current certificates: most
//     certificates are the current one already, or older, and are decided
//     there, without a transaction, a lock or a commit. (The current
//     certificate only ever gets newer, so what the read saw still holds.)
//  2. One INSERT … ON CONFLICT DO NOTHING of the certificates of the
//     addresses that had none, a transaction of its own: a row that
//     another instance inserted meanwhile is left alone.
//  3. The rest (a newer certificate that replaces the current one, an
//     address another instance stored meanwhile) in one transaction that
//     locks each row and decides again (storeLocked). If it fails and
//     several requests share it, each is tried alone, so that one that
//     the server refuses fails alone.
func (s *Store) commitGroup(ctx context.Context, group []*storeRequest) {
	sorted := slices.Clone(group)
	slices.SortStableFunc(sorted, func(a, b *storeRequest) int { return strings.Compare(a.addr, b.addr) })
	current, err := s.currentOf(ctx, sorted)
	if err != nil {
		err = fmt.Errorf("reading the current certificates: %w", err)
		for _, r := range sorted {
			r.err = err
		}
		return
	}
	var fresh, rest []*storeRequest
	for _, r := range sorted {
		cur, ok := current[r.addr]
		switch {
		case !ok:
			fresh = append(fresh, r)
		case r.plan(cur).Action != verify.ActionStored:
		default:
			rest = append(rest, r)
		}
	}
	rest = append(rest, s.insertFresh(ctx, fresh)...)
	if len(rest) > 0 {
		slices.SortStableFunc(rest, func(a, b *storeRequest) int { return strings.Compare(a.addr, b.addr) })
		s.storeEachLocked(ctx, rest)
	}
}

// currentOf reads the current certificates (DER) of the requests'
// addresses, without a lock.
func (s *Store) currentOf(ctx context.Context, reqs []*storeRequest) (map[string]current, error) {
	addrs := make([]string, len(reqs))
	for i, r := range reqs {
		addrs[i] = r.addr
	}
	cur := make(map[string]current, len(reqs))
	err := s.do(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, "SELECT address, der, sign_der FROM certificates WHERE address = ANY($1)", addrs)
		var addr string
		var der, signDER []byte
		_, err := pgx.ForEachRow(rows, []any{&addr, &der, &signDER}, func() error {
			cur[addr] = current{der: slices.Clone(der), signDER: slices.Clone(signDER)}
			return nil
		})
		return err
	})
	return cur, err
}

// insertFresh inserts the certificates of addresses that had none, in one
// statement (its own transaction, committed when it returns), and returns
// the requests it did not store: those whose address another transaction
// stored first, a second certificate for one address, or all of them when
// the statement failed (each is then tried alone, by storeEachLocked).
func (s *Store) insertFresh(ctx context.Context, fresh []*storeRequest) []*storeRequest {
	if len(fresh) == 0 {
		return nil
	}
	n := len(fresh)
	var (
		addr, sha, subject, issuer, serial, key, message = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
		der, signDER        = make([][]byte, n), make([][]byte, n)
		caps                = make([]*string, n)
		notBefore, notAfter = make([]time.Time, n), make([]time.Time, n)
	)
	for i, r := range fresh {
		info := verify.DescribeCertificate(r.set.Encryption)
		addr[i], der[i], sha[i] = r.addr, r.set.Encryption.Raw, info.SHA256
		signDER[i] = r.signDER()
		if c := capabilities(r.set); c != nil {
			joined := strings.Join(c, "\n")
			caps[i] = &joined
		}
		notBefore[i], notAfter[i] = info.NotBefore, info.NotAfter
		subject[i], issuer[i], serial[i], key[i] = text(info.Subject), text(info.Issuer), info.Serial, text(info.Key)
		if r.message != "" {
			m := text(r.message)
			message[i] = &m
		}
	}
	inserted := map[[2]string]bool{}
	err := s.do(ctx, func(ctx context.Context) error {
		clear(inserted)
		// The capabilities travel joined by newlines (unnest takes no
		// ragged array), which no capability name holds.
		rows, _ := s.pool.Query(ctx, `INSERT INTO certificates
			(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id,
			 sign_der, capabilities)
			SELECT a, d, h, nb, na, su, iss, se, k, now(), m, sd, string_to_array(c, E'\n')
			FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[], $5::timestamptz[],
				$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[])
				AS t(a, d, h, nb, na, su, iss, se, k, m, sd, c)
			WHERE NOT EXISTS (SELECT 1 FROM certificate_history h -- retire.go: decided by storeLocked
				WHERE h.address = t.a AND h.retired_reason IS NOT NULL)
			ON CONFLICT (address) DO NOTHING
			RETURNING address, sha256`,
			addr, der, sha, notBefore, notAfter, subject, issuer, serial, key, message, signDER, caps)
		var a, h string
		_, err := pgx.ForEachRow(rows, []any{&a, &h}, func() error {
			inserted[[2]string{a, h}] = true
			return nil
		})
		return err
	})
	if err != nil {
		if unreachable(err) {
			for _, r := range fresh {
				r.err = err
			}
			return nil
		}
		s.log.Warn("inserting a group of certificates failed; storing them one by one", "error", err, "certificates", n)
		return fresh
	}
	var rest []*storeRequest
	for i, r := range fresh {
		k := [2]string{addr[i], sha[i]}
		if inserted[k] {
			r.action, r.signing = verify.ActionStored, r.set.Signing != nil
			delete(inserted, k) // the same certificate twice: the second is unchanged
			continue
		}
		rest = append(rest, r)
	}
	return rest
}

// storeEachLocked stores the requests in one transaction that locks each
// address's row and decides again (storeLocked); if it fails and several
// requests share it, each is tried alone.
func (s *Store) storeEachLocked(ctx context.Context, sorted []*storeRequest) {
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

// storeLocked stores one request in tx: it locks the address's row,
// decides (storeRequest.plan), and moves the certificates that stop being
// current to the history. A row that another transaction inserted after
// the lock found none is locked on the second turn (ON CONFLICT DO NOTHING
// waits for that transaction to end).
func storeLocked(ctx context.Context, tx pgx.Tx, r *storeRequest) (verify.Action, error) {
	info := verify.DescribeCertificate(r.set.Encryption)
	var message *string
	if r.message != "" {
		m := text(r.message)
		message = &m
	}
	for range 2 {
		var cur current
		err := tx.QueryRow(ctx, "SELECT der, sign_der FROM certificates WHERE address = $1 FOR UPDATE", r.addr).Scan(&cur.der, &cur.signDER)
		if errors.Is(err, pgx.ErrNoRows) {
			// An address whose certificate was retired (retire.go).
			if cur.encFloor, cur.signFloor, err = retiredFloors(ctx, tx, r.addr); err != nil {
				return "", err
			}
			plan := r.plan(cur)
			if plan.Action != verify.ActionStored {
				return plan.Action, nil
			}
			var signDER []byte
			if plan.Sign != nil {
				signDER = plan.Sign.Raw
			}
			tag, err := tx.Exec(ctx, `INSERT INTO certificates
				(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id,
				 sign_der, capabilities)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11, $12)
				ON CONFLICT (address) DO NOTHING`,
				r.addr, r.set.Encryption.Raw, info.SHA256, info.NotBefore, info.NotAfter,
				text(info.Subject), text(info.Issuer), info.Serial, text(info.Key), message,
				signDER, capabilities(r.set))
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
		plan := r.plan(cur)
		if plan.Action == verify.ActionStored && cur.signDER == nil {
			// A signing certificate may have been retired (retire.go).
			if cur.encFloor, cur.signFloor, err = retiredFloors(ctx, tx, r.addr); err != nil {
				return "", err
			}
			if !cur.signFloor.IsZero() {
				plan = r.plan(cur)
			}
		}
		if plan.Action != verify.ActionStored {
			return plan.Action, nil
		}
		b := &pgx.Batch{}
		for _, old := range plan.Retired {
			if bytes.Equal(old.Data, cur.der) {
				// The certificate to encrypt to, with its row's own
				// columns (a damaged one included).
				b.Queue(`INSERT INTO certificate_history
					(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at)
					SELECT address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, now()
					FROM certificates WHERE address = $1
					ON CONFLICT (address, sha256) DO NOTHING`, r.addr)
				continue
			}
			if old.Cert == nil {
				continue // a signing certificate that does not parse: nothing to describe
			}
			o := verify.DescribeCertificate(old.Cert)
			b.Queue(`INSERT INTO certificate_history
				(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at)
				SELECT address, $2, $3, $4, $5, $6, $7, $8, $9, stored_at, message_id, now()
				FROM certificates WHERE address = $1
				ON CONFLICT (address, sha256) DO NOTHING`,
				r.addr, old.Cert.Raw, o.SHA256, o.NotBefore, o.NotAfter, text(o.Subject), text(o.Issuer), o.Serial, text(o.Key))
		}
		var signDER []byte
		if plan.Sign != nil {
			signDER = plan.Sign.Raw
		}
		if plan.StoreEnc {
			b.Queue(`UPDATE certificates SET der = $2, sha256 = $3, not_before = $4, not_after = $5,
				subject = $6, issuer = $7, serial = $8, key_type = $9, stored_at = now(), message_id = $10,
				sign_der = $11, capabilities = $12
				WHERE address = $1`,
				r.addr, r.set.Encryption.Raw, info.SHA256, info.NotBefore, info.NotAfter,
				text(info.Subject), text(info.Issuer), info.Serial, text(info.Key), message,
				signDER, capabilities(r.set))
		} else {
			b.Queue(`UPDATE certificates SET sign_der = $2 WHERE address = $1`, r.addr, signDER)
		}
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
