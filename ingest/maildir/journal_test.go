package maildir

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

func testRecords() []record {
	return []record{
		{name: "1780272000.M1P2Q1.mx", env: []byte(`{"source":"smtp"}`), raw: []byte("From: a@example.com\r\n\r\nbody\r\n")},
		{name: "1780272000.M1P2Q2.mx", env: nil, raw: nil},
		{name: "1780272000.M1P2Q3.mx", env: []byte(`{}`), raw: bytes.Repeat([]byte{0, 0xff, '\n', 'x'}, 5000)},
	}
}

func readRecords(t *testing.T, data []byte) []record {
	t.Helper()
	var recs []record
	sr := newSegmentReader(bytes.NewReader(data), int64(len(data)))
	for {
		rec, err := sr.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTorn) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func sameRecords(a, b []record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || !bytes.Equal(a[i].env, b[i].env) || !bytes.Equal(a[i].raw, b[i].raw) {
			return false
		}
	}
	return true
}

func TestJournalRecordRoundTrip(t *testing.T) {
	want := testRecords()
	var buf []byte
	for _, r := range want {
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
		before := len(buf)
		buf = appendRecord(buf, r)
		if got := int64(len(buf) - before); got != r.size() {
			t.Errorf("%s: %d bytes, size() says %d", r.name, got, r.size())
		}
	}
	if got := readRecords(t, buf); !sameRecords(got, want) {
		t.Errorf("read back %d records, want %d, or different", len(got), len(want))
	}
	for _, name := range []string{"", ".hidden", "a/b", "a\x00b", strings.Repeat("x", 1<<16)} {
		if err := (record{name: name}).check(); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

// A segment cut anywhere in its last record, or damaged anywhere, gives
// the records before that point and nothing else.
func TestJournalTornTail(t *testing.T) {
	recs := testRecords()
	var buf []byte
	var ends []int
	for _, r := range recs {
		buf = appendRecord(buf, r)
		ends = append(ends, len(buf))
	}
	lastStart := ends[len(ends)-2]
	for cut := lastStart; cut < len(buf); cut++ {
		if got := readRecords(t, buf[:cut]); !sameRecords(got, recs[:2]) {
			t.Fatalf("cut at %d: %d records, want the first 2", cut, len(got))
		}
	}
	// Damage in the first record: nothing after it is trusted either.
	for i := 0; i < ends[0]; i++ {
		bad := bytes.Clone(buf)
		bad[i] ^= 0x20
		if got := readRecords(t, bad); len(got) != 0 {
			t.Fatalf("byte %d damaged: %d records read, want none", i, len(got))
		}
	}
	// Zeros after the last record (space allocated, never written).
	padded := append(bytes.Clone(buf), make([]byte, 4096)...)
	if got := readRecords(t, padded); !sameRecords(got, recs) {
		t.Errorf("zeros after the records: %d records, want %d", len(got), len(recs))
	}
	// A length running past the end.
	huge := append(bytes.Clone(buf), recordMagic+"\xff\xff\xff\xff\x00\x00\x00\x00"...)
	if got := readRecords(t, huge); !sameRecords(got, recs) {
		t.Errorf("huge length after the records: %d records, want %d", len(got), len(recs))
	}
}

// faultFile is a segment file whose writes or syncs fail on demand, which
// counts its syncs and records what each failed write held.
type faultFile struct {
	segmentFile
	fs *faultFS
}

// faultFS creates faultFiles; its fields are shared by all of them.
type faultFS struct {
	failWrite, failSync atomic.Bool
	syncs               atomic.Int64
	// blockSync, when set, holds the next sync until release is closed.
	blockSync atomic.Bool
	entered   chan struct{}
	release   chan struct{}

	mu           sync.Mutex
	failedGroups []int // records per failed write or sync
}

func newFaultFS() *faultFS {
	return &faultFS{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (ffs *faultFS) create(path string) (segmentFile, error) {
	f, err := createSegment(path)
	if err != nil {
		return nil, err
	}
	return &faultFile{f, ffs}, nil
}

func (ffs *faultFS) failed(data []byte) {
	ffs.mu.Lock()
	ffs.failedGroups = append(ffs.failedGroups, len(readRecordsNoT(data)))
	ffs.mu.Unlock()
}

func readRecordsNoT(data []byte) []record {
	var recs []record
	sr := newSegmentReader(bytes.NewReader(data), int64(len(data)))
	for {
		rec, err := sr.next()
		if err != nil {
			return recs
		}
		recs = append(recs, rec)
	}
}

var errInjected = errors.New("injected failure")

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.failWrite.Load() {
		f.fs.failed(p)
		// Half of it reaches the file, as when the disk fills up.
		n, _ := f.segmentFile.Write(p[:len(p)/2])
		return n, errInjected
	}
	if f.fs.failSync.Load() {
		f.fs.failed(p)
	}
	return f.segmentFile.Write(p)
}

func (f *faultFile) Sync() error {
	fail := f.fs.failSync.Load()
	if f.fs.blockSync.CompareAndSwap(true, false) {
		f.fs.entered <- struct{}{}
		<-f.fs.release
	}
	f.fs.syncs.Add(1)
	if fail {
		return errInjected
	}
	return f.segmentFile.Sync()
}

// crash stops s as a crash would: nothing is retired or synced, and the
// journal's lock is released (as the kernel does when the process dies).
func crash(s *Spool) {
	s.journal.halt()
	s.stopOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.lock.Close()
	})
}

// segments returns the journal's segments.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := listSegments(filepath.Join(dir, SubJournal))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, s := range segs {
		paths = append(paths, s.path)
	}
	return paths
}

