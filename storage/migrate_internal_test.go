package storage

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// backendCases pairs each backend with how to get a fresh database URL of
// it.
var backendCases = []struct {
	backend backend
	url     func(testing.TB) string
}{
	{sqliteBackend, storagetest.SQLiteURL},
	{postgresBackend, storagetest.PostgresURL},
}

// sqlDB opens a storagetest URL with database/sql.
func sqlDB(t *testing.T, databaseURL string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", databaseURL
	if p, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		driver, dsn = "sqlite", p
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestEmbeddedMigrations checks the migration files: both backends have
// migrations 1 to SchemaVersion, with the same names, and list them as
// goose reads them.
func TestEmbeddedMigrations(t *testing.T) {
	var names [][]string
	for _, c := range backendCases {
		ms, err := c.backend.embedded()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, m := range ms {
			if m.Version != int64(i+1) {
				t.Errorf("%s: migration %d is version %d; want 1 to %d without gaps", c.backend.name, i, m.Version, SchemaVersion)
			}
			got = append(got, m.Name)
		}
		if len(ms) != SchemaVersion {
			t.Errorf("%s: %d migrations, want SchemaVersion = %d", c.backend.name, len(ms), SchemaVersion)
		}
		db, err := sql.Open("sqlite", ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		p, err := c.backend.provider(db)
		if err != nil {
			t.Fatal(err)
		}
		var goose []string
		for _, s := range p.ListSources() {
			goose = append(goose, path.Base(s.Path))
		}
		if !slices.Equal(got, goose) {
			t.Errorf("%s: migrations %q, goose reads %q", c.backend.name, got, goose)
		}
		names = append(names, got)
	}
	if !slices.Equal(names[0], names[1]) {
		t.Errorf("the backends' migrations differ: %q and %q", names[0], names[1])
	}
}

// TestEachMigrationRecordsItsVersion applies the migrations one at a time:
// after each, ltikeys_schema.version is its number, so that a release
// that knows only the versions below refuses the database.
func TestEachMigrationRecordsItsVersion(t *testing.T) {
	for _, c := range backendCases {
		t.Run(c.backend.name, func(t *testing.T) {
			db := sqlDB(t, c.url(t))
			p, err := c.backend.provider(db)
			if err != nil {
				t.Fatal(err)
			}
			for v := int64(1); v <= SchemaVersion; v++ {
				if _, err := p.UpTo(t.Context(), v); err != nil {
					t.Fatalf("up to %d: %v", v, err)
				}
				var recorded int64
				if err := db.QueryRowContext(t.Context(), "SELECT version FROM ltikeys_schema WHERE id = 1").Scan(&recorded); err != nil {
					t.Fatal(err)
				}
				if recorded != v {
					t.Errorf("after migration %d, ltikeys_schema.version = %d", v, recorded)
				}
			}
		})
	}
}

// TestMigrationsMatchModels compares the schema the migrations create with
// the one GORM would create from the models: a model changed without a
// migration, or a migration that does not match its model, fails it.
// ltikeys_schema, which no model maps, and the migration table are left
// out.
func TestMigrationsMatchModels(t *testing.T) {
	for _, c := range backendCases {
		t.Run(c.backend.name, func(t *testing.T) {
			migrated := c.url(t)
			if _, err := Migrate(t.Context(), migrated); err != nil {
				t.Fatal(err)
			}
			fromModels := c.url(t)
			var dialector gorm.Dialector = postgres.Open(fromModels)
			if p, ok := strings.CutPrefix(fromModels, "sqlite://"); ok {
				dialector = sqlite.Open(p)
			}
			db, err := gorm.Open(dialector, &gorm.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.AutoMigrate(&jwkModel{}, &registrationModel{}, &changeModel{}, &nonceModel{}); err != nil {
				t.Fatal(err)
			}
			closeDB(db)
			got := storagetest.Schema(t, migrated, MigrationTable, "ltikeys_schema")
			if want := storagetest.Schema(t, fromModels); got != want {
				t.Errorf("the migrations' schema:\n%s\n\nthe models':\n%s", got, want)
			}
		})
	}
}

// signalHandler is a slog handler that closes seen on the first record
// with message msg, and drops every record.
type signalHandler struct {
	slog.Handler
	msg  string
	seen chan struct{}
}

func (signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case <-h.seen:
		default:
			close(h.seen)
		}
	}
	return nil
}

// TestMigrationWaitsForLock holds the migration lock while Migrate runs:
// Migrate says it is waiting and applies nothing until the lock is
// released, then migrates; a wait that its context ends gives up.
func TestMigrationWaitsForLock(t *testing.T) {
	for _, c := range backendCases {
		t.Run(c.backend.name, func(t *testing.T) {
			url := c.url(t)
			b := c.backend
			if p, ok := strings.CutPrefix(url, "sqlite://"); ok {
				b.sqlitePath = p
			}
			holder := sqlDB(t, url)
			unlock, err := b.lock(t.Context(), holder, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if b.sqlitePath != "" {
				info, err := os.Stat(b.sqlitePath + lockFileSuffix)
				if err != nil || info.Mode().Perm() != 0o600 {
					t.Errorf("lock file: %v, %v; want mode 0600", info, err)
				}
			}

			// A wait cut short by its context.
			waiting := signalHandler{Handler: slog.DiscardHandler, msg: waitingMessage, seen: make(chan struct{})}
			ctx, cancel := context.WithCancel(t.Context())
			gaveUp := make(chan error, 1)
			go func() {
				_, err := Migrate(ctx, url, WithLogger(slog.New(waiting)))
				gaveUp <- err
			}()
			waitFor(t, waiting.seen)
			cancel()
			if err := receive(t, gaveUp); err == nil {
				t.Error("Migrate whose context ended while it waited succeeded")
			}

			waiting = signalHandler{Handler: slog.DiscardHandler, msg: waitingMessage, seen: make(chan struct{})}
			type result struct {
				done []Migration
				err  error
			}
			finished := make(chan result, 1)
			go func() {
				done, err := Migrate(t.Context(), url, WithLogger(slog.New(waiting)))
				finished <- result{done, err}
			}()
			waitFor(t, waiting.seen)
			select {
			case r := <-finished:
				t.Fatalf("Migrate returned (%+v, %v) while another held the lock", r.done, r.err)
			default:
			}
			var exists bool
			if err := holder.QueryRowContext(t.Context(), map[string]string{
				"sqlite":   "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'lti_jwks'",
				"postgres": "SELECT to_regclass('lti_jwks') IS NOT NULL",
			}[b.name]).Scan(&exists); err != nil || exists {
				t.Errorf("lti_jwks exists while the lock is held (%v)", err)
			}
			unlock()
			r := receive(t, finished)
			if r.err != nil || len(r.done) != SchemaVersion {
				t.Errorf("Migrate after the lock was released = %+v, %v; want every migration applied", r.done, r.err)
			}
		})
	}
}

// TestLockPostgresReleasesOnlyItsOwn checks that releasing the advisory
// lock leaves its connection usable and the lock free for the next taker.
func TestLockPostgresReleasesOnlyItsOwn(t *testing.T) {
	db := sqlDB(t, storagetest.PostgresURL(t))
	log := slog.New(slog.DiscardHandler)
	for range 3 {
		unlock, err := lockPostgres(t.Context(), db, log)
		if err != nil {
			t.Fatal(err)
		}
		var held int
		if err := db.QueryRowContext(t.Context(), advisoryLocks+" AND granted").Scan(&held); err != nil || held != 1 {
			t.Errorf("advisory locks held = %d, %v; want 1", held, err)
		}
		unlock()
	}
	var held int
	if err := db.QueryRowContext(t.Context(), advisoryLocks).Scan(&held); err != nil || held != 0 {
		t.Errorf("advisory locks after unlocking = %d, %v; want 0", held, err)
	}
	if _, err := lockPostgres(canceled(t), db, log); !errors.Is(err, context.Canceled) {
		t.Errorf("lockPostgres with a cancelled context: %v", err)
	}
}

// advisoryLocks counts the migration lock's entries in pg_locks, which
// lists the locks of every database on the server.
const advisoryLocks = `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND (classid::bigint << 32 | objid::bigint) = 30527293606951283`

// waitFor waits for ch to close, failing the test after 30s.
func waitFor(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("Migrate did not wait for the lock in 30s")
	}
}

// receive returns the value sent on ch, failing the test after 30s.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("Migrate did not return in 30s")
	}
	var zero T
	return zero
}

func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
