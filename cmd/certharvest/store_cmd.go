package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certharvest/certharvest/output"
	"github.com/certharvest/certharvest/output/pgstore"
)

// certharvest store: the PostgreSQL store's schema, and its export to, and
// import from, a folder of PEM files.

const storeUsage = `Usage: certharvest store migrate|export|import [flags]

Manage the PostgreSQL certificate store (docs/SCALING.md):

  certharvest store migrate --store URL
      create the tables, or bring them to this certharvest's schema
  certharvest store export --store URL --to DIR [--follow]
      write the certificates as a folder of PEM files, as --certs keeps them
  certharvest store import DIR --store URL
      load a folder of PEM files (a --certs folder) into the store

The password is never on the command line: --store-file FILE holds the URL
with it, or PGPASSWORD or ~/.pgpass gives it.
`

const storeMigrateUsage = `Usage: certharvest store migrate --store URL

Create the certificate store's tables in the database, or bring an older
schema to this certharvest's, in one transaction: every step applies, or
none. Two instances migrating at once wait for each other. A schema newer
than this certharvest knows is left alone (exit status 1). serve refuses to
start on a schema it does not know, naming this command.

Examples:
  PGPASSFILE=/etc/certharvest/pgpass certharvest store migrate \
      --store 'postgres://certharvest@db.example.org/certharvest?sslmode=verify-full'
  certharvest store migrate --store-file /etc/certharvest/store-url
`

const storeExportUsage = `Usage: certharvest store export --store URL --to DIR [--follow]

Write the store's certificates to the folder DIR as serve's --certs folder
keeps them (<address>.crt, history/<address>/<sha256>.crt), byte for byte:
for applications that read files. Each file is replaced atomically, and
only what changed is written; a newer certificate already in DIR stays.

With --follow, keep DIR in step until SIGINT or SIGTERM: every certificate
stored is written as soon as its transaction commits (LISTEN/NOTIFY); after
a lost connection, the whole store is exported again.

Examples:
  certharvest store export --store-file /etc/certharvest/store-url --to /srv/certs
  certharvest store export --store-file /etc/certharvest/store-url --to /srv/certs --follow
`

const storeImportUsage = `Usage: certharvest store import DIR --store URL

Load a folder of certificates (a --certs folder, or the original service's
user-certs-dir) into the store, with the store's anti-rollback: each
address's history, oldest first, then its current certificate; a newer
certificate already in the store stays. Importing again changes nothing.
A file that cannot be read is named (exit status 1); the others are
imported all the same.

Example:
  certharvest store import /var/lib/certharvest/certs --store-file /etc/certharvest/store-url
`

// pgStoreUsage is the help of the store commands' --store.
const pgStoreUsage = "the PostgreSQL store: a postgres:// `URL`, or libpq's key=value pairs"

// storeArgs are the flags every store command shares.
type storeArgs struct {
	store storeFlags
}

// pg opens the PostgreSQL store the flags name; a folder has nothing to
// migrate, export or import.
func (a *storeArgs) pg(stderr io.Writer) (*pgstore.Store, error) {
	spec, err := a.store.spec("")
	if err != nil {
		return nil, err
	}
	if spec.pgURL == "" {
		return nil, usagef("want --store URL (postgres://…) or --store-file FILE: the PostgreSQL store")
	}
	return openPostgres(spec.pgURL, storeLogger(stderr))
}

// storeLogger logs the store commands' work on stderr.
func storeLogger(stderr io.Writer) *slog.Logger {
	return slog.New(output.NewLogHandler(stderr, slog.LevelInfo))
}

