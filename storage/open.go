package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Option configures Open.
type Option func(*options)

type options struct {
	log       *slog.Logger
	now       func() time.Time
	statement func(ctx context.Context)
}

// WithLogger routes the ORM's own reports to log: failed statements at error
// level and statements slower than 200ms at warn. Missing rows and duplicate
// keys, which become ErrNotFound and ErrAlreadyExists, are not logged, nor
// is a failure to connect or a lost connection (a ConnectionError): the
// store returns those to its callers, which report them, so a database
// outage does not add a line per statement. SQL is logged with
// placeholders, never parameter values (they include sealed private keys).
// Migrating the schema (Open, Migrate) logs each migration it applies, and
// waiting for another process's migration, at info. Without this option
// nothing is logged.
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// WithClock sets the clock for created_at and updated_at (default
// time.Now). Times are stored in UTC, truncated to microseconds (PostgreSQL's
// precision), so what a write returns equals what a later read returns.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithStatementHook calls hook after every SQL statement the store runs
// through its connection pool (not the notification listener's LISTEN),
// with the statement's context. It is for tests and instrumentation that
// need to know whether a code path touches the database; hook must be cheap
// and safe for concurrent use.
func WithStatementHook(hook func(ctx context.Context)) Option {
	return func(o *options) { o.statement = hook }
}

// DefaultSQLiteURL returns the URL of the embedded database, ltikeys.db in
// dataDir. Open creates dataDir (mode 0700) if it is missing.
func DefaultSQLiteURL(dataDir string) string {
	return "sqlite://" + filepath.Join(dataDir, "ltikeys.db")
}

// Open connects to the database named by databaseURL, brings its schema
// up to SchemaVersion (see Migrate: every start may run it, and any number
// of processes may at once), and returns a Store. The URL selects the
// backend:
//
//   - postgres://… or postgresql://…, or a keyword=value connection string
//     ("host=db user=ltikeys dbname=ltikeys sslmode=verify-full"):
//     PostgreSQL, in any form pgx accepts.
//   - sqlite:PATH or sqlite://PATH (sqlite:///abs/path for an absolute path):
//     an embedded SQLite file; the path is taken verbatim, and the parent
//     directory is created (mode 0700) if missing.
//   - file:… : an SQLite URI filename, passed to SQLite as is.
//
// A query string on an SQLite URL passes to the driver (modernc.org/sqlite,
// through the GORM dialector github.com/libtnb/sqlite), but Open enforces
// foreign keys, WAL, a 10s busy timeout and BEGIN IMMEDIATE transactions:
// write transactions take the database's write lock when they begin, so
// concurrent writers queue on the busy timeout instead of failing with
// SQLITE_BUSY when a reader upgrades. The database file is created with
// mode 0600, and an existing one (with its -wal and -shm files) is narrowed
// to 0600: SQLite gives the -wal and -shm files the database file's mode.
//
// Errors never contain any part of databaseURL. A failure to connect, or a
// configuration no retry can fix, is a *ConnectionError (IsPermanent tells
// which kind); ErrSchemaTooNew means a later release wrote the schema, and
// Open changed nothing.
func Open(ctx context.Context, databaseURL string, opts ...Option) (Store, error) {
	o := newOptions(opts)
	s := &gormStore{now: func() time.Time { return o.now().UTC().Truncate(time.Microsecond) }}
	db, b, err := connect(databaseURL, o, s.now, true)
	if err != nil {
		return nil, err
	}
	s.db = db
	if o.statement != nil {
		if err := registerStatementHook(db, o.statement); err != nil {
			return nil, errors.Join(fmt.Errorf("storage: statement hook: %w", err), s.Close())
		}
	}
	if err := migrateDB(ctx, db, b, o.log); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if b.name == postgresBackend.name {
		// Keep as many connections as concurrent callers use: with
		// database/sql's default of two idle ones, every call beyond two
		// at a time closes its connection after use, and the next one
		// opens another (a new server process on PostgreSQL).
		sqlDB, err := db.DB()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("storage: %w", err), s.Close())
		}
		sqlDB.SetMaxIdleConns(maxIdleConns)
		sqlDB.SetConnMaxIdleTime(connMaxIdleTime)
		s.notify = true
		log := o.log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		return &pgStore{gormStore: s, url: databaseURL, log: log}, nil
	}
	return s, nil
}

