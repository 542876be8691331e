package storage

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// migrationFiles holds the schema migrations, one directory per backend:
// NNNNN_name.sql files that goose applies in version order, each in a
// transaction of its own together with its row in MigrationTable.
//
//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// MigrationTable records which migrations a database has had: goose's
// version table (one row per applied migration, and a row for version 0
// written when the table is created), under a name of this project's own.
const MigrationTable = "ltikeys_schema_migrations"

// SchemaVersion is the number of the last migration this binary embeds,
// the same on both backends. Each migration leaves its own number in
// ltikeys_schema.version, which releases before versioned migrations read
// to refuse a newer schema; Open refuses a database where that column or
// MigrationTable records a version above SchemaVersion.
const SchemaVersion = 3

// ErrSchemaTooNew means the database's schema is newer than SchemaVersion:
// it was written by a later release. Open's, Migrate's and
// MigrationStatus's errors match it with errors.Is and are permanent
// ConnectionErrors.
var ErrSchemaTooNew = errors.New("storage: the database schema is newer than this binary")

// MigrationState is where a migration stands in a database.
type MigrationState int

const (
	// MigrationPending migrations are yet to be applied.
	MigrationPending MigrationState = iota + 1
	// MigrationApplied migrations are recorded in MigrationTable as
	// applied.
	MigrationApplied
	// MigrationBaseline is migration 1 of a database that a release before
	// versioned migrations created, which has no MigrationTable: its schema
	// is migration 1's, or one from before key schedules that Open and
	// Migrate bring up to it, and they record migration 1 as applied rather
	// than run it.
	MigrationBaseline
)

func (s MigrationState) String() string {
	switch s {
	case MigrationPending:
		return "pending"
	case MigrationApplied:
		return "applied"
	case MigrationBaseline:
		return "baseline"
	}
	return fmt.Sprintf("MigrationState(%d)", int(s))
}

// Migration is one schema migration.
type Migration struct {
	// Version is the migration's number, the prefix of its file name.
	Version int64
	// Name is the migration's file name, "00002_lti_jwks_version.sql";
	// empty for a migration that a later release applied, which this
	// binary does not have.
	Name string
	// State is where the migration stands; in what Migrate returns, what
	// Migrate did: MigrationApplied (it ran the migration) or
	// MigrationBaseline (it recorded it as applied without running it).
	State MigrationState
	// AppliedAt is when MigrationTable recorded the migration, by the
	// database's clock (SQLite's in UTC, PostgreSQL's in the server's time
	// zone), as MigrationStatus reports it; zero otherwise.
	AppliedAt time.Time
}

// backend is what migrating a database needs to know of it.
type backend struct {
	// name is "postgres" or "sqlite", the directory of the backend's
	// migrations under migrations/.
	name    string
	dialect goose.Dialect
	// sqlitePath is the SQLite database's file, "" for an in-memory
	// database and for PostgreSQL.
	sqlitePath string
}

var (
	postgresBackend = backend{name: "postgres", dialect: goose.DialectPostgres}
	sqliteBackend   = backend{name: "sqlite", dialect: goose.DialectSQLite3}
)

// files returns the backend's migration files, as goose reads them.
func (b backend) files() (fs.FS, error) {
	return fs.Sub(migrationFiles, "migrations/"+b.name)
}

// embedded returns the backend's migrations, pending, in version order.
func (b backend) embedded() ([]Migration, error) {
	fsys, err := b.files()
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, State: MigrationPending})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return ms, nil
}

// provider returns goose's migrator of db, for the backend's migrations
// and MigrationTable. It takes no lock: callers hold the migration lock.
func (b backend) provider(db *sql.DB) (*goose.Provider, error) {
	fsys, err := b.files()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(b.dialect, db, fsys,
		goose.WithTableName(MigrationTable),
		goose.WithDisableGlobalRegistry(true))
}

// schemaState is what a database holds, read without changing anything.
type schemaState struct {
	// tracked is true when MigrationTable exists.
	tracked bool
	// applied maps the versions MigrationTable records as applied (not 0)
	// to when.
	applied map[int64]time.Time
	// legacy is true for a database that a release before versioned
	// migrations created: it has lti_jwks but no MigrationTable.
	legacy bool
	// recorded is ltikeys_schema.version, 0 if there is none.
	recorded int64
}

// version is the highest schema version st records anywhere.
func (st schemaState) version() int64 {
	v := st.recorded
	for a := range st.applied {
		v = max(v, a)
	}
	return v
}

