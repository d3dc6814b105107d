package pgstore

import (
	"context"
	"crypto/x509"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

// folderFiles returns the certificate files of a folder store, by path
// relative to it: the current certificates and the history (not the lock
// files, which are the folder store's own).
func folderFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".locks" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.HasSuffix(path, ".crt") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			files[rel] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sameFiles fails the test unless two folders hold the same certificate
// files, byte for byte.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	w, g := folderFiles(t, want), folderFiles(t, got)
	if !maps.Equal(w, g) {
		t.Errorf("the folders differ:\n want %q\n got  %q", slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g)))
	}
}

// storeBoth stores each certificate in both stores, in order.
func storeBoth(t *testing.T, folder *output.CertStore, s *Store, steps []step) {
	t.Helper()
	ctx := context.Background()
	for _, st := range steps {
		want, err := folder.Store(ctx, st.addr, st.cert)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Store(ctx, st.addr, st.cert)
		if err != nil {
			t.Fatal(err)
		}
		if got.Action != want.Action || got.Bytes != want.Bytes {
			t.Errorf("%s: PostgreSQL %s (%d bytes), the folder %s (%d bytes)", st.addr, got.Action, got.Bytes, want.Action, want.Bytes)
		}
	}
}

type step struct {
	addr string
	cert *x509.Certificate
}

// The export is the folder store's folder, byte for byte, for the same
// certificates stored in the same order; exporting again writes only
// what changed; and importing that folder into another database, then
// exporting it, gives the same folder again.
func TestExportImport(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx := context.Background()
	folderDir, exportDir := t.TempDir(), t.TempDir()
	folder, err := output.OpenCertStore(folderDir)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()

	a, b, c := "alice@example.com", "bob@example.org", "carol@example.net"
	a1, a2, a3 := leaf(t, a, t0), leaf(t, a, t0.AddDate(0, 1, 0)), leaf(t, a, t0.AddDate(0, 2, 0))
	b1, b2 := leaf(t, b, t0), leaf(t, b, t0.AddDate(0, 1, 0))
	c1, cTie := leaf(t, c, t0), leaf(t, c, t0)
	storeBoth(t, folder, s, []step{
		{a, a1}, {b, b2}, {a, a2}, {b, b1}, {c, c1}, {c, cTie}, {a, a1}, {a, a3}, {a, a3},
	})
	stats, err := s.Export(ctx, exportDir)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Addresses != 3 || stats.Written != 5 { // a: 3, b: 1, c: 1
		t.Errorf("first export: %+v", stats)
	}
	sameFiles(t, folderDir, exportDir)
	if _, err := os.Stat(filepath.Join(exportDir, "history", a)); err != nil {
		t.Errorf("alice's history was not exported: %v", err)
	}

	// Again: nothing changed, nothing written, the files untouched.
	before, err := os.Stat(filepath.Join(exportDir, a+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	if stats, err := s.Export(ctx, exportDir); err != nil || stats.Written != 0 {
		t.Errorf("second export: %+v, %v; want nothing written", stats, err)
	}
	if after, err := os.Stat(filepath.Join(exportDir, a+".crt")); err != nil || !os.SameFile(before, after) {
		t.Errorf("an unchanged file was replaced (%v)", err)
	}

	// One change: one file written.
	b3 := leaf(t, b, t0.AddDate(0, 2, 0))
	storeBoth(t, folder, s, []step{{b, b3}})
	if stats, err := s.Export(ctx, exportDir); err != nil || stats.Written != 1 {
		t.Errorf("export after one change: %+v, %v; want one written", stats, err)
	}
	sameFiles(t, folderDir, exportDir)

	// Import into another database (schema): the same certificates and
	// history; again: nothing stored.
	other, _ := migrated(t)
	imp, err := other.Import(ctx, folderDir)
	if err != nil {
		t.Fatal(err)
	}
	// a: a1, a2, a3; b: b2, b3 (b1 came after b2: never stored); c: c1.
	if imp.Addresses != 3 || imp.Stored != 6 || imp.Unchanged != 0 || imp.Kept != 0 {
		t.Errorf("import: %+v", imp)
	}
	if imp, err := other.Import(ctx, folderDir); err != nil || imp.Stored != 0 || imp.Unchanged != 3 || imp.Kept != 3 {
		t.Errorf("import again: %+v, %v; want nothing stored", imp, err)
	}
	againDir := t.TempDir()
	if _, err := other.Export(ctx, againDir); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, folderDir, againDir)

	// An import never rolls an address back: a folder with older
	// certificates leaves the newer ones.
	oldDir := t.TempDir()
	old, err := output.OpenCertStore(oldDir)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Store(ctx, a, a1); err != nil {
		t.Fatal(err)
	}
	if imp, err := other.Import(ctx, oldDir); err != nil || imp.Kept != 1 || imp.Stored != 0 {
		t.Errorf("import of an older folder: %+v, %v", imp, err)
	}
	if cur, err := other.Load(ctx, a); err != nil || !cur.Equal(a3) {
		t.Errorf("after importing an older folder, alice's certificate is not the newest (%v)", err)
	}
}

// Each certificate stored is announced on certharvest_certificates, when
// its transaction commits, for an export that follows the store.
func TestNotify(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN certharvest_certificates"); err != nil {
		t.Fatal(err)
	}
	addr := "notified@example.com"
	for _, c := range []*x509.Certificate{leaf(t, addr, t0), leaf(t, addr, t0.AddDate(0, 1, 0))} {
		res, err := s.Store(ctx, addr, c)
		if err != nil || res.Action != verify.ActionStored {
			t.Fatalf("%+v, %v", res, err)
		}
		// The tests' schemas share one database, and NOTIFY is per
		// database: the parallel tests' own notifications arrive here too.
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				t.Fatalf("waiting for the notification of %s: %v", addr, err)
			}
			if n.Channel != "certharvest_certificates" {
				t.Fatalf("notification %q on %q", n.Payload, n.Channel)
			}
			if n.Payload == addr {
				break
			}
		}
	}
}