// The PostgreSQL connection pool keeps up to maxIdleConns connections
// open while idle, each for at most connMaxIdleTime. The number of open
// connections is not bounded here: PostgreSQL's max_connections (or a
// connection pooler) is.
const (
	maxIdleConns    = 16
	connMaxIdleTime = 5 * time.Minute
)

// Migrate brings the schema of the database at databaseURL up to
// SchemaVersion, as Open does before it returns a store, and returns what
// it did, in order (nothing if the schema was current). It takes the
// migration lock first (on PostgreSQL an advisory lock, on an SQLite file
// a lock on the file databaseURL's path names plus "-migrate.lock"), so
// concurrent Migrates and Opens of one database apply each migration once,
// and the others wait for it. Under the lock it refuses a schema newer
// than this binary's (ErrSchemaTooNew, changing nothing), takes over the
// schema of a release before versioned migrations as migration 1 (see the
// package documentation), then applies each pending migration in a
// transaction of its own. If one fails, its changes are rolled back, the
// migrations before it stay applied, and the error names it. Of opts, only
// WithLogger matters: it gets a line (at info) for each migration, and one
// for waiting on the lock. URLs and errors are as for Open.
func Migrate(ctx context.Context, databaseURL string, opts ...Option) ([]Migration, error) {
	o := newOptions(opts)
	db, b, err := connect(databaseURL, o, time.Now, true)
	if err != nil {
		return nil, err
	}
	defer closeDB(db)
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	done, err := b.migrate(ctx, sqlDB, o.log)
	if err != nil {
		return done, fmt.Errorf("storage: migrate schema: %w", safe(err))
	}
	return done, nil
}

// MigrationStatus lists the migrations this binary embeds for the
// database at databaseURL, in version order, and where each stands there;
// after them, any that the database records and this binary does not
// have. It changes nothing, takes no lock, and creates no SQLite file: for
// one that does not exist every migration is pending. If the schema is
// newer than this binary's it returns the list with an error wrapping
// ErrSchemaTooNew. URLs and errors are as for Open; opts are ignored but
// for WithLogger.
func MigrationStatus(ctx context.Context, databaseURL string, opts ...Option) ([]Migration, error) {
	o := newOptions(opts)
	db, b, err := connect(databaseURL, o, time.Now, false)
	if errors.Is(err, errNoDatabase) {
		return b.embedded()
	}
	if err != nil {
		return nil, err
	}
	defer closeDB(db)
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	st, err := b.inspect(ctx, sqlDB)
	if err != nil {
		return nil, fmt.Errorf("storage: read the schema's state: %w", safe(err))
	}
	ms, err := b.status(st)
	if err != nil {
		return nil, err
	}
	if err := st.check(); err != nil {
		return ms, fmt.Errorf("storage: %w", err)
	}
	return ms, nil
}

// migrateDB runs Migrate's migration on db's pool.
func migrateDB(ctx context.Context, db *gorm.DB, b backend, log *slog.Logger) error {
	sqlDB, err := db.DB()
	if err == nil {
		_, err = b.migrate(ctx, sqlDB, log)
	}
	if err != nil {
		return fmt.Errorf("storage: migrate schema: %w", safe(err))
	}
	return nil
}

func newOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// errNoDatabase is connect's error for an SQLite file that does not exist,
// when it was not to create one.
var errNoDatabase = errors.New("storage: the database file does not exist")

