package maildir

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certharvest/certharvest/ingest"
	"github.com/certharvest/certharvest/verify"
)

// Deliveries are written unnamed and linked into new/ where the system
// allows (Linux, O_TMPFILE), else through tmp/ (named=true); without
// extended attributes the context goes in meta/ (xattr=false), which always
// goes through tmp/.
func TestSpoolDeliverAndLoad(t *testing.T) {
	for _, mode := range []struct{ xattr, named bool }{{true, false}, {true, true}, {false, false}} {
		t.Run(fmt.Sprintf("xattr=%v,named=%v", mode.xattr, mode.named), func(t *testing.T) {
			testSpoolDeliverAndLoad(t, mode.xattr, mode.named)
		})
	}
}

func testSpoolDeliverAndLoad(t *testing.T, xattr, named bool) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.noXattr.Store(!xattr)
	if named {
		s.unnamed = false
	} else if xattr && !s.unnamed && runtime.GOOS == "linux" {
		t.Logf("O_TMPFILE unsupported in %s: unnamed deliveries not tested", dir)
	}
	raw := []byte("From: a@example.com\r\n\r\nbody\r\n")
	env := verify.Envelope{Source: "smtp", EnvelopeFrom: "a@example.com", EnvelopeTo: []string{"in@example.org"},
		RemoteAddr: "192.0.2.1:4567", Received: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Extra: map[string]string{"helo": "mx.example.com"}}
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: raw, Envelope: env}, ingest.Incoming{Raw: raw, Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("names = %v", names)
	}
	if news, _ := os.ReadDir(filepath.Join(dir, SubNew)); len(news) != 2 {
		t.Errorf("new/ holds %d files, want 2", len(news))
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, SubTmp)); len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
	meta, _ := os.ReadDir(filepath.Join(dir, SubMeta))
	if xattr && !s.noXattr.Load() && len(meta) != 0 {
		t.Errorf("context in meta/ although the file system has extended attributes: %v", meta)
	}
	if !xattr && len(meta) != 2 {
		t.Errorf("meta/ holds %d files, want 2", len(meta))
	}
	m, err := load(s, names[0], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Raw) != string(raw) {
		t.Errorf("the message bytes changed: %q", m.Raw)
	}
	if m.Source != "smtp" || m.EnvelopeFrom != env.EnvelopeFrom || m.RemoteAddr != env.RemoteAddr ||
		!m.Received.Equal(env.Received) || m.Extra["helo"] != "mx.example.com" || len(m.EnvelopeTo) != 1 {
		t.Errorf("context lost: %+v", m)
	}
	// Too large to read: still its context, and its id as the input that
	// took it computed it (verify.MessageIDFor of its bytes).
	big, err := load(s, names[1], 10)
	if verify.ReasonOf(err) != verify.ReasonTooLarge {
		t.Fatalf("LoadFile over the limit: %v, want %s", err, verify.ReasonTooLarge)
	}
	if want := verify.MessageIDFor(&verify.Message{Raw: raw}); big.ID != want || verify.MessageIDFor(big) != want {
		t.Errorf("id of the message too large = %q, want %q", big.ID, want)
	}
	if big.Raw != nil || big.Source != "smtp" || big.EnvelopeFrom != env.EnvelopeFrom || big.RemoteAddr != env.RemoteAddr ||
		!big.Received.Equal(env.Received) || big.Path == "" {
		t.Errorf("message too large: context lost or bytes kept: %+v", big)
	}
	if err := s.Archive(names[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SubCur, names[0]+":2,S")); err != nil {
		t.Error("not archived in cur/ with the seen flag:", err)
	}
	if _, err := os.Stat(s.metaPath(names[0])); !os.IsNotExist(err) {
		t.Error("context file left behind")
	}
	if err := s.Archive(names[0], true); err != nil {
		t.Errorf("archiving twice: %v", err)
	}
	if _, err := load(s, names[0], 1<<20); !os.IsNotExist(err) {
		t.Errorf("LoadFile of an archived message: %v, want not-exist", err)
	}
}

