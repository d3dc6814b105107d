package pgstore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"

	"github.com/certharvest/certharvest/output"
	"github.com/jackc/pgx/v5"
)

// The reads of list, show and the lookup API. Each takes a ctx (a lookup's
// request) and is bounded by Options.Timeout (Store.do).

// Load returns the current certificate of an address, or an error wrapping
// fs.ErrNotExist when it has none (as output.CertStore's Load).
func (s *Store) Load(ctx context.Context, addr string) (*x509.Certificate, error) {
	if err := checkAddress(addr); err != nil {
		return nil, err
	}
	var der []byte
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT der FROM certificates WHERE address = $1", addr).Scan(&der)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no certificate for %s: %w", addr, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// LoadStored returns the current certificates of an address: the one to
// encrypt to, the signing certificate when it is another, and the
// capabilities kept with them (as output.CertStore's LoadStored).
func (s *Store) LoadStored(ctx context.Context, addr string) (output.StoredCertificate, error) {
	if err := checkAddress(addr); err != nil {
		return output.StoredCertificate{}, err
	}
	var der, signDER []byte
	st := output.StoredCertificate{Address: addr}
	err := s.do(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT der, sign_der, capabilities, stored_at FROM certificates WHERE address = $1", addr).
			Scan(&der, &signDER, &st.Capabilities, &st.StoredAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return output.StoredCertificate{}, fmt.Errorf("no certificate for %s: %w", addr, fs.ErrNotExist)
	}
	if err != nil {
		return output.StoredCertificate{}, err
	}
	if st.Cert, err = x509.ParseCertificate(der); err != nil {
		return output.StoredCertificate{}, err
	}
	if signDER != nil {
		if st.Signing, err = x509.ParseCertificate(signDER); err != nil {
			return output.StoredCertificate{}, fmt.Errorf("the signing certificate of %s: %w", addr, err)
		}
	}
	return st, nil
}

// Addresses lists the addresses that have a certificate, in order.
func (s *Store) Addresses(ctx context.Context) ([]string, error) {
	var addrs []string
	err := s.do(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, "SELECT address FROM certificates ORDER BY address")
		var err error
		addrs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return addrs, err
}

// History returns the certificates an address's current one replaced,
// oldest first (by NotBefore), as output.CertStore's History. A row that
// does not parse is skipped, as the folder store skips a damaged file.
func (s *Store) History(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	if err := checkAddress(addr); err != nil {
		return nil, err
	}
	var ders [][]byte
	err := s.do(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, "SELECT der FROM certificate_history WHERE address = $1 ORDER BY not_before, sha256", addr)
		var err error
		ders, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, der := range ders {
		if c, err := x509.ParseCertificate(der); err == nil {
			certs = append(certs, c)
		}
	}
	return certs, nil
}