// connect opens the database named by databaseURL (see Open) with the
// ORM's settings, and returns it with its backend. With create false, an
// SQLite file that does not exist is errNoDatabase, not created.
func connect(databaseURL string, o options, now func() time.Time, create bool) (*gorm.DB, backend, error) {
	scheme, _, _ := strings.Cut(databaseURL, ":")
	var (
		dialector gorm.Dialector
		b         backend
	)
	switch {
	case strings.EqualFold(scheme, "postgres"), strings.EqualFold(scheme, "postgresql"), keywordValue.MatchString(databaseURL):
		dialector, b = postgres.Open(databaseURL), postgresBackend
	case strings.EqualFold(scheme, "sqlite"), strings.EqualFold(scheme, "file"):
		dsn, path, err := sqliteDSN(databaseURL)
		if err != nil {
			return nil, b, err
		}
		b = sqliteBackend
		b.sqlitePath = path
		if path != "" {
			if !create {
				if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
					return nil, b, errNoDatabase
				}
			}
			if err := prepareSQLiteFile(path); err != nil {
				return nil, b, err
			}
		}
		dialector = sqlite.Open(dsn)
	default:
		// The value is not quoted: whatever it is, it may hold a password.
		return nil, b, fmt.Errorf("storage: %w", permanent("unsupported database URL: want postgres://…, postgresql://…, a PostgreSQL keyword=value string, sqlite:PATH or file:…", nil))
	}

	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// Every write is already an explicit transaction.
		SkipDefaultTransaction: true,
		NowFunc:                now,
		// Open returns its own errors; the ORM would log them again.
		Logger: logger.Discard,
	})
	if err != nil {
		return nil, b, fmt.Errorf("storage: open %s database: %w", dialector.Name(), safe(err))
	}
	db.Logger = newGormLogger(o.log)
	return db, b, nil
}

// closeDB closes db's connections.
func closeDB(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		_ = sqlDB.Close()
	}
}

// keywordValue matches a PostgreSQL connection string in keyword=value form
// ("host=db user=ltikeys dbname=ltikeys"), which pgx accepts as well as
// URLs.
var keywordValue = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// registerStatementHook calls hook after every statement of every kind.
func registerStatementHook(db *gorm.DB, hook func(context.Context)) error {
	after := func(tx *gorm.DB) {
		if tx.Statement != nil && tx.Statement.SQL.Len() > 0 {
			hook(tx.Statement.Context)
		}
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register("ltikeys:statement_hook", after),
		cb.Query().After("gorm:query").Register("ltikeys:statement_hook", after),
		cb.Update().After("gorm:update").Register("ltikeys:statement_hook", after),
		cb.Delete().After("gorm:delete").Register("ltikeys:statement_hook", after),
		cb.Row().After("gorm:row").Register("ltikeys:statement_hook", after),
		cb.Raw().After("gorm:raw").Register("ltikeys:statement_hook", after),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// sqliteDSN turns an sqlite: or file: URL into a driver DSN with the
// required settings, and returns the database file's path ("" for an
// in-memory database).
func sqliteDSN(databaseURL string) (dsn, path string, err error) {
	var query string
	if rest, ok := strings.CutPrefix(databaseURL, "file:"); ok {
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", "", fmt.Errorf("storage: %w", permanent("the SQLite URI does not parse", err))
		}
		head, _, _ := strings.Cut(rest, "?")
		if head == "" {
			return "", "", fmt.Errorf("storage: %w", permanent("the SQLite URI has no path", nil))
		}
		path, query, dsn = u.Opaque+u.Path, u.RawQuery, "file:"+head
		if path == ":memory:" || u.Query().Get("mode") == "memory" {
			path = "" // nothing on disk
		}
	} else {
		rest := strings.TrimPrefix(databaseURL[len("sqlite:"):], "//")
		path, query, _ = strings.Cut(rest, "?")
		if path == "" {
			return "", "", fmt.Errorf("storage: %w", permanent("the SQLite URL has no path", nil))
		}
		dsn = path
	}

	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("storage: %w", permanent("the SQLite URL's query does not parse", err))
	}
	// Times are stored as text in the driver's "sqlite" format, as every
	// release has written them, and compared as text in SQL: another
	// format would misorder new rows against old ones.
	if q.Has("_time_format") {
		return "", "", fmt.Errorf("storage: %w", permanent("_time_format is not supported on SQLite URLs", nil))
	}
	q.Set("_time_format", "sqlite")
	// Pragmas run in order; busy_timeout first, so switching to WAL waits
	// for other connections.
	q["_pragma"] = append([]string{"busy_timeout(10000)"}, q["_pragma"]...)
	q["_pragma"] = append(q["_pragma"], "foreign_keys(1)", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	return dsn + "?" + q.Encode(), path, nil
}

// prepareSQLiteFile creates the database's directory (0700) and file (0600)
// if they are missing, and narrows an existing file and its -wal and -shm
// files to 0600, so private key envelopes and token metadata are readable by
// the service's user alone wherever the file lives.
func prepareSQLiteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("storage: create database directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// The umask can only take bits away from 0600.
		return f.Close()
	case !errors.Is(err, os.ErrExist):
		return fmt.Errorf("storage: create database file: %w", err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("storage: database file: %w", err)
		case info.Mode().Perm()&0o077 == 0:
			continue
		}
		if err := os.Chmod(name, info.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("storage: restrict database file mode: %w", err)
		}
	}
	return nil
}

