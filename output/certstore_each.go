package output

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// StoredCertificate is an address's current certificate and when the
// store stored it.
type StoredCertificate struct {
	Address  string
	Cert     *x509.Certificate
	StoredAt time.Time
}

// EachFunc is what Each calls with each address's current certificate, or
// with err set when that address's certificate could not be read or parsed
// (c.Address says whose; Each goes on with the others). An error it
// returns stops Each, which returns that error.
type EachFunc func(c StoredCertificate, err error) error

// Each calls fn with the current certificate of every address stored at or
// after since (every one when since is zero), in address order (bytewise),
// one at a time: an export of any size holds one certificate at once.
//
// The folder is listed first: the addresses are in memory for the whole
// walk (100,000 addresses take about 10 MB). StoredAt is the file's
// modification time, which is when it was stored, since the store writes
// each file whole and renames it into place (a copy that keeps times, cp -p
// or rsync -t, keeps them too). The time is read before the file: a
// certificate replaced during the walk may come with its predecessor's
// time, so an incremental export should take as since the time its
// previous run started, not ended. A file removed since the listing is
// left out.
func (s *CertStore) Each(ctx context.Context, since time.Time, fn EachFunc) error {
	addrs, err := s.Addresses()
	if err != nil {
		return fmt.Errorf("listing %s: %w", s.dir, err)
	}
	sort.Strings(addrs)
	root := rootFolder(s.dir)
	for _, addr := range addrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := addr + ".crt"
		info, err := os.Lstat(filepath.Join(s.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c := StoredCertificate{Address: addr}
		if err == nil {
			if !info.Mode().IsRegular() {
				err = &NotRegularError{Path: filepath.Join(s.dir, name), Mode: info.Mode()}
			} else if c.StoredAt = info.ModTime(); !since.IsZero() && c.StoredAt.Before(since) {
				continue
			}
		}
		if err == nil {
			var data []byte
			if data, err = root.readFile(name); errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err == nil {
				if c.Cert, err = parsePEMCertificate(data); err != nil {
					err = fmt.Errorf("%s: %w", filepath.Join(s.dir, name), err)
				}
			}
		}
		if err := fn(c, err); err != nil {
			return err
		}
	}
	return nil
}