// A message an MTA delivered has no context file: source maildir, the
// received time from its name.
func TestSpoolLoadMTADelivery(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name := "1780272000.M1P2Q3.mx"
	os.WriteFile(filepath.Join(dir, SubNew, name), []byte("From: a@example.com\r\n\r\nx\r\n"), 0o600)
	m, err := load(s, name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "maildir" || m.Received.Unix() != 1780272000 {
		t.Errorf("source %q, received %v", m.Source, m.Received)
	}
}

// When a delivery cannot complete, nothing of it is left in new/.
func TestSpoolDeliverAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.noXattr.Store(true) // a file system without extended attributes
	os.RemoveAll(filepath.Join(dir, SubMeta))
	os.WriteFile(filepath.Join(dir, SubMeta), nil, 0o600) // a file where the folder was
	_, err = s.Deliver(context.Background(), ingest.Incoming{Raw: []byte("a")}, ingest.Incoming{Raw: []byte("b")})
	if err == nil {
		t.Fatal("Deliver succeeded without a meta folder")
	}
	for _, sub := range []string{SubNew, SubTmp} {
		if entries, _ := os.ReadDir(filepath.Join(dir, sub)); len(entries) != 0 {
			t.Errorf("%s/ holds %d files after a failed delivery", sub, len(entries))
		}
	}
	if err := s.Room(context.Background(), 0); err != nil {
		t.Errorf("Room: %v", err)
	}
}

func TestSpoolConcurrentDeliveries(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	const n = 200
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: []byte("From: a@example.com\r\n\r\n")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, _ := os.ReadDir(filepath.Join(dir, SubNew))
	if len(entries) != n {
		t.Errorf("%d messages in new/, want %d", len(entries), n)
	}
}

// A message without the context attribute finds its context file in meta/
// when the spool holds such files: written by an earlier run on a file
// system without extended attributes, or because one context was too large
// for an attribute. Archive removes it.
func TestSpoolLoadMetaFromEarlierRun(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.noXattr.Store(true)
	env := verify.Envelope{Source: "webhook", EnvelopeFrom: "a@example.com", Received: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0), Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The next run: extended attributes would work, but this message has
	// its context in meta/.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.metaUsed.Load() {
		t.Error("metaUsed is false with a context file in meta/")
	}
	m, err := load(s, names[0], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "webhook" || m.EnvelopeFrom != env.EnvelopeFrom || !m.Received.Equal(env.Received) {
		t.Errorf("context lost: source %q, from %q, received %v", m.Source, m.EnvelopeFrom, m.Received)
	}
	if err := s.Archive(names[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.metaPath(names[0])); !os.IsNotExist(err) {
		t.Error("context file left behind:", err)
	}
}

// A message's stored context is its context as it was stored, a field it
// lacks zero (not an MTA delivery's source); one that does not decode is
// none at all, not half of one.
func TestSpoolLoadStoredContext(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.noXattr.Store(true)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0), Envelope: verify.Envelope{Source: "smtp"}})
	if err != nil {
		t.Fatal(err)
	}
	received := deliveryTime(names[0], time.Time{})
	for _, tt := range []struct {
		stored string
		want   verify.Envelope
	}{
		{`{"envelope_from":"a@example.com"}`, verify.Envelope{EnvelopeFrom: "a@example.com", Received: received}},
		{`{"envelope_from":"a@example.com","received":1}`, verify.Envelope{Source: "maildir", Received: received}},
		{`{"source":`, verify.Envelope{Source: "maildir", Received: received}},
	} {
		if err := os.WriteFile(s.metaPath(names[0]), []byte(tt.stored), 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := load(s, names[0], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Envelope, tt.want) {
			t.Errorf("%s: context %+v, want %+v", tt.stored, m.Envelope, tt.want)
		}
	}
}

// A spool whose meta/ is empty does not look there, until it writes a
// context file itself.
func TestSpoolMetaUsed(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.metaUsed.Load() {
		t.Error("metaUsed with an empty meta/")
	}
	if _, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(0)}); err != nil {
		t.Fatal(err)
	}
	if s.metaUsed.Load() != s.noXattr.Load() {
		t.Errorf("metaUsed = %v after a delivery with noXattr = %v", s.metaUsed.Load(), s.noXattr.Load())
	}
	s.noXattr.Store(true)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: testMessage(1), Envelope: verify.Envelope{Source: "smtp"}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.metaUsed.Load() {
		t.Error("metaUsed is false after writing a context file")
	}
	if m, err := load(s, names[0], 1<<20); err != nil || m.Source != "smtp" {
		t.Errorf("LoadFile: source %q, %v", m.Source, err)
	}
}

