package publish

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
)

// BenchmarkExport exports a folder of 1,000 certificates in each format;
// docs/PERFORMANCE.md has the 100,000 of scripts/gencerts.
func BenchmarkExport(b *testing.B) {
	dir := b.TempDir()
	data := output.EncodeCertificatePEM(leaf(b, "x@example.org"))
	for i := range 1000 {
		// As the store lays them out, without its syncs.
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("user%d@example.org.crt", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	store, err := output.ReadCertStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	r := output.FolderReader{Store: store}
	for _, name := range Formats() {
		b.Run(name, func(b *testing.B) {
			f, err := New(name, Options{LDAPBase: "dc=example,dc=org"})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := Export(context.Background(), r, f, time.Time{}, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
