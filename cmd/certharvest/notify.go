package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/publish"
)

// list --notify-command runs a command once for each certificate that
// enters the --expiring-within window, so that an operator can invite its
// owner to send a new signed message. "Once" is remembered in a state file
// (--notify-state; by default .notified in the certificate folder): a
// certificate is known by its SHA-256, so a new certificate for the same
// address, once it expires in turn, is notified again.

// DefaultNotifyTimeout bounds one run of the notify command.
const DefaultNotifyTimeout = time.Minute

// notifyStateName is the state file's name in the certificate folder.
const notifyStateName = ".notified"

// notifyFlags are list's flags for the notify command.
type notifyFlags struct {
	command, state string
}

func (f *notifyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.command, "notify-command", "", "run this shell `command` once per certificate entering the --expiring-within window")
	fs.StringVar(&f.state, "notify-state", "", "`file` remembering who was notified (default: .notified in the certificate folder)")
}

// check refuses --notify-command without the window it needs.
func (f *notifyFlags) check(within string) error {
	if f.command != "" && within == "" {
		return usagef("--notify-command needs --expiring-within (the window that starts a notice)")
	}
	return nil
}

// notifyRecord is a line of the state file: a certificate whose command
// ran and succeeded.
type notifyRecord struct {
	sha256, address string
	notAfter, at    time.Time
}

// notifyExpiring runs the notify command for each current certificate of
// the folder certs that expires by horizon and whose notice did not run
// yet, judged at at. A command that fails is not remembered: it runs again
// next time, and the error names it. The state file is rewritten
// atomically after each success, and keeps only the certificates that are
// still an address's current one.
func notifyExpiring(ctx context.Context, f *notifyFlags, r output.CertReader, at, horizon time.Time, stderr io.Writer) error {
	if f.command == "" {
		return nil
	}
	statePath := f.state
	if statePath == "" {
		folder, ok := r.(output.FolderReader)
		if !ok {
			return usagef("--notify-command with --store: give --notify-state FILE, where the notices sent are remembered")
		}
		statePath = filepath.Join(folder.Store.Dir(), notifyStateName)
	}
	unlock, err := lockFile(statePath + ".lock")
	if err != nil {
		return fmt.Errorf("notify state: %w", err)
	}
	defer unlock()
	done, err := readNotifyState(statePath)
	if err != nil {
		return err
	}
	current := map[string]bool{}
	var due []output.StoredCertificate
	err = r.Each(ctx, time.Time{}, func(c output.StoredCertificate, err error) error {
		if err != nil {
			return nil // list names it already
		}
		sum := sha256.Sum256(c.Cert.Raw)
		h := hex.EncodeToString(sum[:])
		current[h] = true
		if _, ok := done[h]; !ok && !c.Cert.NotAfter.After(horizon) {
			due = append(due, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: reading the certificates: %w", err)
	}
	pruned := false
	for h := range done {
		if !current[h] {
			delete(done, h) // replaced: its notice is no longer needed
			pruned = true
		}
	}
	var failed []string
	for _, c := range due {
		if err := runNotify(ctx, f.command, c, at, stderr); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.Address, err))
			continue
		}
		sum := sha256.Sum256(c.Cert.Raw)
		h := hex.EncodeToString(sum[:])
		done[h] = notifyRecord{sha256: h, address: c.Address, notAfter: c.Cert.NotAfter.UTC(), at: time.Now().UTC()}
		if err := writeNotifyState(statePath, done); err != nil {
			return err
		}
	}
	if len(due) == 0 && pruned {
		if err := writeNotifyState(statePath, done); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("the notify command failed for %d certificate(s), tried again next time:\n  %s",
			len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

// runNotify runs the notify command for c with sh -c, its address and
// expiry in the environment; what it prints goes to stderr (list's
// standard output is the list).
func runNotify(ctx context.Context, command string, c output.StoredCertificate, at time.Time, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultNotifyTimeout)
	defer cancel()
	sum := sha256.Sum256(c.Cert.Raw)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(),
		"CERTHARVEST_ADDRESS="+c.Address,
		"CERTHARVEST_NOT_AFTER="+c.Cert.NotAfter.UTC().Format(time.RFC3339),
		"CERTHARVEST_EXPIRED="+fmt.Sprint(at.After(c.Cert.NotAfter)),
		"CERTHARVEST_SHA256="+hex.EncodeToString(sum[:]),
		"CERTHARVEST_SUBJECT="+c.Cert.Subject.String(),
		"CERTHARVEST_PROFILE="+publish.Profile(c.Cert),
	)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("still running after %v: %w", DefaultNotifyTimeout, err)
		}
		return err
	}
	return nil
}

// readNotifyState reads the state file: a line per certificate notified,
// "SHA256 ADDRESS NOT_AFTER NOTIFIED_AT" (times in RFC 3339). A missing
// file is an empty state.
func readNotifyState(path string) (map[string]notifyRecord, error) {
	done := map[string]notifyRecord{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notify state: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var r notifyRecord
		var err1, err2 error
		if len(fields) == 4 {
			r.sha256, r.address = fields[0], fields[1]
			r.notAfter, err1 = time.Parse(time.RFC3339, fields[2])
			r.at, err2 = time.Parse(time.RFC3339, fields[3])
		}
		if len(fields) != 4 || len(r.sha256) != 64 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("notify state %s, line %d: want SHA256 ADDRESS NOT_AFTER NOTIFIED_AT", path, n)
		}
		done[r.sha256] = r
	}
	return done, nil
}

// writeNotifyState replaces the state file with done, atomically.
func writeNotifyState(path string, done map[string]notifyRecord) error {
	recs := make([]notifyRecord, 0, len(done))
	for _, r := range done {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].address != recs[j].address {
			return recs[i].address < recs[j].address
		}
		return recs[i].sha256 < recs[j].sha256
	})
	var b bytes.Buffer
	b.WriteString("# certharvest list --notify-command: certificates notified (SHA256 ADDRESS NOT_AFTER NOTIFIED_AT)\n")
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %s %s %s\n", r.sha256, r.address, r.notAfter.Format(time.RFC3339), r.at.Format(time.RFC3339))
	}
	if err := publish.WriteFileAtomic(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("notify state: %w", err)
	}
	return nil
}
