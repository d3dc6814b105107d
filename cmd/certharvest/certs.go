package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const listUsage = `Usage: certharvest list [--certs DIR | --store URL] [--expiring-within DURATION] [--json] [--wide]
                        [--notify-command CMD [--notify-state FILE]]

List the stored certificates: address, expiry, key, subject and issuer,
soonest expiry first, so an operator can invite the people whose
certificates are about to expire to send a new signed message. The table
fits 100 columns: the subject's and the issuer's common names, shortened
with … if need be; --wide prints their whole names.

A certificate file that cannot be read or parsed is left out: the others
are listed, the skipped files are named on standard error, and the exit
status is 1.

With --notify-command, the command runs (sh -c) once per certificate that
enters the --expiring-within window, with CERTHARVEST_ADDRESS,
CERTHARVEST_NOT_AFTER, CERTHARVEST_EXPIRED, CERTHARVEST_SHA256,
CERTHARVEST_SUBJECT and CERTHARVEST_PROFILE in its environment; what it
prints goes to standard error. A run that succeeded is remembered in
--notify-state (default .notified in the certificate folder), so the next
list does not run it again; a failed one runs again next time (exit status
1).

Examples:
  certharvest list --certs /var/lib/certharvest/certs
  certharvest list --expiring-within 30d          # expired or expiring in 30 days
  certharvest list --json | jq -r '.[].address'
  certharvest list --expiring-within 30d --notify-command '/usr/local/bin/invite "$CERTHARVEST_ADDRESS"'
`

const showUsage = `Usage: certharvest show [--certs DIR | --store URL] [--pem] ADDRESS

Print one stored certificate, like "openssl x509 -text" but short: subject,
addresses, issuer, validity, key, fingerprints and the replaced certificates
kept in the history. The address is normalised as the pipeline does.

Examples:
  certharvest show --certs /var/lib/certharvest/certs bob@example.com
  certharvest show --pem Bob@Example.com > bob.crt
`

// listArgs are list's flags.
type listArgs struct {
	certs, within, at string
	asJSON, wide      bool
	store             storeFlags
	notify            notifyFlags
}

// newListCommand returns list's command and the flags it sets.
func newListCommand(stdout io.Writer) (*command, *listArgs) {
	cmd := newCommand("list", listUsage, stdout)
	a := &listArgs{}
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	a.store.register(cmd.fs)
	cmd.fs.StringVar(&a.within, "expiring-within", "", "only certificates expired or expiring within this `duration` (e.g. 30d, 72h)")
	cmd.fs.BoolVar(&a.asJSON, "json", false, "print a JSON array")
	cmd.fs.BoolVar(&a.wide, "wide", false, "print whole subject and issuer names, however wide the table")
	cmd.fs.StringVar(&a.at, "at", "", "judge expiry at this `time` (RFC 3339; default now)")
	a.notify.register(cmd.fs)
	return cmd, a
}

// runList lists the stored certificates with the flags a; the command
// line has been read.
func runList(ctx context.Context, a *listArgs, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	if err := a.notify.check(a.within); err != nil {
		return err
	}
	at := time.Now()
	if a.at != "" {
		t, err := time.Parse(time.RFC3339, a.at)
		if err != nil {
			return usagef("--at %q: want RFC 3339", a.at)
		}
		at = t
	}
	var horizon time.Time
	if a.within != "" {
		d, err := parseDays(a.within)
		if err != nil {
			return usagef("--expiring-within: %v", err)
		}
		horizon = at.Add(d)
	}
	store, where, closeStore, err := a.store.openReader(ctx, a.certs)
	if err != nil {
		return err
	}
	defer closeStore()
	addrs, err := store.Addresses(ctx)
	if err != nil {
		return fmt.Errorf("listing %s: %w", where, err)
	}
	certs := []listRow{}
	// A file that cannot be read or parsed is left out, not fatal: the
	// others are listed all the same, and the skipped ones are named at
	// the end (exit status 1).
	var skipped []string
	for _, addr := range addrs {
		path, _ := store.Path(addr)
		c, err := store.Load(ctx, addr)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the folder was listed
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		if !horizon.IsZero() && c.NotAfter.After(horizon) {
			continue
		}
		certs = append(certs, listRow{lookup.Describe(addr, path, c, at), c.Subject.CommonName, c.Issuer.CommonName})
	}
	sort.Slice(certs, func(i, j int) bool {
		if !certs[i].NotAfter.Equal(certs[j].NotAfter) {
			return certs[i].NotAfter.Before(certs[j].NotAfter)
		}
		return certs[i].Address < certs[j].Address
	})
	if err := writeList(stdout, certs, a.asJSON, a.wide); err != nil {
		return err
	}
	err = notifyExpiring(ctx, &a.notify, store, at, horizon, stderr)
	if len(skipped) > 0 {
		return errors.Join(fmt.Errorf("left out %d unreadable certificate file(s); the others are listed:\n  %s",
			len(skipped), strings.Join(skipped, "\n  ")), err)
	}
	return err
}

