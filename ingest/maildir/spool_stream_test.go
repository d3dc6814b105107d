package maildir

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// streamSpool opens a spool whose journal keeps its segments, so that a
// test sees which messages went through it; xattr and named choose the
// ways the files are written, as in TestSpoolDeliverAndLoad.
func streamSpool(t *testing.T, xattr, named bool) (*Spool, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := openSpool(dir, noRetirement(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { crash(s) })
	s.noXattr.Store(!xattr)
	if named {
		s.unnamed = false
	}
	return s, dir
}

// A message is held in memory while it is small, within the budget and
// its header within the caps, and then takes the journal's way; otherwise
// it is written to a file in tmp/ as it arrives and delivered from it
// (synced, linked or renamed into new/), never through the journal. Either
// way it is loaded back whole with its context, and nothing is left in
// tmp/ nor held of the budget.
func TestMessageWriterDelivery(t *testing.T) {
	header := "From: a@example.com\r\nSubject: x\r\n\r\n"
	manyFields := strings.Repeat("X-H: v\r\n", 50) + "\r\nbody\r\n"
	for _, tt := range []struct {
		name        string
		msg         string
		budget      int64
		spillBytes  int64
		header      *verify.HeaderLimits
		wantSpilled bool
		wantHeader  string // in HeaderErr
	}{
		{name: "small", msg: header + "body\r\n", budget: 1 << 20},
		{name: "larger than SpillBytes", msg: header + strings.Repeat("line of the body\r\n", 20000), budget: 8 << 20, wantSpilled: true},
		{name: "small, a small SpillBytes", msg: header + strings.Repeat("b", 2000), budget: 1 << 20, spillBytes: 1000, wantSpilled: true},
		{name: "budget full", msg: header + "body\r\n", budget: 1000, wantSpilled: true},
		{name: "header within the caps", msg: manyFields, budget: 1 << 20, header: &verify.HeaderLimits{MaxFields: 50}},
		{name: "too many header fields", msg: manyFields, budget: 1 << 20, header: &verify.HeaderLimits{MaxFields: 49},
			wantSpilled: true, wantHeader: "more than 49 fields"},
		{name: "header too large", msg: manyFields, budget: 1 << 20, header: &verify.HeaderLimits{MaxBytes: 100},
			wantSpilled: true, wantHeader: "more than 100 bytes"},
	} {
		for _, mode := range []struct{ xattr, named bool }{{true, false}, {true, true}, {false, false}} {
			t.Run(fmt.Sprintf("%s/xattr=%v,named=%v", tt.name, mode.xattr, mode.named), func(t *testing.T) {
				s, dir := streamSpool(t, mode.xattr, mode.named)
				budget := ingest.NewMemoryBudget(tt.budget)
				w := s.NewWriter(ingest.MessageWriterOptions{Budget: budget, SpillBytes: tt.spillBytes, Header: tt.header})
				// In pieces, as a connection delivers them.
				r := &chunkReader{data: []byte(tt.msg), chunk: 1000}
				if _, err := w.ReadFrom(r); err != nil {
					t.Fatal(err)
				}
				if w.Spilled() != tt.wantSpilled {
					t.Errorf("spilled %v, want %v", w.Spilled(), tt.wantSpilled)
				}
				if herr := w.HeaderErr(); tt.wantHeader == "" && herr != nil || tt.wantHeader != "" && (herr == nil || !strings.Contains(herr.Error(), tt.wantHeader)) {
					t.Errorf("HeaderErr %v, want %q", herr, tt.wantHeader)
				}
				if w.Spilled() && budget.Used() != 0 {
					t.Errorf("a message in a file holds %d bytes of the budget", budget.Used())
				}
				if named := listDir(t, filepath.Join(dir, SubTmp)); mode.named && w.Spilled() != (len(named) == 1) {
					t.Errorf("tmp/ holds %v while the message is received", named)
				}
				env := testEnvelope(1)
				name, err := deliverWriter(s, w, env)
				if err != nil {
					t.Fatal(err)
				}
				m, err := load(s, name, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Raw) != tt.msg {
					t.Errorf("delivered %d bytes, want %d", len(m.Raw), len(tt.msg))
				}
				if m.Source != env.Source || m.EnvelopeFrom != env.EnvelopeFrom || !m.Received.Equal(env.Received) || m.Extra["n"] != "1" {
					t.Errorf("context lost: %+v", m)
				}
				if inJournal := slices.Contains(journalNames(t, dir), name); inJournal == tt.wantSpilled {
					t.Errorf("in the journal: %v, want %v", inJournal, !tt.wantSpilled)
				}
				if left := listDir(t, filepath.Join(dir, SubTmp)); len(left) != 0 {
					t.Errorf("tmp/ holds %v after the delivery", left)
				}
				if budget.Used() != 0 {
					t.Errorf("%d bytes of the budget still held", budget.Used())
				}
			})
		}
	}
}

// chunkReader returns data at most chunk bytes per Read.
type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// A message discarded (Close) leaves nothing: no file in tmp/, nothing
// held of the budget.
func TestMessageWriterClose(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			s, dir := streamSpool(t, true, named)
			budget := ingest.NewMemoryBudget(1 << 20)
			small := s.NewWriter(ingest.MessageWriterOptions{Budget: budget})
			small.Write([]byte("From: a@example.com\r\n"))
			big := s.NewWriter(ingest.MessageWriterOptions{Budget: budget})
			big.Write(bytes.Repeat([]byte("x"), ingest.DefaultSpillBytes+1))
			if small.Spilled() || !big.Spilled() || budget.Used() == 0 {
				t.Fatalf("spilled %v and %v, %d bytes used", small.Spilled(), big.Spilled(), budget.Used())
			}
			small.Close()
			big.Close()
			big.Close()
			if budget.Used() != 0 {
				t.Errorf("%d bytes of the budget held after Close", budget.Used())
			}
			if left := listDir(t, filepath.Join(dir, SubTmp)); len(left) != 0 {
				t.Errorf("tmp/ holds %v", left)
			}
			if _, err := big.Write([]byte("x")); err == nil {
				t.Error("a write after Close succeeded")
			}
		})
	}
}

