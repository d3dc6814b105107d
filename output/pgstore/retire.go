package pgstore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Retire moves cert, a current certificate of addr, to the history with
// why (retired_reason and the columns beside it, migration 0003), in one
// transaction, as output.CertStore.Retire does in a folder: the
// certificate to encrypt to (der) leaves addr without a current
// certificate, its signing certificate (sign_der) going to the history
// too, replaced; the signing certificate alone leaves der as it is. It
// reports false, and does nothing, when cert is neither. The address is
// announced on the store's channel, so that an export following the store
// retires it from its folder too.
//
// StoreSet then takes as the kind cert was (retired_as: both, encryption,
// signing) only a certificate with a strictly later NotBefore
// (retiredFloors): a replayed old message brings back neither the revoked
// certificate nor an older one.
func (s *Store) Retire(ctx context.Context, addr string, cert *x509.Certificate, why output.Retirement) (bool, error) {
	if err := checkAddress(addr); err != nil {
		return false, err
	}
	var moved bool
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		moved = false
		var cur current
		err := tx.QueryRow(ctx, "SELECT der, sign_der FROM certificates WHERE address = $1 FOR UPDATE", addr).Scan(&cur.der, &cur.signDER)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		switch {
		case bytes.Equal(cur.der, cert.Raw):
			as := output.RetiredBoth
			if cur.signDER != nil {
				as = output.RetiredEncryption
				if sc, err := x509.ParseCertificate(cur.signDER); err == nil {
					queueHistory(b, addr, sc, nil, "")
				}
			}
			b.Queue(`INSERT INTO certificate_history
				(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at,
				 retired_reason, retired_detail, revoked_at, revocation_reason, retired_as)
				SELECT address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, now(),
				 $2, $3, $4, $5, $6
				FROM certificates WHERE address = $1
				ON CONFLICT (address, sha256) DO UPDATE SET replaced_at = EXCLUDED.replaced_at,
				 retired_reason = EXCLUDED.retired_reason, retired_detail = EXCLUDED.retired_detail,
				 revoked_at = EXCLUDED.revoked_at, revocation_reason = EXCLUDED.revocation_reason,
				 retired_as = EXCLUDED.retired_as`,
				addr, text(string(why.Reason)), text(why.Detail), why.RevokedAt, text(why.RevocationReason), as)
			b.Queue("DELETE FROM certificates WHERE address = $1", addr)
			b.Queue("SELECT pg_notify($1, $2)", notifyChannel, addr)
		case cur.signDER != nil && bytes.Equal(cur.signDER, cert.Raw):
			queueHistory(b, addr, cert, &why, output.RetiredSigning)
			b.Queue("UPDATE certificates SET sign_der = NULL WHERE address = $1", addr) // announced by its trigger
		default:
			return nil
		}
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

// queueHistory queues the insertion of c, a certificate of addr's row
// other than der (its signing certificate), into the history: replaced,
// or retired with why as the kind as.
func queueHistory(b *pgx.Batch, addr string, c *x509.Certificate, why *output.Retirement, as string) {
	o := verify.DescribeCertificate(c)
	var reason, detail, revReason, retiredAs *string
	var revokedAt *time.Time
	if why != nil {
		r, d, rr := text(string(why.Reason)), text(why.Detail), text(why.RevocationReason)
		reason, detail, revReason, revokedAt, retiredAs = &r, &d, &rr, &why.RevokedAt, &as
	}
	b.Queue(`INSERT INTO certificate_history
		(address, der, sha256, not_before, not_after, subject, issuer, serial, key_type, stored_at, message_id, replaced_at,
		 retired_reason, retired_detail, revoked_at, revocation_reason, retired_as)
		SELECT address, $2, $3, $4, $5, $6, $7, $8, $9, stored_at, message_id, now(), $10, $11, $12, $13, $14
		FROM certificates WHERE address = $1
		ON CONFLICT (address, sha256) DO UPDATE SET replaced_at = EXCLUDED.replaced_at,
		 retired_reason = coalesce(EXCLUDED.retired_reason, certificate_history.retired_reason),
		 retired_detail = coalesce(EXCLUDED.retired_detail, certificate_history.retired_detail),
		 revoked_at = coalesce(EXCLUDED.revoked_at, certificate_history.revoked_at),
		 revocation_reason = coalesce(EXCLUDED.revocation_reason, certificate_history.revocation_reason),
		 retired_as = coalesce(EXCLUDED.retired_as, certificate_history.retired_as)`,
		addr, c.Raw, o.SHA256, o.NotBefore, o.NotAfter, text(o.Subject), text(o.Issuer), o.Serial, text(o.Key),
		reason, detail, revokedAt, revReason, retiredAs)
}

// retiredFloors returns the latest NotBefore of the certificates retired
// from addr as certificates to encrypt to (retired_as both or encryption)
// and as signing certificates (both or signing), zero for none: StoreSet
// stores as a kind without a current certificate only a strictly later
// one (output.Current.Floor).
func retiredFloors(ctx context.Context, tx pgx.Tx, addr string) (enc, sign time.Time, err error) {
	var e, s *time.Time
	err = tx.QueryRow(ctx, `SELECT
			max(not_before) FILTER (WHERE coalesce(retired_as, 'both') <> 'signing'),
			max(not_before) FILTER (WHERE coalesce(retired_as, 'both') <> 'encryption')
		FROM certificate_history WHERE address = $1 AND retired_reason IS NOT NULL`, addr).Scan(&e, &s)
	if e != nil {
		enc = *e
	}
	if s != nil {
		sign = *s
	}
	return enc, sign, err
}