// check returns a permanent ConnectionError wrapping ErrSchemaTooNew if st
// records a version above SchemaVersion.
func (st schemaState) check() error {
	if v := st.version(); v > SchemaVersion {
		return permanent(fmt.Sprintf("the database schema is version %d, newer than this binary's %d: run the release that wrote it, or a later one", v, SchemaVersion), ErrSchemaTooNew)
	}
	return nil
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inspect reads the database's schema state.
func (b backend) inspect(ctx context.Context, q queryer) (schemaState, error) {
	st := schemaState{applied: map[int64]time.Time{}}
	var err error
	if st.tracked, err = b.hasTable(ctx, q, MigrationTable); err != nil {
		return st, err
	}
	if st.tracked {
		rows, err := q.QueryContext(ctx, "SELECT version_id, is_applied, tstamp FROM "+MigrationTable+" ORDER BY id")
		if err != nil {
			return st, err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				version int64
				applied bool
				at      time.Time
			)
			if err := rows.Scan(&version, &applied, &at); err != nil {
				return st, err
			}
			// A later row for a version overrides earlier ones, as goose
			// reads the table.
			switch {
			case version == 0:
			case applied:
				st.applied[version] = at
			default:
				delete(st.applied, version)
			}
		}
		if err := rows.Err(); err != nil {
			return st, err
		}
	} else if st.legacy, err = b.hasTable(ctx, q, "lti_jwks"); err != nil {
		return st, err
	}
	hasSchema, err := b.hasTable(ctx, q, "ltikeys_schema")
	if err != nil || !hasSchema {
		return st, err
	}
	err = q.QueryRowContext(ctx, "SELECT version FROM ltikeys_schema WHERE id = 1").Scan(&st.recorded)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return st, err
}

// status lists the backend's migrations as st says they stand, with any
// that st records and this binary does not have.
func (b backend) status(st schemaState) ([]Migration, error) {
	ms, err := b.embedded()
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		if at, ok := st.applied[m.Version]; ok {
			ms[i].State, ms[i].AppliedAt = MigrationApplied, at
		} else if st.legacy && m.Version == 1 {
			ms[i].State = MigrationBaseline
		}
	}
	for v, at := range st.applied {
		if !slices.ContainsFunc(ms, func(m Migration) bool { return m.Version == v }) {
			ms = append(ms, Migration{Version: v, State: MigrationApplied, AppliedAt: at})
		}
	}
	slices.SortFunc(ms, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return ms, nil
}