// The leading seconds of a Maildir name are read as fmt.Sscanf(name, "%d.")
// reads them.
func TestNameSeconds(t *testing.T) {
	for _, name := range []string{
		"1780308000.M1P42Q7.mx", "1780308000.", "0001780308000.x", "1.2", "0.x", "9223372036854775807.x",
		"9223372036854775808.x", "99999999999999999999.x", "+1780308000.x", "-5.x", " 17.x", "17", "17x.y",
		"17:2,S", "", ".17", "x17.y", "1780308000.M1P42Q7.mx:2,S",
	} {
		var want int64
		_, err := fmt.Sscanf(name, "%d.", &want)
		got, ok := nameSeconds(name)
		if ok != (err == nil) || ok && got != want {
			t.Errorf("nameSeconds(%q) = %d, %v; Sscanf gives %d, %v", name, got, ok, want, err)
		}
	}
}

// After Close, LoadFile and Archive fail: the folders they use are closed.
func TestSpoolClosed(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	name := "1780272000.M1P2Q3.mx"
	if err := os.WriteFile(filepath.Join(dir, SubNew, name), testMessage(0), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := load(s, name, 1<<20); err == nil && runtime.GOOS == "linux" {
		t.Error("LoadFile after Close succeeded")
	}
	if err := s.Archive(name, true); err == nil && runtime.GOOS == "linux" {
		t.Error("Archive after Close succeeded")
	}
}

// A message's context is stored as this JSON (in spools written before
// and after): its member names and order are a stored format.
func TestEnvelopeEncoding(t *testing.T) {
	for _, tt := range []struct {
		env  verify.Envelope
		want string
	}{
		{verify.Envelope{}, `{"source":"","received":"0001-01-01T00:00:00Z"}`},
		{verify.Envelope{Source: "smtp", EnvelopeFrom: "a@example.com", EnvelopeTo: []string{"in@example.org"},
			RemoteAddr: "192.0.2.1:25", Received: time.Date(2026, 6, 1, 12, 0, 0, 5, time.UTC), Extra: map[string]string{"helo": "mx"}},
			`{"source":"smtp","envelope_from":"a@example.com","envelope_to":["in@example.org"],"remote_addr":"192.0.2.1:25",` +
				`"received":"2026-06-01T12:00:00.000000005Z","extra":{"helo":"mx"}}`},
	} {
		got, err := json.Marshal(tt.env)
		if err != nil || string(got) != tt.want {
			t.Errorf("%+v: %s, %v; want %s", tt.env, got, err, tt.want)
		}
	}
}

// decodeEnvelope decodes a context as encoding/json does: what Deliver
// wrote, and anything else an extended attribute or a meta/ file may hold.
func TestDecodeEnvelope(t *testing.T) {
	for _, data := range envelopeSamples(t) {
		checkDecodeEnvelope(t, []byte(data))
	}
}

// envelopeSamples are contexts as Deliver writes them, and odd ones.
func envelopeSamples(t testing.TB) []string {
	written, err := json.Marshal(verify.Envelope{Source: "webhook", EnvelopeFrom: "a@example.com",
		EnvelopeTo: []string{"in@example.org", "b@example.org"}, RemoteAddr: "[2001:db8::1]:25",
		Received: time.Date(2026, 6, 1, 12, 34, 56, 789, time.FixedZone("", 2*3600)),
		Extra:    map[string]string{"msys.relay_message.msg_from": "a@example.com", "héllo": "wörld\u2028<&>"}})
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		string(written),
		`{}`,
		`{"source":"smtp"}`,
		`{"SOURCE":"smtp","Envelope_From":"a@example.com"}`,
		`{"envelopefrom":"a@example.com","envelope-from":"b@example.com"}`,
		`{"source":"smtp","source":"webhook"}`,
		`{"source":"smtp","Source":"webhook"}`,
		`{"source":"a` + "\xff\xfe" + `b","extra":{"k` + "\xc3" + `":"v"}}`,
		`{"source":"\ud800x"}`,
		`{"source":null,"envelope_to":null,"extra":null,"received":null}`,
		`{"received":"2026-06-01T00:00:00Z"}`,
		`{"received":"2026-06-01T00:00:00.123456789+05:30"}`,
		`{"received":"2026-06-01 00:00:00"}`,
		`{"received":"2026-06-01T24:00:00Z"}`,
		`{"received":1780308000}`,
		`{"envelope_to":"in@example.org"}`,
		`{"envelope_to":["a",1]}`,
		`{"extra":{"a":"1","a":"2"}}`,
		`{"extra":{"a":1}}`,
		`{"unknown":{"x":[1,2,{"y":null}]},"source":"smtp"}`,
		`{"source":"smtp"} `,
		`{"source":"smtp"}x`,
		`{"source":"smtp",}`,
		`[]`,
		`null`,
		``,
		`{"source":"smtp"`,
	}
}