// Follow exports the store, then each certificate as it is stored; when
// its connection is cut, it connects again, exports the whole store (what
// it may have missed) and follows on.
func TestFollow(t *testing.T) {
	t.Parallel()
	s, _ := migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	before := leaf(t, "before@example.com", t0)
	if _, err := s.Store(ctx, "before@example.com", before); err != nil {
		t.Fatal(err)
	}
	exported := make(chan string, 16)
	done := make(chan error, 1)
	followCtx, stop := context.WithCancel(ctx)
	go func() {
		done <- s.Follow(followCtx, dir, FollowOptions{Retry: 10 * time.Millisecond,
			Exported: func(addr string, stats ExportStats, err error) {
				if err != nil {
					t.Errorf("export of %q: %v", addr, err)
				}
				exported <- addr
			}})
	}()
	wait := func(want string) {
		t.Helper()
		for {
			select {
			case addr := <-exported:
				if addr == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no export of %q", want)
			}
		}
	}
	hasFile := func(addr string, c *x509.Certificate) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, addr+".crt"))
		if err != nil || string(data) != string(output.EncodeCertificatePEM(c)) {
			t.Errorf("%s: the exported file is not its certificate (%v)", addr, err)
		}
	}
	wait("") // the whole store
	hasFile("before@example.com", before)
	during := leaf(t, "during@example.com", t0)
	if _, err := s.Store(ctx, "during@example.com", during); err != nil {
		t.Fatal(err)
	}
	wait("during@example.com")
	hasFile("during@example.com", during)

	// Cut the connection: Follow connects again, exports the whole store,
	// and listens again.
	if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'certharvest store export --follow' AND query LIKE 'LISTEN%'
		AND pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend')`); err != nil {
		t.Fatal(err)
	}
	wait("")
	after := leaf(t, "after@example.com", t0)
	if _, err := s.Store(ctx, "after@example.com", after); err != nil {
		t.Fatal(err)
	}
	wait("after@example.com")
	hasFile("after@example.com", after)
	stop()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
}
