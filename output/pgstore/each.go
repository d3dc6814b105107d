package pgstore

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certharvest/certharvest/output"
)

// Each calls fn with the current certificate of every address stored at or
// after since (every one when since is zero), in address order (bytewise,
// as the folder store's Each), with its stored_at: one query whose rows
// are read as fn takes them, so an export of any size holds one
// certificate at once. It is not bounded by Options.Timeout, since it lasts
// as long as fn takes (an export writing to a slow pipe), and it is not
// retried on a broken connection, since fn has seen the rows before it: ctx
// bounds it. A row whose certificate does not parse is given to fn with an
// error, and the others follow.
func (s *Store) Each(ctx context.Context, since time.Time, fn output.EachFunc) error {
	rows, _ := s.pool.Query(ctx, `SELECT address, der, stored_at FROM certificates
		WHERE stored_at >= $1 ORDER BY address COLLATE "C"`, since)
	var c output.StoredCertificate
	var der []byte
	var fnErr error // fn's, returned as it is
	_, err := pgx.ForEachRow(rows, []any{&c.Address, &der, &c.StoredAt}, func() error {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			err = fmt.Errorf("%s: %w", s.opts.PathOf(c.Address), err)
		}
		fnErr = fn(output.StoredCertificate{Address: c.Address, Cert: cert, StoredAt: c.StoredAt}, err)
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("reading the certificates: %w", s.explain(err))
	}
	return err
}