// journalNames returns the names of the messages every segment holds.
func journalNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, p := range segments(t, dir) {
		if err := readSegment(p, func(r record) error { names = append(names, r.name); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// noRetirement keeps every segment: the retirer fails (as when syncfs
// does), and so would Close, so tests end such a spool with crash.
func noRetirement() journalOptions {
	return journalOptions{rotateEvery: time.Hour, syncData: func([]string) error { return errRetirementOff }}
}

var errRetirementOff = errors.New("retirement disabled by the test")

func testEnvelope(i int) verify.Envelope {
	return verify.Envelope{Source: "webhook", EnvelopeFrom: fmt.Sprintf("a%d@example.com", i), EnvelopeTo: []string{"in@example.org"},
		RemoteAddr: "192.0.2.1:4567", Received: time.Date(2026, 6, 1, 0, 0, i, 0, time.UTC), Extra: map[string]string{"n": fmt.Sprint(i)}}
}

func testMessage(i int) []byte {
	return fmt.Appendf(nil, "From: a%d@example.com\r\n\r\nmessage %d\r\n", i, i)
}

// checkLoad checks that message i is in new/ under name, with its context.
func checkLoad(t *testing.T, s *Spool, name string, i int) {
	t.Helper()
	m, err := load(s, name, 1<<20)
	if err != nil {
		t.Errorf("message %d: %v", i, err)
		return
	}
	env := testEnvelope(i)
	if !bytes.Equal(m.Raw, testMessage(i)) {
		t.Errorf("message %d: bytes %q", i, m.Raw)
	}
	if m.Source != env.Source || m.EnvelopeFrom != env.EnvelopeFrom || !m.Received.Equal(env.Received) || m.Extra["n"] != env.Extra["n"] {
		t.Errorf("message %d: context lost: %+v", i, m)
	}
}

// After a crash that lost the files written after the journal's sync, the
// next Open restores every acknowledged message from the journal, with
// its context; the journal is then empty.
func TestSpoolReplayAfterCrash(t *testing.T) {
	for _, xattr := range []bool{true, false} {
		t.Run(fmt.Sprintf("xattr=%v", xattr), func(t *testing.T) {
			dir := t.TempDir()
			opts := noRetirement()
			opts.maxSegment = 1
			s, err := openSpool(dir, opts, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.noXattr.Store(!xattr)
			var names []string
			for i := range 4 {
				n, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)})
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, n...)
			}
			crash(s)
			if n := len(segments(t, dir)); n != 4 {
				t.Fatalf("%d segments, want 4 (maxSegment 1 byte)", n)
			}
			// Lost: message 0; 1 lost its data; 2 its context; 3 survived.
			os.Remove(filepath.Join(dir, SubNew, names[0]))
			os.Remove(filepath.Join(dir, SubMeta, names[0]+".json"))
			os.Truncate(filepath.Join(dir, SubNew, names[1]), 3)
			if p := filepath.Join(dir, SubNew, names[2]); xattr && !s.noXattr.Load() {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := setXattr(f, envelopeXattr, []byte("{}")); err != nil {
					t.Fatal(err)
				}
				f.Close()
			} else {
				os.WriteFile(filepath.Join(dir, SubMeta, names[2]+".json"), nil, 0o600)
			}
			// An interrupted delivery's leftover in tmp/, a torn tail.
			os.WriteFile(filepath.Join(dir, SubTmp, names[0]), []byte("From: half"), 0o600)
			segs := segments(t, dir)
			f, _ := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			f.Write(appendRecord(nil, record{name: "torn", raw: []byte("never acknowledged")})[:20])
			f.Close()

			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i, name := range names {
				checkLoad(t, s, name, i)
			}
			if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 4 {
				t.Errorf("new/ = %v, want the 4 messages", got)
			}
			if got := listDir(t, filepath.Join(dir, SubTmp)); len(got) != 0 {
				t.Errorf("tmp/ = %v, want empty", got)
			}
			if segs := segments(t, dir); len(segs) != 0 {
				t.Errorf("segments left after the replay: %v", segs)
			}
		})
	}
}