// newStoreCommand returns the store command and its subcommands.
func newStoreCommand(cio cliIO) *cobra.Command {
	parent := &cobra.Command{
		Use:   "store",
		Short: "manage the PostgreSQL store: migrate, export, import",
		Args:  cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			fmt.Fprint(cio.stderr, storeUsage)
			if len(args) > 0 {
				return usagef("unknown store command %q: want migrate, export or import", args[0])
			}
			return usageShown{}
		},
	}
	// Each subcommand has a help of its own (subcommand sets it).
	parent.SetHelpFunc(func(*cobra.Command, []string) { fmt.Fprint(cio.stdout, storeUsage) })

	migrate := newCommand("migrate", storeMigrateUsage, cio.stdout)
	ma := &storeArgs{}
	ma.store.registerAs(migrate.fs, pgStoreUsage)
	parent.AddCommand(subcommand(migrate, "create or update the store's tables",
		func(ctx context.Context, args []string) error {
			return runStoreMigrate(ctx, ma, args, cio.stdout, cio.stderr)
		}))

	export := newCommand("export", storeExportUsage, cio.stdout)
	ea := &storeExportArgs{}
	ea.store.registerAs(export.fs, pgStoreUsage)
	export.fs.StringVar(&ea.to, "to", "", "`folder` to write the certificates to (required)")
	export.fs.BoolVar(&ea.follow, "follow", false, "keep the folder in step with the store until SIGINT or SIGTERM")
	parent.AddCommand(subcommand(export, "write the store's certificates to a folder",
		func(ctx context.Context, args []string) error {
			return runStoreExport(ctx, ea, args, cio.stdout, cio.stderr)
		}))

	imp := newCommand("import", storeImportUsage, cio.stdout)
	ia := &storeArgs{}
	ia.store.registerAs(imp.fs, pgStoreUsage)
	parent.AddCommand(subcommand(imp, "load a folder of certificates into the store",
		func(ctx context.Context, args []string) error {
			return runStoreImport(ctx, ia, args, cio.stdout, cio.stderr)
		}))
	return parent
}

// storeCommandFlagSets returns the flag sets of the store commands, as
// commandFlagSets does for the others (for the tests of the flags' help).
func storeCommandFlagSets() map[string]*cobra.Command {
	cmds := map[string]*cobra.Command{}
	for _, c := range newStoreCommand(cliIO{stdout: io.Discard, stderr: io.Discard}).Commands() {
		cmds["store "+c.Name()] = c
	}
	return cmds
}

func runStoreMigrate(ctx context.Context, a *storeArgs, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	s, err := a.pg(stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	from, to, err := s.Migrate(ctx)
	if err != nil {
		return withStore(s, err)
	}
	if from == to {
		fmt.Fprintf(stdout, "%s: schema version %d, this certharvest's: nothing to do\n", s, to)
		return nil
	}
	fmt.Fprintf(stdout, "%s: schema migrated from version %d to %d\n", s, from, to)
	return nil
}

// storeExportArgs are store export's flags.
type storeExportArgs struct {
	storeArgs
	to     string
	follow bool
}

func runStoreExport(ctx context.Context, a *storeExportArgs, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	if a.to == "" {
		return usagef("--to DIR is required")
	}
	s, err := a.pg(stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CheckSchema(ctx); err != nil {
		return withStore(s, err)
	}
	if !a.follow {
		stats, err := s.Export(ctx, a.to)
		fmt.Fprintf(stdout, "exported %s from %s to %s: %s written\n", addresses(stats.Addresses),
			s, a.to, plural(stats.Written, "certificate"))
		return err
	}
	log := storeLogger(stderr)
	log.Info("following the store", "store", s.String(), "to", a.to)
	return s.Follow(ctx, a.to, pgstore.FollowOptions{Exported: func(addr string, stats pgstore.ExportStats, err error) {
		switch {
		case err != nil:
			log.Error("export failed", "address", addr, "error", err)
		case addr == "":
			log.Info("exported the whole store", "addresses", stats.Addresses, "written", stats.Written)
		case stats.Written > 0:
			log.Info("exported "+addr, "written", stats.Written)
		}
	}})
}

func runStoreImport(ctx context.Context, a *storeArgs, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usagef("want exactly one DIR, the folder to import")
	}
	s, err := a.pg(stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CheckSchema(ctx); err != nil {
		return withStore(s, err)
	}
	stats, err := s.Import(ctx, args[0])
	fmt.Fprintf(stdout, "imported %s from %s into %s: %d stored, %d unchanged, %d kept (the store's is newer)\n",
		addresses(stats.Addresses), args[0], s, stats.Stored, stats.Unchanged, stats.Kept)
	return err
}

// addresses is "1 address", "2 addresses".
func addresses(n int) string {
	if n == 1 {
		return "1 address"
	}
	return fmt.Sprintf("%d addresses", n)
}
