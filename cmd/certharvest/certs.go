package main

import (
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
	"text/tabwriter"
	"time"

	"github.com/certharvest/certharvest/internal/lookup"
	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/verify"
)

const listUsage = `Usage: certharvest list [--certs DIR] [--expiring-within DURATION] [--json]

List the stored certificates: address, expiry, key, subject and issuer,
soonest expiry first, so an operator can invite the people whose
certificates are about to expire to send a new signed message.

A certificate file that cannot be read or parsed is left out: the others
are listed, the skipped files are named on standard error, and the exit
status is 1.

Examples:
  certharvest list --certs /var/lib/certharvest/certs
  certharvest list --expiring-within 30d          # expired or expiring in 30 days
  certharvest list --json | jq -r '.[].address'
`

const showUsage = `Usage: certharvest show [--certs DIR] [--pem] ADDRESS

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
	asJSON            bool
}

// newListCommand returns list's command and the flags it sets.
func newListCommand(stdout io.Writer) (*command, *listArgs) {
	cmd := newCommand("list", listUsage, stdout)
	a := &listArgs{}
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	cmd.fs.StringVar(&a.within, "expiring-within", "", "only certificates expired or expiring within this `duration` (e.g. 30d, 72h)")
	cmd.fs.BoolVar(&a.asJSON, "json", false, "print a JSON array")
	cmd.fs.StringVar(&a.at, "at", "", "judge expiry at this `time` (RFC 3339; default now)")
	return cmd, a
}

func runList(_ context.Context, args []string, stdout io.Writer) error {
	cmd, a := newListCommand(stdout)
	if err := cmd.parse(args); err != nil {
		return err
	}
	if cmd.fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(cmd.fs.Args(), " "))
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
	store, err := openExistingStore(a.certs)
	if err != nil {
		return err
	}
	addrs, err := store.Addresses()
	if err != nil {
		return fmt.Errorf("listing %s: %w", a.certs, err)
	}
	certs := []lookup.StoredCert{}
	// A file that cannot be read or parsed is left out, not fatal: the
	// others are listed all the same, and the skipped ones are named at
	// the end (exit status 1).
	var skipped []string
	for _, addr := range addrs {
		path, _ := store.Path(addr)
		c, err := store.Load(addr)
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
		certs = append(certs, lookup.Describe(addr, path, c, at))
	}
	sort.Slice(certs, func(i, j int) bool {
		if !certs[i].NotAfter.Equal(certs[j].NotAfter) {
			return certs[i].NotAfter.Before(certs[j].NotAfter)
		}
		return certs[i].Address < certs[j].Address
	})
	if err := writeList(stdout, certs, a.asJSON); err != nil {
		return err
	}
	if len(skipped) > 0 {
		return fmt.Errorf("left out %d unreadable certificate file(s); the others are listed:\n  %s",
			len(skipped), strings.Join(skipped, "\n  "))
	}
	return nil
}

// writeList prints list's table, or its JSON array: the lookup API's JSON
// answers, one per certificate.
func writeList(w io.Writer, certs []lookup.StoredCert, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(certs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tNOT AFTER\tKEY\tSUBJECT\tISSUER")
	for _, c := range certs {
		expiry := c.NotAfter.Format(time.DateOnly)
		if c.Expired {
			expiry += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Address, expiry, c.Key, c.Subject, c.Issuer)
	}
	return tw.Flush()
}

// showArgs are show's flags.
type showArgs struct {
	certs string
	asPEM bool
}

// newShowCommand returns show's command and the flags it sets.
func newShowCommand(stdout io.Writer) (*command, *showArgs) {
	cmd := newCommand("show", showUsage, stdout)
	a := &showArgs{}
	cmd.fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	cmd.fs.BoolVar(&a.asPEM, "pem", false, "print the certificate as PEM only")
	return cmd, a
}

func runShow(_ context.Context, args []string, stdout io.Writer) error {
	cmd, a := newShowCommand(stdout)
	if err := cmd.parse(args); err != nil {
		return err
	}
	if cmd.fs.NArg() != 1 {
		return usagef("want exactly one ADDRESS")
	}
	addr, err := verify.NormalizeAddress(cmd.fs.Arg(0))
	if err != nil {
		return usageError{err.Error()}
	}
	store, err := openExistingStore(a.certs)
	if err != nil {
		return err
	}
	c, err := store.Load(addr)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no certificate for %s in %s", addr, a.certs)
	}
	if err != nil {
		return fmt.Errorf("reading the certificate of %s: %w", addr, err)
	}
	if a.asPEM {
		_, err := stdout.Write(output.EncodeCertificatePEM(c))
		return err
	}
	writeCertificate(stdout, c)
	history, _ := store.History(addr)
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
