package output

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// StoredCertificate is an address's current certificate (the one to
// encrypt to) and when the store stored it. LoadStored also gives the
// signing certificate, when it is another, and the sender's capabilities;
// Each leaves them out.
type StoredCertificate struct {
	Address  string
	Cert     *x509.Certificate
	StoredAt time.Time
	// Signing is the address's signing certificate when it is not Cert
	// (<address>.sign.crt); nil otherwise.
	Signing *x509.Certificate
	// Capabilities are the sender's SMIMECapabilities, kept with Cert
	// (<address>.caps); nil when none were recorded.
	Capabilities []string
}

// EachFunc is what Each calls with each address's current certificate, or
// with err set when that address's certificate could not be read or parsed
// (c.Address says whose; Each goes on with the others). An error it
// returns stops Each, which returns that error.
type EachFunc func(c StoredCertificate, err error) error

// Each calls fn with the current certificate of every address stored at or
// after since (every one when since is zero), in address order (bytewise),
// one at a time.
//
// The folder is listed first: the addresses are in memory for the whole
// walk (100,000 addresses take about 10 MB). The files are then read and
// parsed by a few goroutines, eachBatch addresses at a time, the next batch
// while fn takes the current one: at most two batches of certificates are
// in memory, whatever the folder's size. StoredAt is the file's
// modification time, which is when it was stored, since the store writes
// each file whole and renames it into place (a copy that keeps times, cp -p
// or rsync -t, keeps them too); on Linux it comes from the open file itself
// (readFileSince). An incremental export should take as since a time
// before its previous run started: a certificate stored during that run
// may have been listed before it was replaced. A file removed since the
// listing is left out.
func (s *CertStore) Each(ctx context.Context, since time.Time, fn EachFunc) error {
	addrs, err := s.Addresses()
	if err != nil {
		return fmt.Errorf("listing %s: %w", s.dir, err)
	}
	sort.Strings(addrs)
	// start reads the batch at i in the background.
	start := func(i int) <-chan []eachResult {
		ch := make(chan []eachResult, 1) // the reader never waits for fn
		go func() { ch <- s.readBatch(addrs[i:min(i+eachBatch, len(addrs))], since) }()
		return ch
	}
	var pending <-chan []eachResult
	if len(addrs) > 0 {
		pending = start(0)
	}
	for i := 0; i < len(addrs); i += eachBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := <-pending
		if i+eachBatch < len(addrs) {
			pending = start(i + eachBatch)
		}
		for _, r := range batch {
			if r.skip {
				continue
			}
			if err := fn(r.c, r.err); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachBatch is how many addresses Each reads ahead of fn.
const eachBatch = 256

// eachReaders is how many goroutines read a batch, at most.
const eachReaders = 4

// eachResult is an address's certificate as Each reads it: skip when it
// is left out (removed, or older than since).
type eachResult struct {
	c    StoredCertificate
	err  error
	skip bool
}

// readBatch reads the certificates of addrs, with up to eachReaders
// goroutines, in addrs' order.
func (s *CertStore) readBatch(addrs []string, since time.Time) []eachResult {
	results := make([]eachResult, len(addrs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(eachReaders, runtime.GOMAXPROCS(0), len(addrs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(addrs); i = int(next.Add(1) - 1) {
				results[i] = s.readStored(addrs[i], since)
			}
		})
	}
	wg.Wait()
	return results
}

// readStored reads the certificate of addr and its time.
func (s *CertStore) readStored(addr string, since time.Time) eachResult {
	name := addr + ".crt"
	data, mtime, err := rootFolder(s.dir).readFileSince(name, since)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return eachResult{skip: true} // removed since the listing
	case err != nil:
		return eachResult{c: StoredCertificate{Address: addr}, err: err}
	case data == nil:
		return eachResult{skip: true} // older than since
	}
	r := eachResult{c: StoredCertificate{Address: addr, StoredAt: mtime}}
	if r.c.Cert, err = parsePEMCertificate(data); err != nil {
		r.err = fmt.Errorf("%s: %w", filepath.Join(s.dir, name), err)
	}
	return r
}