// Replay delivers nothing again that is in new/ or was processed and
// archived in cur/ (with any flags: accepted, rejected, changed by a mail
// client); a damaged archived copy is repaired in place.
func TestSpoolReplaySkipsDelivered(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, noRetirement(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 6 {
		n, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	// 0 stays in new/; 1 archived; 2 archived, then flagged by a mail
	// client; 3 archived, its file damaged; 4 archived as rejected; 5
	// too, its file damaged.
	for i, n := range names[1:] {
		if err := s.Archive(n, i < 3); err != nil {
			t.Fatal(err)
		}
	}
	os.Rename(filepath.Join(dir, SubCur, names[2]+":2,S"), filepath.Join(dir, SubCur, names[2]+":2,FS"))
	os.Truncate(filepath.Join(dir, SubCur, names[3]+":2,S"), 0)
	os.Truncate(filepath.Join(dir, SubCur, names[5]+":2,ST"), 0)
	crash(s)

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 1 || got[0] != names[0] {
		t.Errorf("new/ = %v, want only %s", got, names[0])
	}
	checkLoad(t, s, names[0], 0)
	cur := listDir(t, filepath.Join(dir, SubCur))
	want := []string{names[1] + ":2,S", names[2] + ":2,FS", names[3] + ":2,S", names[4] + ":2,ST", names[5] + ":2,ST"}
	// listDir sorts by name, and names sort in delivery order only while
	// their microseconds (M…) have as many digits: M99231 > M100039.
	slices.Sort(want)
	if strings.Join(cur, " ") != strings.Join(want, " ") {
		t.Errorf("cur/ = %v, want %v", cur, want)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, SubCur, names[3]+":2,S")); !bytes.Equal(data, testMessage(3)) {
		t.Errorf("damaged archived copy not repaired: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, SubCur, names[5]+":2,ST")); !bytes.Equal(data, testMessage(5)) {
		t.Errorf("damaged rejected copy not repaired: %q", data)
	}
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("segments left after the replay: %v", segs)
	}
}

// A failed append or sync fails every delivery of its group; none of them
// is in new/, and the journal holds none of their records: the segment is
// cut back and the next group starts a new one.
func TestSpoolJournalFailure(t *testing.T) {
	for _, mode := range []string{"write", "sync"} {
		t.Run(mode, func(t *testing.T) {
			ffs := newFaultFS()
			dir := t.TempDir()
			opts := noRetirement()
			opts.createSegment = ffs.create
			s, err := openSpool(dir, opts, Options{})
			if err != nil {
				t.Fatal(err)
			}
			deliver := func(i int) ([]string, error) {
				return s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)})
			}
			// Message 0's sync is held while 1 to 8 queue behind it.
			ffs.blockSync.Store(true)
			first := make(chan []string, 1)
			go func() {
				names, err := deliver(0)
				if err != nil {
					t.Error(err)
				}
				first <- names
			}()
			<-ffs.entered
			const failing = 8
			errs := make(chan error, failing)
			for i := 1; i <= failing; i++ {
				go func() {
					_, err := deliver(i)
					errs <- err
				}()
			}
			time.Sleep(200 * time.Millisecond)
			ffs.failWrite.Store(mode == "write")
			ffs.failSync.Store(mode == "sync")
			close(ffs.release)
			names := <-first
			for range failing {
				err := <-errs
				if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "spool: journal: ") {
					t.Errorf("delivery in the failing group: %v", err)
				}
			}
			ffs.failWrite.Store(false)
			ffs.failSync.Store(false)
			if ffs.failedGroups[0] < 2 {
				t.Errorf("the failed group held %v records: the deliveries did not share it", ffs.failedGroups)
			}
			segs := segments(t, dir)
			if len(segs) != 1 {
				t.Fatalf("segments %v, want the first one alone", segs)
			}
			if got := journalNames(t, dir); len(got) != 1 || got[0] != names[0] {
				t.Errorf("the journal holds %v, want %v", got, names)
			}
			info, _ := os.Stat(segs[0])
			if want := (record{name: names[0], env: mustJSON(t, testEnvelope(0)), raw: testMessage(0)}).size(); info.Size() != want {
				t.Errorf("segment is %d bytes, want %d (message 0 alone)", info.Size(), want)
			}
			if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 1 || got[0] != names[0] {
				t.Errorf("new/ = %v, want %v", got, names)
			}
			// The next delivery goes to a new segment.
			more, err := deliver(9)
			if err != nil {
				t.Fatal(err)
			}
			if segs := segments(t, dir); len(segs) != 2 {
				t.Errorf("segments after the failure: %v, want 2", segs)
			}
			if got := journalNames(t, dir); strings.Join(got, " ") != names[0]+" "+more[0] {
				t.Errorf("the journal holds %v", got)
			}
			// And a replay brings back none of the failed ones.
			crash(s)
			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 2 {
				t.Errorf("new/ after a replay = %v, want 2 messages", got)
			}
		})
	}
}