// newGormLogger returns a silent logger, or one that reports to log as
// WithLogger documents.
func newGormLogger(log *slog.Logger) logger.Interface {
	if log == nil {
		return logger.Discard
	}
	return quietLogger{logger.NewSlogLogger(log, logger.Config{
		LogLevel:                  logger.Warn,
		SlowThreshold:             200 * time.Millisecond,
		ParameterizedQueries:      true,
		IgnoreRecordNotFoundError: true,
	})}
}

// quietLogger keeps duplicate-key errors and failures to connect out of the
// log (they become ErrAlreadyExists and ConnectionError, the caller's to
// report; the driver's text of the latter quotes the connection's user,
// database and address), never logs parameter values, and formats the
// ORM's printf-style messages, which its slog adapter would log verbatim.
type quietLogger struct{ logger.Interface }

func (l quietLogger) LogMode(level logger.LogLevel) logger.Interface {
	return quietLogger{l.Interface.LogMode(level)}
}

func (l quietLogger) Info(ctx context.Context, format string, args ...any) {
	if msg, ok := formatSafe(format, args); ok {
		l.Interface.Info(ctx, msg)
	}
}

func (l quietLogger) Warn(ctx context.Context, format string, args ...any) {
	if msg, ok := formatSafe(format, args); ok {
		l.Interface.Warn(ctx, msg)
	}
}

func (l quietLogger) Error(ctx context.Context, format string, args ...any) {
	if msg, ok := formatSafe(format, args); ok {
		l.Interface.Error(ctx, msg)
	}
}

// Trace logs a statement that failed or was slow, unless it failed to
// connect or lost its connection: not even as slow, since the time it took
// was spent waiting for the database to answer.
func (l quietLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey):
		err = nil
	case connectionError(err) != nil:
		return
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

// formatSafe formats a message of the ORM's. ok is false, and the message
// is not to be logged, when an argument is a failure to connect (Open
// returns it to its caller, who reports it).
func formatSafe(format string, args []any) (msg string, ok bool) {
	for _, a := range args {
		if err, isErr := a.(error); isErr && connectionError(err) != nil {
			return "", false
		}
	}
	return fmt.Sprintf(format, args...), true
}

// ParamsFilter implements gorm's logger.ParamsFilter: statements are logged
// without their arguments.
func (quietLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
