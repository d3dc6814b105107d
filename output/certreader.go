package output

import (
	"context"
	"crypto/x509"
	"time"
)

// CertReader is what list, show and the lookup API read from a certificate
// store, whichever it is: the folder (FolderReader) or PostgreSQL
// (pgstore.Store). Load's error wraps fs.ErrNotExist when the address has
// no certificate; Load gives the certificate to encrypt to, LoadStored it
// and the signing certificate and capabilities kept with it; Path names the
// address's certificate (a file, or a row).
// Each streams the current certificates, for export (see EachFunc).
type CertReader interface {
	Path(addr string) (string, error)
	Load(ctx context.Context, addr string) (*x509.Certificate, error)
	LoadStored(ctx context.Context, addr string) (StoredCertificate, error)
	Addresses(ctx context.Context) ([]string, error)
	History(ctx context.Context, addr string) ([]*x509.Certificate, error)
	Each(ctx context.Context, since time.Time, fn EachFunc) error
}

// FolderReader reads a certificate folder as a CertReader. The folder is
// on this machine: its reads do not wait on ctx.
type FolderReader struct{ Store *CertStore }

// Path is CertStore.Path.
func (r FolderReader) Path(addr string) (string, error) { return r.Store.Path(addr) }

// Load is CertStore.Load.
func (r FolderReader) Load(_ context.Context, addr string) (*x509.Certificate, error) {
	return r.Store.Load(addr)
}

// LoadStored is CertStore.LoadStored.
func (r FolderReader) LoadStored(_ context.Context, addr string) (StoredCertificate, error) {
	return r.Store.LoadStored(addr)
}

// Addresses is CertStore.Addresses.
func (r FolderReader) Addresses(context.Context) ([]string, error) { return r.Store.Addresses() }

// History is CertStore.History.
func (r FolderReader) History(_ context.Context, addr string) ([]*x509.Certificate, error) {
	return r.Store.History(addr)
}

// Each is CertStore.Each.
func (r FolderReader) Each(ctx context.Context, since time.Time, fn EachFunc) error {
	return r.Store.Each(ctx, since, fn)
}