func mustJSON(t *testing.T, env verify.Envelope) []byte {
	t.Helper()
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Concurrent deliveries share syncs: 32 queued behind one sync take one
// more, not 32.
func TestSpoolDeliverSharesSync(t *testing.T) {
	ffs := newFaultFS()
	dir := t.TempDir()
	s, err := openSpool(dir, journalOptions{rotateEvery: time.Hour, createSegment: ffs.create}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ffs.blockSync.Store(true)
	var wg sync.WaitGroup
	deliver := func(i int) {
		defer wg.Done()
		if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go deliver(0)
	<-ffs.entered
	const n = 32
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go deliver(i)
	}
	time.Sleep(200 * time.Millisecond)
	close(ffs.release)
	wg.Wait()
	// 2 when all 32 were waiting by the time the first sync ended.
	if syncs := ffs.syncs.Load(); syncs > n/4 {
		t.Errorf("%d syncs for %d deliveries", syncs, n+1)
	} else {
		t.Logf("%d syncs for %d deliveries", syncs, n+1)
	}
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != n+1 {
		t.Errorf("%d messages in new/, want %d", len(got), n+1)
	}
}

// Close retires every segment, and a delivery after Close fails.
func TestSpoolCloseRetires(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, journalOptions{rotateEvery: time.Hour, maxSegment: 100}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(segments(t, dir)) == 0 {
		t.Fatal("no segment before Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("segments left after Close: %v", segs)
	}
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 5 {
		t.Errorf("new/ = %v, want 5 messages", got)
	}
	if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(9)}); err == nil {
		t.Error("delivered after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The retirer deletes segments without Close, about once per rotation.
func TestSpoolRetiresInBackground(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, journalOptions{rotateEvery: 20 * time.Millisecond}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0), Envelope: testEnvelope(0)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segments(t, dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("segment never retired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkLoad(t, s, names[0], 0)
}

// A request larger than a group is still delivered, in a group of its own,
// and requests that do not fit in a group wait for the next one.
func TestSpoolDeliverLargerThanGroup(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, journalOptions{rotateEvery: time.Hour, maxGroup: 256}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := bytes.Repeat([]byte("x"), 64<<10)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			raw := testMessage(i)
			if i%4 == 0 {
				raw = append(raw, big...)
			}
			if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: raw}, ingest.Incoming{Raw: raw}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := listDir(t, filepath.Join(dir, SubNew)); len(got) != 32 {
		t.Errorf("%d messages in new/, want 32", len(got))
	}
	if got := journalNames(t, dir); len(got) != 32 {
		t.Errorf("the journal holds %d records, want 32", len(got))
	}
}

// The portable retirement (one fsync per file) finds each message where it
// is now.
func TestSpoolSyncEach(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.noXattr.Store(true)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}, ingest.Incoming{Raw: testMessage(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(names[1], true); err != nil {
		t.Fatal(err)
	}
	if err := s.syncEach(append(names, "1780272000.M1P2Q3.gone")); err != nil {
		t.Fatal(err)
	}
}

// One process at a time uses a spool's journal.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same spool succeeded")
	}
	s.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	s.Close()
}

// kill -9 while deliveries stream: after the restart, every message whose
// delivery returned is in new/ with its context, even though its file is
// lost (as after a power failure).
func TestSpoolReplayAfterKill(t *testing.T) {
	if dir := os.Getenv("CERTHARVEST_SPOOL_CRASH_DIR"); dir != "" {
		spoolCrashHelper(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolReplayAfterKill$")
	cmd.Env = append(os.Environ(), "CERTHARVEST_SPOOL_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		var name string
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &name, &i); err == nil {
			acked[name] = i
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("the helper acknowledged only %d messages", len(acked))
	}
	for name := range acked {
		os.Remove(filepath.Join(dir, SubNew, name))
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, i := range acked {
		checkLoad(t, s, name, i)
	}
}

// spoolCrashHelper delivers into dir from 8 goroutines, printing each
// message's name once delivered, until killed.
func spoolCrashHelper(dir string) {
	s, err := openSpool(dir, noRetirement(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var next atomic.Int64
	for range 8 {
		go func() {
			for {
				i := int(next.Add(1))
				names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(i), Envelope: testEnvelope(i)})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("%s %d\n", names[0], i)
				mu.Unlock()
			}
		}()
	}
	select {}
}