// migrate brings db's schema to SchemaVersion and returns what it did, in
// order: under the migration lock, it reads the schema's state and refuses
// one newer than this binary's (changing nothing), adopts the schema of an
// earlier release (see adopt), then applies the pending migrations, each
// in its own transaction. A migration that fails is rolled back, and
// leaves the ones before it applied. log (nil: none) gets a line for each
// migration and for waiting on the lock.
func (b backend) migrate(ctx context.Context, db *sql.DB, log *slog.Logger) ([]Migration, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unlock, err := b.lock(ctx, db, log)
	if err != nil {
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	defer unlock()

	st, err := b.inspect(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	ms, err := b.status(st)
	if err != nil {
		return nil, err
	}
	var done []Migration
	if st.legacy {
		start := time.Now()
		if err := b.adopt(ctx, db); err != nil {
			return nil, fmt.Errorf("adopt the schema of an earlier release: %w", err)
		}
		done = append(done, ms[0])
		log.Info("recorded the schema of an earlier release as migration 1", "migration", ms[0].Name, "duration", time.Since(start))
	}
	if !slices.ContainsFunc(ms, func(m Migration) bool { return m.State == MigrationPending }) {
		return done, nil
	}
	p, err := b.provider(db)
	if err != nil {
		return done, err
	}
	results, err := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	for _, r := range results {
		name := path.Base(r.Source.Path)
		done = append(done, Migration{Version: r.Source.Version, Name: name, State: MigrationApplied})
		log.Info("applied schema migration", "migration", name, "version", r.Source.Version, "duration", r.Duration)
	}
	if partial != nil {
		return done, fmt.Errorf("migration %s: %w", path.Base(partial.Failed.Source.Path), partial.Err)
	}
	return done, err
}

// hasTable reports whether the database has table, in the current schema
// on PostgreSQL (where unqualified names resolve, as goose looks for
// MigrationTable).
func (b backend) hasTable(ctx context.Context, q queryer, table string) (bool, error) {
	query := "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)"
	if b.name == postgresBackend.name {
		query = "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1)"
	}
	var ok bool
	err := q.QueryRowContext(ctx, query, table).Scan(&ok)
	return ok, err
}

// hasColumn reports whether table has column.
func (b backend) hasColumn(ctx context.Context, q queryer, table, column string) (bool, error) {
	query := "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?) WHERE name = ?)"
	if b.name == postgresBackend.name {
		query = "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)"
	}
	var ok bool
	err := q.QueryRowContext(ctx, query, table, column).Scan(&ok)
	return ok, err
}

// adoptedColumns are the columns that schemas from before key schedules
// lack, with their types on each backend.
var adoptedColumns = []struct{ table, column, postgres, sqlite string }{
	{"lti_jwks", "activates_at", "timestamptz", "datetime"},
	{"lti_jwks", "superseded_at", "timestamptz", "datetime"},
	{"lti_jwks", "retire_at", "timestamptz", "datetime"},
	{"lti_jwks", "retired_at", "timestamptz", "datetime"},
	{"platform_registrations", "pending_jwk_id", "bigint", "integer"},
	{"platform_registrations", "deleted_at", "timestamptz", "datetime"},
}

// adoptedIndexes are migration 1's indexes.
var adoptedIndexes = []struct {
	name, table string
	unique      bool
	columns     []string
	where       string
}{
	{"idx_lti_jwks_kid", "lti_jwks", true, []string{"kid"}, ""},
	{"idx_lti_jwks_registration_id", "lti_jwks", false, []string{"registration_id"}, ""},
	{"idx_lti_jwks_retire_at", "lti_jwks", false, []string{"retire_at"}, ""},
	{"idx_platform_registrations_jwk_id", "platform_registrations", false, []string{"jwk_id"}, ""},
	{"idx_platform_registrations_pending_jwk_id", "platform_registrations", false, []string{"pending_jwk_id"}, ""},
	{"idx_platform_registrations_live_issuer_client_id", "platform_registrations", true, []string{"issuer", "client_id"}, "deleted_at IS NULL"},
}

// adoptedTables are the tables of migration 1 that earlier schemas may
// lack, as migration 1 creates them.
var adoptedTables = map[string][]string{
	"postgres": {
		"CREATE TABLE IF NOT EXISTS ltikeys_changes (id bigint PRIMARY KEY, version bigint NOT NULL DEFAULT 0)",
		"CREATE TABLE IF NOT EXISTS ltikeys_schema (id bigint PRIMARY KEY, version bigint NOT NULL)",
	},
	"sqlite": {
		"CREATE TABLE IF NOT EXISTS `ltikeys_changes` (`id` integer,`version` integer NOT NULL DEFAULT 0,PRIMARY KEY (`id`))",
		"CREATE TABLE IF NOT EXISTS `ltikeys_schema` (`id` integer,`version` integer NOT NULL,PRIMARY KEY (`id`))",
	},
}

// legacyIssuerClientIndex is the unique index on (issuer, client_id) of
// schemas before deleted registrations existed; the index replacing it
// covers live registrations only.
const legacyIssuerClientIndex = "idx_platform_registrations_issuer_client_id"

// adoptedRows fill in what migration 1 inserts, and the schedules of keys
// written before schedules existed: a key with no activates_at was current
// from its creation; an active one that no registration signs with was
// superseded when the next key of its registration was created (it stays
// PREVIOUS, with no scheduled retirement); a retired one was retired when
// last updated. Keys written since have activates_at set and never match.
var adoptedRows = []string{
	`UPDATE lti_jwks SET superseded_at = COALESCE(
		(SELECT MIN(n.created_at) FROM lti_jwks n WHERE n.registration_id = lti_jwks.registration_id AND n.id > lti_jwks.id),
		lti_jwks.updated_at)
	WHERE activates_at IS NULL AND active = true
		AND NOT EXISTS (SELECT 1 FROM platform_registrations r WHERE r.jwk_id = lti_jwks.id)`,
	`UPDATE lti_jwks SET retired_at = updated_at WHERE activates_at IS NULL AND active = false AND retired_at IS NULL`,
	`UPDATE lti_jwks SET activates_at = created_at WHERE activates_at IS NULL`,
	`INSERT INTO ltikeys_changes (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING`,
	`INSERT INTO ltikeys_schema (id, version) VALUES (1, 1) ON CONFLICT DO NOTHING`,
	`UPDATE ltikeys_schema SET version = 1 WHERE id = 1 AND version < 1`,
}

// adopt takes over the schema of a database that a release before
// versioned migrations created, with GORM's AutoMigrate: it has no
// MigrationTable. The last such release left exactly migration 1's schema;
// earlier ones lacked ltikeys_schema, or also ltikeys_changes, or the key
// schedule's columns and indexes (before key schedules, a unique index on
// (issuer, client_id) over all registrations stood where the one over live
// registrations now does). adopt brings any of these to migration 1's
// schema with statements that change nothing already there, fills in the
// schedules of rows written before key schedules existed (adoptedRows),
// and records migration 1 as applied, all in one transaction: on error
// nothing has changed.
func (b backend) adopt(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	quote := func(name string) string { return "`" + name + "`" }
	if b.name == postgresBackend.name {
		quote = func(name string) string { return `"` + name + `"` }
	}

	statements := slices.Clone(adoptedTables[b.name])
	for _, c := range adoptedColumns {
		has, err := b.hasColumn(ctx, tx, c.table, c.column)
		if err != nil {
			return err
		}
		if !has {
			typ := c.sqlite
			if b.name == postgresBackend.name {
				typ = c.postgres
			}
			statements = append(statements, fmt.Sprintf("ALTER TABLE %s ADD %s %s", quote(c.table), quote(c.column), typ))
		}
	}
	statements = append(statements, "DROP INDEX IF EXISTS "+quote(legacyIssuerClientIndex))
	for _, idx := range adoptedIndexes {
		stmt := "CREATE INDEX IF NOT EXISTS "
		if idx.unique {
			stmt = "CREATE UNIQUE INDEX IF NOT EXISTS "
		}
		cols := make([]string, len(idx.columns))
		for i, c := range idx.columns {
			cols[i] = quote(c)
		}
		stmt += fmt.Sprintf("%s ON %s(%s)", quote(idx.name), quote(idx.table), strings.Join(cols, ","))
		if idx.where != "" {
			stmt += " WHERE " + idx.where
		}
		statements = append(statements, stmt)
	}
	statements = append(statements, adoptedRows...)
	for _, stmt := range statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}

	versions, err := database.NewStore(b.dialect, MigrationTable)
	if err != nil {
		return err
	}
	if err := versions.CreateVersionTable(ctx, tx); err != nil {
		return err
	}
	for _, v := range []int64{0, 1} {
		if err := versions.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// migrationLockID is the key of the PostgreSQL advisory lock that
// migrating holds: the ASCII bytes of "ltikeys". Advisory locks belong to
// one database, so ltikeys databases on one server never wait for each
// other.
const migrationLockID int64 = 0x6c74696b657973

// lockFileSuffix names the file next to an SQLite database that migrating
// locks: the database's path plus this suffix. It is created (mode 0600)
// and never removed: removing it while another process waits on it would
// let a third lock a new file alongside.
const lockFileSuffix = "-migrate.lock"

// lock takes the migration lock, waiting (and saying so once, at info) as
// long as another process holds it and ctx allows, and returns the
// function that releases it. On PostgreSQL it is a session-level advisory
// lock held by a connection of db's, released if that session ends; on an
// SQLite file, an exclusive lock on the lock file (see lockFile), released
// if the process ends.
func (b backend) lock(ctx context.Context, db *sql.DB, log *slog.Logger) (func(), error) {
	if b.name == postgresBackend.name {
		return lockPostgres(ctx, db, log)
	}
	if b.sqlitePath == "" {
		return lockMemory(ctx)
	}
	return lockFile(ctx, b.sqlitePath+lockFileSuffix, log)
}

// waitingMessage is logged once by a process that waits for the migration
// lock.
const waitingMessage = "waiting for another process to finish migrating the database schema"

// lockPostgres takes the advisory lock on a connection of its own, which
// it returns to the pool once the lock is released, and discards if it
// cannot tell that it was: ending the session releases the lock.
func lockPostgres(ctx context.Context, db *sql.DB, log *slog.Logger) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	discard := func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
	}
	var locked bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", migrationLockID).Scan(&locked); err != nil {
		discard()
		return nil, err
	}
	if !locked {
		log.Info(waitingMessage)
		// A cancelled wait may have been granted the lock all the same.
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
			discard()
			return nil, err
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var unlocked bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", migrationLockID).Scan(&unlocked); err != nil || !unlocked {
			discard()
			return
		}
		_ = conn.Close()
	}, nil
}

// memoryLock serializes migrations of in-memory SQLite databases, which
// only this process can reach.
var memoryLock = make(chan struct{}, 1)

func lockMemory(ctx context.Context) (func(), error) {
	select {
	case memoryLock <- struct{}{}:
		return func() { <-memoryLock }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Back-off between attempts to lock an SQLite database's lock file.
const (
	lockRetryMin = 5 * time.Millisecond
	lockRetryMax = 100 * time.Millisecond
)

// pollLock calls try until it takes the lock (true), fails, or ctx ends,
// logging waitingMessage before the first wait.
func pollLock(ctx context.Context, log *slog.Logger, try func() (bool, error)) error {
	wait := lockRetryMin
	for first := true; ; first = false {
		locked, err := try()
		if err != nil || locked {
			return err
		}
		if first {
			log.Info(waitingMessage)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, lockRetryMax)
	}
}