// checkDecodeEnvelope checks that decodeEnvelope and encoding/json agree on
// data: both fail, or both give the same context.
func checkDecodeEnvelope(t *testing.T, data []byte) {
	t.Helper()
	var want, got verify.Envelope
	wantErr := json.Unmarshal(data, &want)
	gotErr := decodeEnvelope(data, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Errorf("%q: error %v, encoding/json's %v", data, gotErr, wantErr)
		return
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("%q:\n got %+v\nwant %+v", data, got, want)
	}
}

// A spool folder made group-writable for the MTA (docs/DEPLOYMENT.md) gets
// a group-writable Maildir, whatever the umask; otherwise it stays
// certharvest's alone.
func TestSpoolMaildirFollowsGroupAccess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	for _, tc := range []struct {
		root, want fs.FileMode
	}{
		{0o700, 0o700},
		{0o770 | fs.ModeSetgid, 0o770 | fs.ModeSetgid},
		{0o770, 0o770},
	} {
		dir := filepath.Join(t.TempDir(), "spool")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.root); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, sub := range []string{SubTmp, SubNew, SubCur} {
			info, err := os.Stat(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode() & (fs.ModePerm | fs.ModeSetgid); got != tc.want {
				t.Errorf("spool %v: %s/ is %v, want %v", tc.root, sub, got, tc.want)
			}
		}
	}
}

// Room: the folders take new files and, for a size, FreeSpace has room for
// it; where the system cannot tell the free space, there is room.
func TestSpoolRoom(t *testing.T) {
	const size = 1 << 20
	for _, tt := range []struct {
		name    string
		free    uint64
		freeErr error
		want    string // "" for nil; "no room" for a *ingest.NoRoomError
	}{
		{"plenty", 10 << 30, nil, ""},
		{"room for it exactly", size, nil, ""},
		{"free space unknown here", 0, errors.ErrUnsupported, ""},
		{"disk full", 0, nil, "no room"},
		{"one byte short", size - 1, nil, "no room"},
		{"statfs fails", 0, errors.New("statfs: input/output error"), "free space: statfs: input/output error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpool(t)
			s.archive.freeSpace = func(string) (uint64, error) { return tt.free, tt.freeErr }
			err := s.Room(context.Background(), size)
			noRoom, isNoRoom := errors.AsType[*ingest.NoRoomError](err)
			switch {
			case tt.want == "" && err != nil,
				tt.want == "no room" && (!isNoRoom || noRoom.Free != tt.free || noRoom.Need != size),
				tt.want != "" && tt.want != "no room" && (err == nil || err.Error() != tt.want):
				t.Errorf("Room(%d) = %v, want %s", size, err, cmp.Or(tt.want, "nil"))
			}
			// Room for any message does not look at the free space.
			if err := s.Room(context.Background(), 0); err != nil {
				t.Errorf("Room(0) = %v", err)
			}
		})
	}
}

// LoadFile reserves a message's bytes before it reads them
// (ReadOptions.Reserve), and tells the version of the file it read, as
// Version tells it afterwards.
func TestLoadFileReserve(t *testing.T) {
	s := testSpool(t)
	names, err := s.Deliver(context.Background(), ingest.Incoming{Raw: []byte("Subject: x\r\n\r\nbody\r\n"), Envelope: verify.Envelope{Source: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	var reserved []int64
	reserve := func(size int64) { reserved = append(reserved, size) }
	m, version, err := s.LoadFile(names[0], ingest.ReadOptions{MaxSize: 4096, Reserve: reserve})
	if err != nil || !slices.Equal(reserved, []int64{int64(len(m.Raw))}) {
		t.Fatalf("LoadFile: %v, reserved %v for %d bytes", err, reserved, len(m.Raw))
	}
	now, err := s.Version(names[0])
	if err != nil || version.Size != int64(len(m.Raw)) || now.Size != version.Size || !now.ModTime.Equal(version.ModTime) {
		t.Fatalf("version read %+v, now %+v (%v); want both the file's, %d bytes", version, now, err, len(m.Raw))
	}
}
