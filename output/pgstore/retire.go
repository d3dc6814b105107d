package pgstore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/output"
)

// Retire moves cert, the current certificate of addr, to the history with
// why (retired_reason and the columns beside it, migration 0002) and
// leaves addr without a current certificate, in one transaction, as
// output.CertStore.Retire does in a folder. It reports false, and does
// nothing, when cert is no longer addr's current certificate. The address
// is announced on the store's channel, so that an export following the
// store retires it from its folder too.
//
// Store then takes for addr only a certificate with a strictly later
// NotBefore (retiredFloor): a replayed old message brings back neither the
// revoked certificate nor an older one.
func (s *Store) Retire(ctx context.Context, addr string, cert *x509.Certificate, why output.Retirement) (bool, error) {
	if err := checkAddress(addr); err != nil {
		return false, err
	}
	var moved bool
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		moved = false
		var der []byte
		err := tx.QueryRow(ctx, "SELECT der FROM certificates WHERE address = $1 FOR UPDATE", addr).Scan(&der)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil || !bytes.Equal(der, cert.Raw) {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO certificate_history
			(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at,
			 retired_reason, retired_detail, revoked_at, revocation_reason)
			SELECT address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, now(),
			 $2, $3, $4, $5
			FROM certificates WHERE address = $1
			ON CONFLICT (address, sha256) DO UPDATE SET replaced_at = EXCLUDED.replaced_at,
			 retired_reason = EXCLUDED.retired_reason, retired_detail = EXCLUDED.retired_detail,
			 revoked_at = EXCLUDED.revoked_at, revocation_reason = EXCLUDED.revocation_reason`,
			addr, text(string(why.Reason)), text(why.Detail), why.RevokedAt, text(why.RevocationReason))
		b.Queue("DELETE FROM certificates WHERE address = $1", addr)
		b.Queue("SELECT pg_notify($1, $2)", notifyChannel, addr)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		moved = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return moved, nil
}

// retiredFloor says whether a certificate retired from addr has a
// NotBefore as late as cert's or later: then Store keeps it out
// (ActionKeptExisting), as it keeps out one no later than the current.
func retiredFloor(ctx context.Context, tx pgx.Tx, addr string, cert *x509.Certificate) (bool, error) {
	var blocked bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certificate_history
		WHERE address = $1 AND retired_reason IS NOT NULL AND not_before >= $2)`, addr, cert.NotBefore).Scan(&blocked)
	return blocked, err
}
