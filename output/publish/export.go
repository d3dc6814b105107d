package publish

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// Stats is what an export did.
type Stats struct {
	Exported int
	// Failed names each certificate left out, and why: unreadable, or
	// not expressible in the format. The others are exported all the same.
	Failed []string
}

// exportBuffer is the size of the buffer between the records and the
// output: large enough that a write is one system call for many records.
const exportBuffer = 256 << 10

// Export writes f's header, then the record of every certificate r holds
// that was stored at or after since (every one when since is zero), in
// address order, to w. It holds one certificate at a time. The error is
// one that stopped it (writing to w, reading the store); a certificate that
// could not be read or written is in Stats.Failed instead.
func Export(ctx context.Context, r output.CertReader, f Format, since time.Time, w io.Writer) (Stats, error) {
	var st Stats
	bw := bufio.NewWriterSize(w, exportBuffer)
	buf := f.AppendHeader(make([]byte, 0, 8<<10))
	if _, err := bw.Write(buf); err != nil {
		return st, err
	}
	err := r.Each(ctx, since, func(c output.StoredCertificate, err error) error {
		if err == nil {
			buf, err = f.AppendRecord(buf[:0], c)
		}
		if err != nil {
			st.Failed = append(st.Failed, fmt.Sprintf("%s: %v", c.Address, err))
			return nil
		}
		st.Exported++
		_, err = bw.Write(buf)
		return err
	})
	if err != nil {
		return st, err
	}
	return st, bw.Flush()
}

// ExportDir writes the record of every certificate r holds that was
// stored at or after since into dir, a file per address,
// <address>.<f.Ext()>, each with f's header, each replaced atomically
// (AtomicFile) and only when its content changes, so that what watches the
// folder sees only what changed. dir must exist.
func ExportDir(ctx context.Context, r output.CertReader, f Format, since time.Time, dir string) (Stats, error) {
	var st Stats
	if info, err := os.Stat(dir); err != nil {
		return st, err
	} else if !info.IsDir() {
		return st, fmt.Errorf("%s is not a folder", dir)
	}
	buf := make([]byte, 0, 8<<10)
	err := r.Each(ctx, since, func(c output.StoredCertificate, err error) error {
		if err == nil {
			buf, err = f.AppendRecord(f.AppendHeader(buf[:0]), c)
		}
		if err != nil {
			st.Failed = append(st.Failed, fmt.Sprintf("%s: %v", c.Address, err))
			return nil
		}
		if norm, err := verify.NormalizeAddress(c.Address); err != nil || norm != c.Address {
			// Not a file name the folder store would make.
			st.Failed = append(st.Failed, fmt.Sprintf("%q: not a normalised address", c.Address))
			return nil
		}
		path := filepath.Join(dir, c.Address+"."+f.Ext())
		if old, err := os.ReadFile(path); err == nil && string(old) == string(buf) {
			st.Exported++
			return nil
		}
		if err := WriteFileAtomic(path, buf, 0o644); err != nil {
			return err
		}
		st.Exported++
		return nil
	})
	return st, err
}
