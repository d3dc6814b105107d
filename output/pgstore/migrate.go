package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The schema's migrations are SQL files embedded in the binary, named
// NNNN_what.sql: version NNNN is the schema once that file has run. They are
// never edited once released; a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records the migrations applied, one row per version.
const versionTable = "certharvest_schema"

// migration is one embedded migration.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, numbered 1, 2, …
// without a gap.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want %04d_name.sql", e.Name(), len(ms)+1)
		}
		data, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(data)})
	}
	return ms, nil
}

// SchemaVersion is the version of the schema this certharvest reads and
// writes: its last migration.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	return len(ms)
}

// Errors of CheckSchema, matched by errors.Is on its *SchemaError.
var (
	// ErrSchemaTooOld: the database has no certharvest schema, or an older
	// one: run `certharvest store migrate`.
	ErrSchemaTooOld = errors.New("schema too old")
	// ErrSchemaTooNew: a newer certharvest migrated the database; this one
	// does not know its schema.
	ErrSchemaTooNew = errors.New("schema too new")
)

// SchemaError is a schema this certharvest cannot use. It matches
// ErrSchemaTooOld or ErrSchemaTooNew.
type SchemaError struct {
	Have int // the database's version; 0: no certharvest schema
	Want int // SchemaVersion
}

func (e *SchemaError) Error() string {
	switch {
	case e.Have == 0:
		return "the database has no certharvest tables: create them with `certharvest store migrate --store URL`"
	case e.Have < e.Want:
		return fmt.Sprintf("the database's certharvest schema is version %d, this certharvest needs version %d: run `certharvest store migrate --store URL`", e.Have, e.Want)
	}
	return fmt.Sprintf("the database's certharvest schema is version %d, newer than this certharvest knows (%d): run a certharvest as new as the one that migrated it", e.Have, e.Want)
}

// Is matches ErrSchemaTooOld or ErrSchemaTooNew.
func (e *SchemaError) Is(target error) bool {
	if e.Have < e.Want {
		return target == ErrSchemaTooOld
	}
	return e.Have > e.Want && target == ErrSchemaTooNew
}

// schemaVersion returns the version of the schema in the database: 0 when
// it has no version table (in the schemas of the search_path).
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versionTable).Scan(&v)
	return v, err
}

// CheckSchema returns nil when the database's schema is the one this
// certharvest knows, a *SchemaError when it is older (or missing) or newer,
// or why the database could not be asked.
func (s *Store) CheckSchema(ctx context.Context) error {
	var have int
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		have, err = s.schemaVersion(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if want := SchemaVersion(); have != want {
		return &SchemaError{Have: have, Want: want}
	}
	return nil
}

// Migrate brings the database's schema to SchemaVersion, in one
// transaction: every pending migration applies, or none. Concurrent
// migrations (two instances started at once) wait for each other. It
// returns the versions before and after; a schema newer than this
// certharvest knows is a *SchemaError, and is left alone.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One migration at a time in this database, whatever the schema.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+versionTable+
			" (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versionTable).Scan(&from); err != nil {
			return err
		}
		to = from
		if from > len(ms) {
			return &SchemaError{Have: from, Want: len(ms)}
		}
		for _, m := range ms[from:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return err
			}
			to = m.version
		}
		return nil
	})
	if err != nil {
		var se *SchemaError
		if errors.As(err, &se) {
			return from, from, err
		}
		return from, from, fmt.Errorf("migrating the schema: %w", s.explain(err))
	}
	return from, to, nil
}

// migrationLock is the advisory lock key that migrations hold: "cert" in
// ASCII.
const migrationLock = 0x63657274
