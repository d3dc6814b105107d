package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certharvest/certharvest/output/publish"
)

const exportUsage = `Usage: certharvest export --format pem|ldif|smimea|json [--to FILE|DIR] [--certs DIR]

Write the stored certificates where mail clients and servers look for them:
  pem     the certificates, each after a line with its address
  ldif    LDAP change records (RFC 2849) that set userSMIMECertificate and
          userCertificate;binary of each address's inetOrgPerson entry under
          --ldap-base, for ldapmodify; nothing else in the entries changes,
          and loading the same file again changes nothing
  smimea  SMIMEA records (RFC 8162) for a DNS zone ($INCLUDE) or nsupdate
  json    one JSON object per line and certificate, for scripts

One certificate per address, its current one, in address order. --to FILE
replaces FILE once the export is complete; --to DIR writes a file per
address (DIR/ADDRESS.pem, .ldif, .zone or .json), rewriting only those that
change. --changed-since exports only what was stored since, for cron.
docs/PUBLISHING.md loads each into slapd and a DNS zone, step by step.

A certificate that cannot be read is left out: the others are exported, the
skipped ones are named on standard error, and the exit status is 1.

Examples:
  certharvest export --format ldif --ldap-base ou=people,dc=example,dc=org | ldapmodify -x -D cn=admin,dc=example,dc=org -W
  certharvest export --format smimea --to /etc/bind/smimea.zone
  certharvest export --format pem --to /var/lib/mail/certs/
  certharvest export --format json --changed-since 25h | jq -r .address
`

// exportArgs are export's flags.
type exportArgs struct {
	certs, to    string
	format       parsedFlag[string]
	since        parsedFlag[sinceTime]
	ldapBase     string
	ldapRDN      parsedFlag[string]
	ldapAdd      bool
	smimeaFields [3]parsedFlag[uint8] // usage, selector, matching type
	store        storeFlags
}

// newExportCommand returns export's command and the flags it sets.
func newExportCommand(stdout io.Writer) (*command, *exportArgs) {
	cmd := newCommand("export", exportUsage, stdout)
	a := &exportArgs{}
	a.format = newParsedFlag("", oneOf("format", publish.Formats()...))
	a.since = newParsedFlag("", parseSince)
	a.ldapRDN = newParsedFlag(publish.LDAPRDNMail, oneOf("RDN attribute", publish.LDAPRDNMail, publish.LDAPRDNUID, publish.LDAPRDNCN))
	a.smimeaFields = [3]parsedFlag[uint8]{
		newParsedFlag(strconv.Itoa(publish.DefaultSMIMEAUsage), parseUint8),
		newParsedFlag(strconv.Itoa(publish.DefaultSMIMEASelector), parseUint8),
		newParsedFlag(strconv.Itoa(publish.DefaultSMIMEAMatchingType), parseUint8),
	}
	fs := cmd.fs
	fs.StringVar(&a.certs, "certs", "./certs", "certificate `folder`")
	a.store.register(fs)
	fs.Var(&a.format, "format", "`format`: pem, ldif, smimea or json")
	fs.StringVar(&a.to, "to", "", "write to this `file`, or a file per address into this folder (default: stdout)")
	fs.Var(&a.since, "changed-since", "only certificates stored since this `time` (RFC 3339, or a duration ago: 25h, 7d)")
	fs.StringVar(&a.ldapBase, "ldap-base", "", "ldif: the `DN` the entries are under, e.g. ou=people,dc=example,dc=org")
	fs.Var(&a.ldapRDN, "ldap-rdn", "ldif: the `attribute` naming each entry: mail (the address), uid (its local part), cn")
	fs.BoolVar(&a.ldapAdd, "ldap-add", false, "ldif: add whole inetOrgPerson entries, for a directory that has none yet")
	fs.Var(&a.smimeaFields[0], "smimea-usage", "smimea: certificate `usage`: 3 (DANE-EE) or 1 (PKIX-EE)")
	fs.Var(&a.smimeaFields[1], "smimea-selector", "smimea: `selector`: 0 (whole certificate; default) or 1 (SubjectPublicKeyInfo)")
	fs.Var(&a.smimeaFields[2], "smimea-matching-type", "smimea: matching `type`: 0 (the data itself; default), 1 (SHA-256) or 2 (SHA-512)")
	return cmd, a
}

// runExport exports the stored certificates with the flags a; the command
// line has been read.
func runExport(ctx context.Context, a *exportArgs, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	if a.format.value == "" {
		return usagef("want --format: %s", strings.Join(publish.Formats(), ", "))
	}
	f, err := publish.New(a.format.value, publish.Options{
		LDAPBase: a.ldapBase,
		LDAPRDN:  a.ldapRDN.value,
		LDAPAdd:  a.ldapAdd,
		SMIMEA:   &publish.SMIMEAParams{Usage: a.smimeaFields[0].value, Selector: a.smimeaFields[1].value, MatchingType: a.smimeaFields[2].value},
	})
	if err != nil {
		return usageError{err.Error()}
	}
	since := a.since.value.resolve(time.Now())
	r, _, closeStore, err := a.store.openReader(ctx, a.certs)
	if err != nil {
		return err
	}
	defer closeStore()
	var st publish.Stats
	switch info, statErr := os.Stat(a.to); {
	case a.to == "" || a.to == "-":
		st, err = publish.Export(ctx, r, f, since, stdout)
	case statErr == nil && info.IsDir():
		st, err = publish.ExportDir(ctx, r, f, since, a.to)
	default:
		var file *publish.AtomicFile
		if file, err = publish.CreateAtomic(a.to, 0o644); err != nil {
			return err
		}
		if st, err = publish.Export(ctx, r, f, since, file); err != nil {
			file.Abort()
		} else {
			err = file.Commit()
		}
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if a.to != "" && a.to != "-" {
		fmt.Fprintf(stderr, "exported %d certificate(s) as %s to %s\n", st.Exported, a.format.value, a.to)
	}
	if len(st.Failed) > 0 {
		return fmt.Errorf("left out %d certificate(s); the others are exported:\n  %s",
			len(st.Failed), strings.Join(st.Failed, "\n  "))
	}
	return nil
}

// sinceTime is --changed-since: a time, or a duration before the run.
type sinceTime struct {
	at  time.Time
	ago time.Duration
}

// resolve returns the time s means at now; zero: no limit.
func (s sinceTime) resolve(now time.Time) time.Time {
	if s.ago > 0 {
		return now.Add(-s.ago)
	}
	return s.at
}

// parseSince parses --changed-since: RFC 3339, or a duration (parseDays).
func parseSince(s string) (sinceTime, error) {
	if s == "" {
		return sinceTime{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return sinceTime{at: t}, nil
	}
	d, err := parseDays(s)
	if err != nil || d == 0 {
		return sinceTime{}, errors.New("want RFC 3339 (2026-06-01T00:00:00Z) or a duration ago (25h, 7d)")
	}
	return sinceTime{ago: d}, nil
}

// oneOf returns a parser that takes one of the words, or "" (unset).
func oneOf(what string, words ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		for _, w := range words {
			if s == w {
				return s, nil
			}
		}
		if s == "" {
			return "", nil
		}
		return "", fmt.Errorf("%s %q: want %s", what, s, strings.Join(words, ", "))
	}
}

// parseUint8 parses a number from 0 to 255.
func parseUint8(s string) (uint8, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, errors.New("want a number from 0 to 255")
	}
	return uint8(n), nil
}