// A trace header dropped after the message turned out not to want it:
// in memory, and from a file.
func TestMessageWriterDropPrefix(t *testing.T) {
	for _, spill := range []bool{false, true} {
		s, _ := streamSpool(t, true, false)
		w := s.NewWriter(ingest.MessageWriterOptions{})
		w.Write([]byte("Received: x\r\n"))
		w.Write([]byte("message\r\n"))
		if spill {
			if err := w.Spill(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.DropPrefix(int64(len("Received: x\r\n"))); err != nil {
			t.Fatal(err)
		}
		data, err := w.ReadAll()
		if err != nil || string(data) != "message\r\n" || w.Size() != int64(len(data)) {
			t.Errorf("spilled %v: %q (size %d), %v", spill, data, w.Size(), err)
		}
		w.Close()
	}
}

// Deliver writes a message larger than ingest.DefaultSpillBytes to a file of
// its own rather than into the journal, beside small ones that take the
// journal's way, in one delivery; and when it fails, none is delivered.
func TestSpoolDeliverLargeMessage(t *testing.T) {
	s, dir := streamSpool(t, true, false)
	big := append(testMessage(1), bytes.Repeat([]byte("b"), ingest.DefaultSpillBytes)...)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0), Envelope: testEnvelope(0)},
		ingest.Incoming{Raw: big, Envelope: testEnvelope(1)})
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, names[0], 0)
	if m, err := load(s, names[1], 1<<30); err != nil || !bytes.Equal(m.Raw, big) || m.EnvelopeFrom != "a1@example.com" {
		t.Errorf("large message: %d bytes, %v", len(m.Raw), err)
	}
	if got := journalNames(t, dir); !slices.Equal(got, names[:1]) {
		t.Errorf("the journal holds %v, want %v", got, names[:1])
	}

	// new/ cannot take the large one: the small one is not left either.
	if err := os.Chmod(filepath.Join(dir, SubNew), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(dir, SubNew), 0o700)
	if os.Geteuid() == 0 {
		return // root writes anyway
	}
	if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(2)}, ingest.Incoming{Raw: big}); err == nil {
		t.Fatal("delivery into a read-only new/ succeeded")
	}
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 2 {
		t.Errorf("new/ holds %v after a failed delivery", got)
	}
	if left := listDir(t, filepath.Join(dir, SubTmp)); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
}

// The spool removes, when it opens, the files of tmp/ that a crash left
// from certharvest's own writes, and any file there untouched for 36
// hours (a delivery that died, by Maildir's rule); another writer's recent
// file is left alone, and so are folders.
func TestSpoolSweepsTmp(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	tmp := filepath.Join(dir, SubTmp)
	old := time.Now().Add(-tmpMaxAge - time.Minute)
	for name, mtime := range map[string]time.Time{
		ingest.SpillPrefix + "123": time.Now(),
		"1780308000.M1P2Q3.mx":     old,
		"1780308000.M1P2Q4.mx":     time.Now(),
		"1780308000.M1P2Q5.mx.tmp": time.Now().Add(-tmpMaxAge + time.Hour),
	} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(tmp, "folder"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := []string{"1780308000.M1P2Q4.mx", "1780308000.M1P2Q5.mx.tmp", "folder"}
	if got := listDir(t, tmp); !slices.Equal(got, want) {
		t.Errorf("tmp/ holds %v, want %v", got, want)
	}
	// The periodic sweep: only what is old.
	if n := s.sweepTmp(time.Now().Add(2*time.Hour), false); n != 1 {
		t.Errorf("swept %d files two hours later, want 1", n)
	}
}

// deliverWriter delivers the message w received, with env, and returns its
// name in new/.
func deliverWriter(s *Spool, w *ingest.MessageWriter, env verify.Envelope) (string, error) {
	names, err := s.Deliver(context.Background(), ingest.Incoming{Writer: w, Envelope: env})
	if err != nil {
		return "", err
	}
	return names[0], nil
}
