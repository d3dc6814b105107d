package output

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"crypto/x509"
)

// ReadCertStore opens an existing certificate folder for reading (list,
// show, lookups); unlike OpenCertStore it creates nothing and needs no write
// permission.
func ReadCertStore(dir string) (*CertStore, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate folder: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("certificate folder %s is not a folder", dir)
	}
	return &CertStore{dir: dir}, nil
}

// History returns the certificates an address's current one replaced,
// oldest first (by NotBefore). Unreadable history files are skipped, and
// so are links and anything else that is not a regular file; a history
// folder that is not one (a link) is an error, a *NotRegularError.
func (s *CertStore) History(addr string) ([]*x509.Certificate, error) {
	if _, err := s.Path(addr); err != nil {
		return nil, err
	}
	history, err := rootFolder(s.dir).sub("history", false)
	if err == nil {
		defer history.close()
		var d folder
		if d, err = history.sub(addr, false); err == nil {
			defer d.close()
			return readHistory(d)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return nil, err
}

// readHistory reads the certificates of a history folder.
func readHistory(d folder) ([]*x509.Certificate, error) {
	entries, err := d.readDir()
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".crt") || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		data, err := d.readFile(e.Name())
		if err != nil {
			continue
		}
		if c, err := parsePEMCertificate(data); err == nil {
			certs = append(certs, c)
		}
	}
	sort.Slice(certs, func(i, j int) bool { return certs[i].NotBefore.Before(certs[j].NotBefore) })
	return certs, nil
}
