package maildir

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/internal/fsutil"
	"github.com/certharvest/certharvest/internal/testfs"
)

// archiveNow is the clock of the archive's tests.
var archiveNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// archivedFile is a message put in cur/ by a test: its Maildir name says
// its delivery (age before archiveNow) and its flags.
type archivedFile struct {
	age   time.Duration
	flags string // the Maildir info, ":2,ST" for a rejected message
	size  int    // random bytes: nothing compresses them
}

func (f archivedFile) name(i int) string {
	return fmt.Sprintf("%d.M1P1Q%d.test%s", archiveNow.Add(-f.age).Unix(), i, f.flags)
}

const day = 24 * time.Hour

// openArchiveSpool opens a spool in a new folder with the policy p (never
// swept in the background: the test sweeps) and puts files in its cur/.
// It returns their names, in the order given.
func openArchiveSpool(t *testing.T, p ArchivePolicy, files []archivedFile) (*Spool, []string) {
	t.Helper()
	p.SweepEvery, p.Now = -1, func() time.Time { return archiveNow }
	s, err := Open(t.TempDir(), Options{Archive: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name(i)
		path := filepath.Join(s.Dir(), SubCur, names[i])
		if err := os.WriteFile(path, randomBytes(f.size), 0o600); err != nil {
			t.Fatal(err)
		}
		// Written when it was delivered.
		at := archiveNow.Add(-f.age)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	return s, names
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// curNames lists cur/, sorted.
func curNames(t *testing.T, s *Spool) []string {
	t.Helper()
	names := listDir(t, filepath.Join(s.Dir(), SubCur))
	slices.Sort(names)
	return names
}

func sorted(names ...string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

// Archive flags a rejected message trashed (T) and an accepted one seen (S)
// only; both stay messages to scan.
func TestArchiveFlags(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Archive: ArchivePolicy{SweepEvery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}, ingest.Incoming{Raw: testMessage(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(names[0], true); err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(names[1], false); err != nil {
		t.Fatal(err)
	}
	if got, want := curNames(t, s), sorted(names[0]+":2,S", names[1]+":2,ST"); !slices.Equal(got, want) {
		t.Fatalf("cur/ = %v, want %v", got, want)
	}
	st := s.ArchiveStats()
	if st.Accepted.Messages != 1 || st.Rejected.Messages != 1 || st.Accepted.Bytes <= 0 || st.Rejected.Bytes <= 0 {
		t.Errorf("archive stats = %+v, want one accepted and one rejected message", st)
	}
	var walked []string
	err = ingest.WalkMessages(context.Background(), []string{s.Dir()}, func(path string) error {
		walked = append(walked, filepath.Base(path))
		return nil
	}, func(path string, err error) { t.Errorf("%s: %v", path, err) })
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(walked); !slices.Equal(walked, curNames(t, s)) {
		t.Errorf("scan walks %v, want %v", walked, curNames(t, s))
	}
}

// A sweep removes the messages older than their policy keeps, by the time
// their Maildir name gives, or their modification time when later (a name
// whose leading number is no time never ages a message): rejected ones
// (flag T, whatever other flags a mail client added) after KeepRejected;
// accepted ones, and any message without T, never while KeepAccepted is 0.
// An evicted message's context file goes with it.
func TestArchiveSweepAge(t *testing.T) {
	files := []archivedFile{
		{age: 8 * day, flags: ":2,ST"},   // 0: rejected, too old
		{age: 6 * day, flags: ":2,ST"},   // 1: rejected, young enough
		{age: 100 * day, flags: ":2,S"},  // 2: accepted
		{age: 30 * day, flags: ":2,FS"},  // 3: flagged by a client, not trashed
		{age: 8 * day, flags: ":2,RST"},  // 4: rejected, then replied to
		{age: 400 * day, flags: ""},      // 5: no Maildir info at all
		{age: time.Hour, flags: ":2,ST"}, // 6: rejected, just now
	}
	s, names := openArchiveSpool(t, ArchivePolicy{KeepRejected: 7 * day}, files)
	cur := filepath.Join(s.Dir(), SubCur)
	// A name without a time: its modification time, nine days ago.
	noTime := filepath.Join(cur, "junk:2,ST")
	os.WriteFile(noTime, []byte("x"), 0o600)
	os.Chtimes(noTime, archiveNow.Add(-9*day), archiveNow.Add(-9*day))
	// A name whose number is no time, written an hour ago: kept.
	notTime := filepath.Join(cur, "2.16-by-hand:2,ST")
	os.WriteFile(notTime, []byte("x"), 0o600)
	os.Chtimes(notTime, archiveNow.Add(-time.Hour), archiveNow.Add(-time.Hour))
	os.Mkdir(filepath.Join(cur, "folder:2,ST"), 0o700)           // not a message
	os.WriteFile(filepath.Join(cur, ".hidden:2,ST"), nil, 0o600) // not a message
	// The context file of message 0, left behind.
	base0, _, _ := strings.Cut(names[0], ":2,")
	os.WriteFile(s.metaPath(base0), []byte("{}"), 0o600)
	s.metaUsed.Store(true)

	res, err := s.sweepArchive()
	if err != nil {
		t.Fatal(err)
	}
	want := sorted(".hidden:2,ST", "2.16-by-hand:2,ST", "folder:2,ST", names[1], names[2], names[3], names[5], names[6])
	if got := curNames(t, s); !slices.Equal(got, want) {
		t.Errorf("cur/ = %v\nwant    %v", got, want)
	}
	if _, err := os.Stat(s.metaPath(base0)); !os.IsNotExist(err) {
		t.Errorf("the evicted message's context file is still there: %v", err)
	}
	st := s.ArchiveStats()
	if res.removed[EvictAge].Messages != 3 || st.Evicted[EvictAge] != 3 || st.Evicted[EvictSize] != 0 {
		t.Errorf("removed %+v, evicted %v; want 3 by age", res.removed, st.Evicted)
	}
	if st.Rejected.Messages != 3 || st.Accepted.Messages != 3 {
		t.Errorf("kept %+v, want 3 rejected and 3 others", st)
	}

	// Accepted mail kept 90 days: the two older messages without T go.
	s.archive.policy.KeepAccepted = 90 * day
	if _, err := s.sweepArchive(); err != nil {
		t.Fatal(err)
	}
	want = sorted(".hidden:2,ST", "2.16-by-hand:2,ST", "folder:2,ST", names[1], names[3], names[6])
	if got := curNames(t, s); !slices.Equal(got, want) {
		t.Errorf("with --keep-accepted 90d: cur/ = %v\nwant    %v", got, want)
	}
	if st := s.ArchiveStats(); st.Evicted[EvictAge] != 5 {
		t.Errorf("evicted by age: %d, want 5", st.Evicted[EvictAge])
	}
}

// Over its size cap, the archive loses its oldest rejected messages first,
// down to a sixteenth under the cap; accepted ones are kept, even when they
// alone are over it.
func TestArchiveSweepSize(t *testing.T) {
	const size = 64 << 10
	files := []archivedFile{
		{age: 10 * day, flags: ":2,S", size: size}, // 0: accepted, the oldest
		{age: 9 * day, flags: ":2,ST", size: size}, // 1
		{age: 8 * day, flags: ":2,ST", size: size}, // 2
		{age: 7 * day, flags: ":2,ST", size: size}, // 3
		{age: 1 * day, flags: ":2,ST", size: size}, // 4
		{age: day / 2, flags: ":2,S", size: size},  // 5: accepted
	}
	// 384 KiB over a cap of 256 KiB: 128 KiB, and 16 KiB more, must go.
	s, names := openArchiveSpool(t, ArchivePolicy{MaxBytes: 4 * size}, files)
	for _, n := range names {
		if st, _ := fsutil.StatAt(s.curDir, n); st.Usage != size {
			t.Fatalf("%s takes %d bytes of disk, want %d", n, st.Usage, size)
		}
	}
	res, err := s.sweepArchive()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := curNames(t, s), sorted(names[0], names[4], names[5]); !slices.Equal(got, want) {
		t.Errorf("cur/ = %v\nwant    %v", got, want)
	}
	st := s.ArchiveStats()
	if res.removed[EvictSize].Messages != 3 || st.Evicted[EvictSize] != 3 || st.Evicted[EvictAge] != 0 {
		t.Errorf("removed %+v, evicted %v; want 3 for the size", res.removed, st.Evicted)
	}
	if st.Rejected != (ArchiveCount{1, size}) || st.Accepted != (ArchiveCount{2, 2 * size}) {
		t.Errorf("kept %+v", st)
	}

	// A message archived over the cap asks for a sweep.
	s.archive.policy.MaxBytes = size
	names2, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(names2[0], false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.archive.sweepNow:
	default:
		t.Error("archiving over the size cap did not ask for a sweep")
	}
	// Accepted mail alone is over the cap: every rejected message goes,
	// no accepted one.
	if _, err := s.sweepArchive(); err != nil {
		t.Fatal(err)
	}
	if got, want := curNames(t, s), sorted(names[0], names[5]); !slices.Equal(got, want) {
		t.Errorf("accepted over the cap: cur/ = %v\nwant    %v", got, want)
	}
}

// Short of room for new mail, the spool removes archived rejected messages,
// oldest first, as many as the room asked for takes; never accepted ones.
// With room enough, nothing.
func TestMakeRoom(t *testing.T) {
	const size = 64 << 10
	files := []archivedFile{
		{age: 30 * day, flags: ":2,S", size: size},    // 0: accepted, the oldest
		{age: 3 * day, flags: ":2,ST", size: size},    // 1
		{age: 2 * day, flags: ":2,ST", size: size},    // 2
		{age: time.Hour, flags: ":2,ST", size: size},  // 3
		{age: 5 * day, flags: ":2,ST", size: size},    // 4: the oldest rejected
		{age: time.Minute, flags: ":2,S", size: size}, // 5: accepted
	}
	s, names := openArchiveSpool(t, ArchivePolicy{}, files)
	s.archive.headroom = 0
	var free atomic.Uint64
	s.archive.freeSpace = func(string) (uint64, error) { return free.Load(), nil }

	free.Store(1 << 30)
	if err := s.MakeRoom(context.Background(), 100<<10); err != nil {
		t.Fatal(err)
	}
	if got := curNames(t, s); len(got) != len(files) {
		t.Fatalf("with room enough, cur/ = %v", got)
	}

	// No room: 100 KiB and roomSlack (64 KiB) take three messages.
	free.Store(0)
	if err := s.MakeRoom(context.Background(), 100<<10); err != nil {
		t.Fatal(err)
	}
	if got, want := curNames(t, s), sorted(names[0], names[3], names[5]); !slices.Equal(got, want) {
		t.Errorf("cur/ = %v\nwant    %v", got, want)
	}
	if st := s.ArchiveStats(); st.Evicted[EvictPressure] != 3 {
		t.Errorf("evicted %v, want 3 under pressure", st.Evicted)
	}
	// More than there is: every rejected message goes, no accepted one.
	if err := s.MakeRoom(context.Background(), 10<<20); err != nil {
		t.Fatal(err)
	}
	if got, want := curNames(t, s), sorted(names[0], names[5]); !slices.Equal(got, want) {
		t.Errorf("cur/ = %v\nwant    %v", got, want)
	}
}

// fullDisk is a journal segment whose writes fail with ENOSPC while full
// is set, as on a full disk.
type fullDisk struct {
	segmentFile
	full *atomic.Int32 // writes to fail
}

func (f fullDisk) Write(p []byte) (int, error) {
	if f.full.Add(-1) >= 0 {
		return 0, &fs.PathError{Op: "write", Path: "segment", Err: syscall.ENOSPC}
	}
	return f.segmentFile.Write(p)
}

// A delivery that finds the disk full makes room, from the archive's
// rejected messages, and succeeds; one that finds it full of accepted mail
// fails, and no accepted message is removed.
func TestDeliverMakesRoom(t *testing.T) {
	var full atomic.Int32
	jopts := journalOptions{createSegment: func(path string) (segmentFile, error) {
		f, err := createSegment(path)
		return fullDisk{f, &full}, err
	}}
	s, err := openSpool(t.TempDir(), jopts, Options{Archive: ArchivePolicy{SweepEvery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.archive.headroom = 0
	s.archive.freeSpace = func(string) (uint64, error) { return 0, nil }
	old, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}, ingest.Incoming{Raw: testMessage(1)})
	if err != nil {
		t.Fatal(err)
	}
	s.Archive(old[0], false)
	s.Archive(old[1], true)

	full.Store(1)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(2), Envelope: testEnvelope(2)})
	if err != nil {
		t.Fatalf("delivery on a disk full of rejected mail: %v", err)
	}
	checkLoad(t, s, names[0], 2)
	if got, want := curNames(t, s), []string{old[1] + ":2,S"}; !slices.Equal(got, want) {
		t.Errorf("cur/ = %v, want %v", got, want)
	}
	if st := s.ArchiveStats(); st.Evicted[EvictPressure] != 1 {
		t.Errorf("evicted %v, want 1 under pressure", st.Evicted)
	}

	full.Store(2) // the retry too
	if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(3)}); !fsutil.IsNoSpace(err) {
		t.Errorf("delivery on a disk full of accepted mail: %v, want ENOSPC", err)
	}
	if got, want := curNames(t, s), []string{old[1] + ":2,S"}; !slices.Equal(got, want) {
		t.Errorf("cur/ = %v, want %v", got, want)
	}
}

// FreeSpace counts what MakeRoom can free: the archive's rejected
// messages, not its accepted ones.
func TestFreeSpaceCountsRejected(t *testing.T) {
	s, _ := openArchiveSpool(t, ArchivePolicy{}, []archivedFile{{age: day, flags: ":2,ST", size: 64 << 10}, {age: day, flags: ":2,S", size: 64 << 10}})
	s.archive.freeSpace = func(string) (uint64, error) { return 1000, nil }
	if _, err := s.sweepArchive(); err != nil { // counts them
		t.Fatal(err)
	}
	free, err := s.FreeSpace()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1000 + uint64(s.ArchiveStats().Rejected.Bytes) + uint64(s.journal.bytes.Load()); free != want || want < 1000+64<<10 {
		t.Errorf("FreeSpace = %d, want %d", free, want)
	}
}

// On a real full disk, a message whose journal record fits but whose file
// does not is delivered all the same: the journal's copy is retired early,
// rejected mail removed, and the file placed and made durable.
func TestDeliverOnFullDisk(t *testing.T) {
	small := testfs.MountTmpfs(t, "1m")
	s, err := Open(filepath.Join(small, "spool"), Options{Archive: ArchivePolicy{SweepEvery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := append(testMessage(7), randomBytes(200<<10)...)
	// Rejected mail fills the disk until the journal's copy of msg fits,
	// and its file no more.
	for i := 0; ; i++ {
		free, err := freeSpace(s.Dir())
		if err != nil {
			t.Fatal(err)
		}
		if free < uint64(len(msg)+100<<10) {
			break
		}
		name := archivedFile{age: day, flags: ":2,ST"}.name(i)
		if err := os.WriteFile(filepath.Join(s.Dir(), SubCur, name), randomBytes(64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.sweepArchive(); err != nil {
		t.Fatal(err)
	}
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: msg, Envelope: testEnvelope(7)})
	if err != nil {
		t.Fatalf("delivery on a disk full of rejected mail: %v", err)
	}
	m, err := load(s, names[0], 1<<20)
	if err != nil || !bytes.Equal(m.Raw, msg) {
		t.Fatalf("delivered message: %v", err)
	}
	if st := s.ArchiveStats(); st.Evicted[EvictPressure] == 0 {
		t.Errorf("evicted %v, want some under pressure", st.Evicted)
	}
}

// Messages over ingest.DefaultSpillBytes take files of their own, from Deliver
// and from an ingest.MessageWriter alike: on a disk full of rejected mail, they
// too make room before failing.
func TestDeliverLargeOnFullDisk(t *testing.T) {
	for _, via := range []string{"Deliver", "ingest.MessageWriter"} {
		t.Run(via, func(t *testing.T) {
			small := testfs.MountTmpfs(t, "2m")
			s, err := Open(filepath.Join(small, "spool"), Options{Archive: ArchivePolicy{SweepEvery: -1}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			msg := append(testMessage(8), randomBytes(600<<10)...)
			for i := 0; ; i++ {
				free, err := freeSpace(s.Dir())
				if err != nil {
					t.Fatal(err)
				}
				if free < 64<<10 {
					break
				}
				name := archivedFile{age: day, flags: ":2,ST"}.name(i)
				if err := os.WriteFile(filepath.Join(s.Dir(), SubCur, name), randomBytes(32<<10), 0o600); err != nil {
					break // full
				}
			}
			if _, err := s.sweepArchive(); err != nil {
				t.Fatal(err)
			}
			var name string
			if via == "Deliver" {
				var names []string
				names, err = s.Deliver(context.Background(), ingest.Incoming{Raw: msg, Envelope: testEnvelope(8)})
				if err == nil {
					name = names[0]
				}
			} else {
				w := s.NewWriter(ingest.MessageWriterOptions{})
				if _, werr := w.Write(msg); werr != nil {
					t.Fatalf("receiving on a disk full of rejected mail: %v", werr)
				}
				name, err = deliverWriter(s, w, testEnvelope(8))
			}
			if err != nil {
				t.Fatalf("delivery on a disk full of rejected mail: %v", err)
			}
			m, err := load(s, name, 1<<20)
			if err != nil || !bytes.Equal(m.Raw, msg) {
				t.Fatalf("delivered message: %v", err)
			}
			if st := s.ArchiveStats(); st.Evicted[EvictPressure] == 0 {
				t.Errorf("evicted %v, want some under pressure", st.Evicted)
			}
		})
	}
}