// listRow is a certificate as list prints it.
type listRow struct {
	lookup.StoredCert
	// subjectCN and issuerCN are the common names, for the narrow table.
	subjectCN, issuerCN string
}

// listWidth is the width list's table fits without --wide.
const listWidth = 100

// writeList prints list's table, or its JSON array: the lookup API's JSON
// answers, one per certificate. The table fits listWidth columns unless
// wide: the subject's and the issuer's common names (their whole names
// when they have none), shortened to fit.
func writeList(w io.Writer, rows []listRow, asJSON, wide bool) error {
	if asJSON {
		certs := make([]lookup.StoredCert, len(rows))
		for i, r := range rows {
			certs[i] = r.StoredCert
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(certs)
	}
	table := [][]string{{"ADDRESS", "NOT AFTER", "KEY", "SUBJECT", "ISSUER"}}
	for _, c := range rows {
		expiry := c.NotAfter.Format(time.DateOnly)
		if c.Expired {
			expiry += " (expired)"
		}
		subject, issuer := c.Subject, c.Issuer
		if !wide {
			subject, issuer = cmp.Or(c.subjectCN, c.Subject), cmp.Or(c.issuerCN, c.Issuer)
		}
		table = append(table, []string{c.Address, expiry, c.Key, subject, issuer})
	}
	widths := columnWidths(table)
	if !wide {
		fitLastTwo(widths, listWidth)
	}
	var b strings.Builder
	for _, row := range table {
		b.Reset()
		for i, cell := range row {
			cell = shorten(cell, widths[i])
			if i == len(row)-1 {
				b.WriteString(cell)
				break
			}
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// columnWidths returns the width of each column of table, in runes.
func columnWidths(table [][]string) []int {
	widths := make([]int, len(table[0]))
	for _, row := range table {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	return widths
}

// fitLastTwo narrows the last two columns so that the table, with two
// spaces between columns, fits width: a column that fits in half the room
// keeps its width and the other takes the rest; else each gets half.
// Neither goes below minColumn.
func fitLastTwo(widths []int, width int) {
	const minColumn = 10
	n := len(widths)
	room := width - 2*(n-1)
	for _, w := range widths[:n-2] {
		room -= w
	}
	a, b := &widths[n-2], &widths[n-1]
	switch {
	case *a+*b <= room:
		return
	case *a <= room/2:
		*b = room - *a
	case *b <= room/2:
		*a = room - *b
	default:
		*a, *b = room/2, room-room/2
	}
	*a, *b = max(*a, minColumn), max(*b, minColumn)
}

// shorten cuts s to n runes, its last one an ellipsis, when it is longer.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// showArgs are show's flags.
type showArgs struct {
	certs string
	asPEM bool
	store storeFlags
}

// newShowCommand returns show's command and the flags it sets.
func newShowCommand(stdout io.Writer) (*command, *showArgs) {
	cmd := newCommand("show", showUsage, stdout)
	a := &showArgs{}
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	a.store.register(cmd.fs)
	cmd.fs.BoolVar(&a.asPEM, "pem", false, "print the certificate as PEM only")
	return cmd, a
}

// runShow prints the certificate of args[0] with the flags a; the command
// line has been read.
func runShow(ctx context.Context, a *showArgs, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usagef("want exactly one ADDRESS")
	}
	addr, err := verify.NormalizeAddress(args[0])
	if err != nil {
		return usageError{err.Error()}
	}
	store, where, closeStore, err := a.store.openReader(ctx, a.certs)
	if err != nil {
		return err
	}
	defer closeStore()
	stored, err := store.LoadStored(ctx, addr)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no certificate for %s in %s", addr, where)
	}
	if err != nil {
		return fmt.Errorf("reading the certificate of %s: %w", addr, err)
	}
	c := stored.Cert
	if a.asPEM {
		_, err := stdout.Write(output.EncodeCertificatePEM(c))
		return err
	}
	writeCertificate(stdout, c)
	if len(stored.Capabilities) > 0 {
		fmt.Fprintf(stdout, "Capabilities: %s\n", strings.Join(stored.Capabilities, ", "))
	}
	if s := stored.Signing; s != nil {
		fmt.Fprintf(stdout, "Signs with:   another certificate (this one is to encrypt to): %s  %s, valid %s to %s\n",
			fingerprint(s), verify.KeyDescription(s.PublicKey), s.NotBefore.Format(time.DateOnly), s.NotAfter.Format(time.DateOnly))
	}
	history, _ := store.History(ctx, addr)
	if len(history) > 0 {
		fmt.Fprintf(stdout, "Replaced:     %d earlier certificate(s) kept in the history:\n", len(history))
		for _, h := range history {
			fmt.Fprintf(stdout, "              %s  valid %s to %s\n", fingerprint(h), h.NotBefore.Format(time.DateOnly), h.NotAfter.Format(time.DateOnly))
		}
	}
	return nil
}

// writeCertificate prints the essentials of a certificate.
func writeCertificate(w io.Writer, c *x509.Certificate) {
	info := verify.DescribeCertificate(c)
	fmt.Fprintf(w, "Subject:      %s\n", info.Subject)
	fmt.Fprintf(w, "Addresses:    %s\n", strings.Join(info.Emails, ", "))
	fmt.Fprintf(w, "Issuer:       %s\n", info.Issuer)
	fmt.Fprintf(w, "Serial:       %s\n", info.Serial)
	fmt.Fprintf(w, "Valid:        %s to %s\n", info.NotBefore.Format(time.RFC3339), info.NotAfter.Format(time.RFC3339))
	fmt.Fprintf(w, "Key:          %s\n", info.Key)
	fmt.Fprintf(w, "Key usage:    %s\n", verify.KeyUsageNames(c.KeyUsage))
	fmt.Fprintf(w, "Signature:    %s\n", info.SignatureAlgorithm)
	var usages []string
	for _, u := range c.ExtKeyUsage {
		usages = append(usages, extKeyUsageName(u))
	}
	if len(usages) > 0 {
		fmt.Fprintf(w, "Ext. usage:   %s\n", strings.Join(usages, ", "))
	}
	fmt.Fprintf(w, "SHA-256:      %s\n", info.SHA256)
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func extKeyUsageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageAny:
		return "any"
	}
	return strconv.Itoa(int(u))
}

// openExistingStore opens a certificate folder for reading; unlike
// OpenCertStore it creates nothing.
func openExistingStore(dir string) (*output.CertStore, error) {
	return output.ReadCertStore(dir)
}

// parseDays parses a duration, also accepting a number of days ("30d").
func parseDays(s string) (time.Duration, error) {
	if v, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a number of days like 30d, or a duration like 72h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days like 30d, or a duration like 72h", s)
	}
	return d, nil
}

// formatDays writes d as parseDays reads it: whole days as 7d, else as
// time.Duration writes it.
func formatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
