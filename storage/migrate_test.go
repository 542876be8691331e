package storage_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for direct queries

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// rawDB opens the database at a storagetest URL with database/sql, for
// queries beneath the store.
func rawDB(t *testing.T, databaseURL string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", databaseURL
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// appliedCounts returns how many rows MigrationTable has for each version
// above 0.
func appliedCounts(t *testing.T, databaseURL string) map[int64]int {
	t.Helper()
	rows, err := rawDB(t, databaseURL).QueryContext(t.Context(),
		"SELECT version_id, count(*) FROM "+storage.MigrationTable+" WHERE version_id > 0 GROUP BY version_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[int64]int{}
	for rows.Next() {
		var v int64
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		counts[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// eachOnce is appliedCounts of a database that has had every migration
// exactly once.
func eachOnce() map[int64]int {
	want := map[int64]int{}
	for v := int64(1); v <= storage.SchemaVersion; v++ {
		want[v] = 1
	}
	return want
}

// recordedVersion returns ltikeys_schema.version.
func recordedVersion(t *testing.T, databaseURL string) int64 {
	t.Helper()
	var v int64
	if err := rawDB(t, databaseURL).QueryRowContext(t.Context(), "SELECT version FROM ltikeys_schema WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// freshSchema returns the Schema of a new database of url's backend
// migrated to the latest version.
func freshSchema(t *testing.T, newURL func(testing.TB) string) string {
	t.Helper()
	url := newURL(t)
	if _, err := storage.Migrate(t.Context(), url); err != nil {
		t.Fatalf("Migrate a fresh database: %v", err)
	}
	return storagetest.Schema(t, url)
}

// TestOpenConcurrently opens one new database from several goroutines at
// once, as replicas starting together do: every Open succeeds, each
// migration is applied exactly once, and the stores share one schema.
func TestOpenConcurrently(t *testing.T) {
	const opens = 6
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			stores := make([]storage.Store, opens)
			errs := make([]error, opens)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range opens {
				wg.Go(func() {
					<-start
					stores[i], errs[i] = storage.Open(t.Context(), url)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Open %d: %v", i, err)
				} else {
					t.Cleanup(func() { stores[i].Close() })
				}
			}
			if t.Failed() {
				return
			}
			if got, want := appliedCounts(t, url), eachOnce(); !maps(got, want) {
				t.Errorf("%s rows per version = %v, want %v", storage.MigrationTable, got, want)
			}
			if v := recordedVersion(t, url); v != storage.SchemaVersion {
				t.Errorf("ltikeys_schema.version = %d, want %d", v, storage.SchemaVersion)
			}
			reg, key := fixture("k")
			if _, _, err := stores[0].CreateRegistration(t.Context(), reg, key); err != nil {
				t.Fatal(err)
			}
			if got, err := stores[opens-1].GetRegistration(t.Context(), reg.ID); err != nil || got.KID != key.KID {
				t.Errorf("GetRegistration through another store = %+v, %v", got, err)
			}
		})
	}
}

func maps(a, b map[int64]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMigrateAndStatus runs Migrate and MigrationStatus on a new database:
// every migration is pending, then applied, once.
func TestMigrateAndStatus(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			ctx := t.Context()
			before, err := storage.MigrationStatus(ctx, url)
			if err != nil {
				t.Fatalf("MigrationStatus before: %v", err)
			}
			if len(before) != storage.SchemaVersion {
				t.Fatalf("MigrationStatus lists %d migrations, want %d: %+v", len(before), storage.SchemaVersion, before)
			}
			for i, m := range before {
				if m.Version != int64(i+1) || m.State != storage.MigrationPending || !m.AppliedAt.IsZero() ||
					!strings.HasPrefix(m.Name, fmt.Sprintf("%05d_", i+1)) || !strings.HasSuffix(m.Name, ".sql") {
					t.Errorf("before migrating, migration %d = %+v; want version %d, pending", i, m, i+1)
				}
			}
			if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("MigrationStatus created the database file (%v)", err)
				}
			}

			done, err := storage.Migrate(ctx, url)
			if err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if len(done) != len(before) {
				t.Fatalf("Migrate did %+v, want every migration", done)
			}
			for i, m := range done {
				if m.Version != before[i].Version || m.Name != before[i].Name || m.State != storage.MigrationApplied {
					t.Errorf("Migrate's result %d = %+v, want %s applied", i, m, before[i].Name)
				}
			}

			after, err := storage.MigrationStatus(ctx, url)
			if err != nil {
				t.Fatalf("MigrationStatus after: %v", err)
			}
			for i, m := range after {
				if m.Name != before[i].Name || m.State != storage.MigrationApplied || m.AppliedAt.IsZero() {
					t.Errorf("after migrating, migration %d = %+v, want %s applied, with a time", i, m, before[i].Name)
				}
			}
			if again, err := storage.Migrate(ctx, url); err != nil || len(again) != 0 {
				t.Errorf("second Migrate = %+v, %v; want nothing done", again, err)
			}
			if got := appliedCounts(t, url); !maps(got, eachOnce()) {
				t.Errorf("%s rows per version = %v, want each once", storage.MigrationTable, got)
			}
		})
	}
}

// restoreDump replays a plain-SQL dump into a new PostgreSQL database and
// returns its URL.
func restoreDump(t *testing.T, file string) string {
	t.Helper()
	script, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	url := storagetest.PostgresURL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// Without arguments, Exec runs the whole script in the simple protocol.
	if _, err := conn.Exec(t.Context(), string(script)); err != nil {
		t.Fatalf("restore %s: %v", file, err)
	}
	return url
}

// The files in testdata/automigrate were written by the last release whose
// schema GORM's AutoMigrate managed (main at f8007a7), by the generator
// and steps testdata/automigrate/README.md describes: a first Open, and
// the scenario of testdata/sqlite-v1, on each backend.
const autoMigrateRelease = "testdata/automigrate"

// autoMigrateFixture returns the URL of a new database holding the
// fixture of that release: "empty" or "data".
func autoMigrateFixture(t *testing.T, backend, which string) string {
	t.Helper()
	if backend == "Postgres" {
		return restoreDump(t, filepath.Join(autoMigrateRelease, "postgres-"+which+".sql"))
	}
	return "sqlite://" + copyFile(t, filepath.Join(autoMigrateRelease, "sqlite-"+which+".db"), t.TempDir())
}

// TestUpgradeFromAutoMigrateRelease opens databases that the last release
// before versioned migrations wrote: their schema is taken over as
// migration 1 and migrated to the latest, which leaves the schema of a new
// database; they pass the conformance suites; and their rows read back as
// that release read them.
func TestUpgradeFromAutoMigrateRelease(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("Schema", func(t *testing.T) {
				url := autoMigrateFixture(t, b.name, "empty")
				status, err := storage.MigrationStatus(t.Context(), url)
				if err != nil || len(status) == 0 || status[0].State != storage.MigrationBaseline {
					t.Fatalf("MigrationStatus before = %+v, %v; want migration 1 baseline", status, err)
				}
				done, err := storage.Migrate(t.Context(), url)
				if err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				if len(done) != storage.SchemaVersion || done[0].State != storage.MigrationBaseline || done[1].State != storage.MigrationApplied {
					t.Errorf("Migrate did %+v; want migration 1 recorded as applied, then the others applied", done)
				}
				if got, want := storagetest.Schema(t, url), freshSchema(t, b.url); got != want {
					t.Errorf("schema after upgrade differs from a new database's:\n%s", lineDiff(got, want))
				}
				if got := appliedCounts(t, url); !maps(got, eachOnce()) {
					t.Errorf("%s rows per version = %v, want each once", storage.MigrationTable, got)
				}
				if v := recordedVersion(t, url); v != storage.SchemaVersion {
					t.Errorf("ltikeys_schema.version = %d, want %d", v, storage.SchemaVersion)
				}
			})
			t.Run("Conformance", func(t *testing.T) {
				conformance.RunTests(t, func(t *testing.T) storage.Store {
					return openStore(t, autoMigrateFixture(t, b.name, "empty"))
				})
				conformance.RunLifecycleTests(t, func(t *testing.T, now func() time.Time) storage.Store {
					return openStore(t, autoMigrateFixture(t, b.name, "empty"), storage.WithClock(now))
				})
			})
			t.Run("Data", func(t *testing.T) {
				url := autoMigrateFixture(t, b.name, "data")
				if _, err := storage.Migrate(t.Context(), url); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				// Before anything writes: the transitions checkEarlierData
				// applies stamp the rows they change.
				var stamped int
				if err := rawDB(t, url).QueryRowContext(t.Context(), "SELECT count(*) FROM lti_jwks WHERE version <> 0").Scan(&stamped); err != nil || stamped != 0 {
					t.Errorf("rows written before lti_jwks.version existed with a version: %d (%v); want 0", stamped, err)
				}
				checkEarlierData(t, url, filepath.Join(autoMigrateRelease, "data.json"))
			})
		})
	}
}

// The files in testdata/schema-v2 were written by main at 5bec7c6, the
// last release with schema version 2, by the generator of
// testdata/automigrate and the steps testdata/schema-v2/README.md
// describes.
const schemaV2Release = "testdata/schema-v2"

// schemaV2Fixture returns the URL of a new database holding the fixture
// of that release: "empty" or "data".
func schemaV2Fixture(t *testing.T, backend, which string) string {
	t.Helper()
	if backend == "Postgres" {
		return restoreDump(t, filepath.Join(schemaV2Release, "postgres-"+which+".sql"))
	}
	return "sqlite://" + copyFile(t, filepath.Join(schemaV2Release, "sqlite-"+which+".db"), t.TempDir())
}

// keyVersions returns kid=version for every row of lti_jwks, by kid.
func keyVersions(t *testing.T, url string) string {
	t.Helper()
	rows, err := rawDB(t, url).QueryContext(t.Context(), "SELECT kid, version FROM lti_jwks ORDER BY kid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var (
			kid     string
			version int64
		)
		if err := rows.Scan(&kid, &version); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%d ", kid, version)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestUpgradeFromSchemaVersion2 opens databases that the last release with
// schema version 2 wrote: only migration 3 is pending, and applying it in
// place leaves the schema of a new database, keeps every row as that
// release read it (the keys' change versions included), gives every
// registration, deleted ones too, an empty list of deployment ids, and
// leaves a store that records nonces and deployment ids.
func TestUpgradeFromSchemaVersion2(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("Schema", func(t *testing.T) {
				url := schemaV2Fixture(t, b.name, "empty")
				status, err := storage.MigrationStatus(t.Context(), url)
				if err != nil || len(status) != 3 {
					t.Fatalf("MigrationStatus before = %+v, %v; want 3 migrations", status, err)
				}
				for i, want := range []storage.MigrationState{storage.MigrationApplied, storage.MigrationApplied, storage.MigrationPending} {
					if status[i].State != want {
						t.Errorf("before: migration %d is %s, want %s", status[i].Version, status[i].State, want)
					}
				}
				done, err := storage.Migrate(t.Context(), url)
				if err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				if len(done) != 1 || done[0].Version != 3 || done[0].State != storage.MigrationApplied {
					t.Errorf("Migrate did %+v; want migration 3 applied, and only it", done)
				}
				if got, want := storagetest.Schema(t, url), freshSchema(t, b.url); got != want {
					t.Errorf("schema after upgrade differs from a new database's:\n%s", lineDiff(got, want))
				}
				if got := appliedCounts(t, url); !maps(got, eachOnce()) {
					t.Errorf("%s rows per version = %v, want each once", storage.MigrationTable, got)
				}
				if v := recordedVersion(t, url); v != 3 {
					t.Errorf("ltikeys_schema.version = %d, want 3", v)
				}
			})
			t.Run("Data", func(t *testing.T) {
				url := schemaV2Fixture(t, b.name, "data")
				versions := keyVersions(t, url)
				if versions == "" || strings.Contains(versions, "=0 ") {
					t.Fatalf("the fixture's keys = %q, want each with a change version", versions)
				}
				if _, err := storage.Migrate(t.Context(), url); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				if got := keyVersions(t, url); got != versions {
					t.Errorf("lti_jwks versions after the upgrade:\n%s\nbefore:\n%s", got, versions)
				}
				var rows, empty int
				err := rawDB(t, url).QueryRowContext(t.Context(),
					"SELECT count(*), count(CASE WHEN deployment_ids = '[]' THEN 1 END) FROM platform_registrations").Scan(&rows, &empty)
				if err != nil || rows != 4 || empty != rows {
					t.Errorf("registrations with deployment_ids '[]': %d of %d (%v); want all 4", empty, rows, err)
				}
				checkEarlierData(t, url, filepath.Join(schemaV2Release, "data.json"))

				s := openStore(t, url)
				ctx := t.Context()
				id := "0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01" // registration 1 of the scenario
				reg, err := s.UpdateRegistration(ctx, id, func(r storage.Registration) (storage.Registration, error) {
					r.DeploymentIDs = []string{"d-2", "d-1"}
					return r, nil
				})
				if err != nil || !slices.Equal(reg.DeploymentIDs, []string{"d-2", "d-1"}) || reg.JWKSURI != "https://platform1.example/keys" {
					t.Errorf("UpdateRegistration of an upgraded registration = %+v, %v", reg, err)
				}
				exp := time.Now().Add(time.Hour)
				if err := s.UseNonce(ctx, reg.Issuer, "n", exp); err != nil {
					t.Errorf("UseNonce: %v", err)
				}
				if err := s.UseNonce(ctx, reg.Issuer, "n", exp); !errors.Is(err, storage.ErrNonceUsed) {
					t.Errorf("second UseNonce: %v, want ErrNonceUsed", err)
				}
			})
		})
	}
}

// TestAdoptEarlierSchemas opens databases of every schema that releases
// before versioned migrations left, on both backends: each ends with the
// schema of a new database.
func TestAdoptEarlierSchemas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			want := freshSchema(t, b.url)
			cases := []struct {
				name string
				url  func(t *testing.T) string
			}{
				{"BeforeKeySchedules", func(t *testing.T) string { return schemaBeforeLifecycle(t, b.url(t), true) }},
				{"BeforeChangeCounter", func(t *testing.T) string { return schemaBeforeLifecycle(t, b.url(t), false) }},
				{"LastAutoMigrateRelease", func(t *testing.T) string { return autoMigrateFixture(t, b.name, "empty") }},
			}
			if b.name == "SQLite" {
				cases = append(cases, struct {
					name string
					url  func(t *testing.T) string
				}{"EarlierSQLiteDriver", func(t *testing.T) string {
					return "sqlite://" + copyFile(t, filepath.Join(earlierRelease, "empty.db"), t.TempDir())
				}})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					url := c.url(t)
					openStore(t, url).Close()
					if got := storagetest.Schema(t, url); got != want {
						t.Errorf("schema after adoption differs from a new database's:\n%s", lineDiff(got, want))
					}
					if got := appliedCounts(t, url); !maps(got, eachOnce()) {
						t.Errorf("%s rows per version = %v, want each once", storage.MigrationTable, got)
					}
				})
			}
		})
	}
}

// lineDiff lists the lines only one of two Schemas has.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// snapshot is what a refused Open must leave unchanged: the schema, the
// migration table's rows (when there is one) and ltikeys_schema.
func snapshot(t *testing.T, url string) string {
	t.Helper()
	db := rawDB(t, url)
	var b strings.Builder
	b.WriteString(storagetest.Schema(t, url) + "\n")
	queries := []string{"SELECT id || ':' || version FROM ltikeys_schema", "SELECT id || ':' || kid FROM lti_jwks ORDER BY id"}
	var tracked bool
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) > 0 FROM "+storage.MigrationTable).Scan(&tracked); err == nil {
		queries = append(queries, "SELECT id || ':' || version_id FROM "+storage.MigrationTable+" ORDER BY id")
	}
	for _, q := range queries {
		rows, err := db.QueryContext(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// TestOpenRefusesNewerSchema opens databases that a later release
// migrated: whether the migration table or ltikeys_schema says so, Open
// and Migrate fail with a permanent ErrSchemaTooNew and change nothing,
// and MigrationStatus lists the migration this binary does not have.
func TestOpenRefusesNewerSchema(t *testing.T) {
	later := storage.SchemaVersion + 1
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range []struct {
				name     string
				database func(t *testing.T) string
			}{
				{"MigrationTable", func(t *testing.T) string {
					url := b.url(t)
					if _, err := storage.Migrate(t.Context(), url); err != nil {
						t.Fatal(err)
					}
					// As goose records a migration (is_applied is 1 or true).
					if _, err := rawDB(t, url).ExecContext(t.Context(),
						fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, 1 = 1)", storage.MigrationTable, later)); err != nil {
						t.Fatal(err)
					}
					return url
				}},
				{"SchemaVersion", func(t *testing.T) string {
					url := b.url(t)
					if _, err := storage.Migrate(t.Context(), url); err != nil {
						t.Fatal(err)
					}
					if _, err := rawDB(t, url).ExecContext(t.Context(), fmt.Sprintf("UPDATE ltikeys_schema SET version = %d", later)); err != nil {
						t.Fatal(err)
					}
					return url
				}},
				{"UntrackedSchemaVersion", func(t *testing.T) string {
					// A database of the last release before versioned
					// migrations with a later version recorded: the
					// version alone must stop the adoption.
					url := autoMigrateFixture(t, b.name, "data")
					if _, err := rawDB(t, url).ExecContext(t.Context(), fmt.Sprintf("UPDATE ltikeys_schema SET version = %d", later)); err != nil {
						t.Fatal(err)
					}
					return url
				}},
			} {
				t.Run(c.name, func(t *testing.T) {
					url := c.database(t)
					before := snapshot(t, url)

					s, err := storage.Open(t.Context(), url)
					if err == nil {
						s.Close()
						t.Fatal("Open succeeded")
					}
					if !errors.Is(err, storage.ErrSchemaTooNew) || !storage.IsPermanent(err) {
						t.Errorf("Open: %v; want a permanent ErrSchemaTooNew", err)
					}
					if want := fmt.Sprintf("the database schema is version %d, newer than this binary's %d", later, storage.SchemaVersion); !strings.Contains(err.Error(), want) {
						t.Errorf("Open: %q does not say %q", err, want)
					}
					if done, err := storage.Migrate(t.Context(), url); !errors.Is(err, storage.ErrSchemaTooNew) || len(done) != 0 {
						t.Errorf("Migrate = %+v, %v; want nothing done and ErrSchemaTooNew", done, err)
					}
					status, err := storage.MigrationStatus(t.Context(), url)
					if !errors.Is(err, storage.ErrSchemaTooNew) || len(status) == 0 {
						t.Fatalf("MigrationStatus = %+v, %v; want the list and ErrSchemaTooNew", status, err)
					}
					if c.name == "MigrationTable" {
						if last := status[len(status)-1]; last.Version != int64(later) || last.Name != "" || last.State != storage.MigrationApplied {
							t.Errorf("MigrationStatus ends with %+v; want version %d, applied, unknown to this binary", last, later)
						}
					}
					if after := snapshot(t, url); after != before {
						t.Errorf("a refused Open changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
					}
				})
			}
		})
	}
}

// TestFailedAdoptionChangesNothing opens a database with an lti_jwks table
// and nothing else, which no release wrote: taking over its schema fails,
// and leaves no trace.
func TestFailedAdoptionChangesNothing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			blob := "bytea"
			if b.name == "SQLite" {
				blob = "blob"
			}
			if _, err := rawDB(t, url).ExecContext(t.Context(), "CREATE TABLE lti_jwks (id bigint PRIMARY KEY, kid varchar(255) NOT NULL, private_jwk "+blob+")"); err != nil {
				t.Fatal(err)
			}
			before := storagetest.Schema(t, url)
			if s, err := storage.Open(t.Context(), url); err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			} else if !strings.Contains(err.Error(), "adopt the schema of an earlier release") {
				t.Errorf("Open: %v; want it to say the adoption failed", err)
			}
			if after := storagetest.Schema(t, url); after != before {
				t.Errorf("the failed adoption changed the schema:\n%s", lineDiff(after, before))
			}
		})
	}
}

// TestMigrationLog checks what migrating a new database logs: one info
// line per migration it applied, naming it, and nothing above info.
func TestMigrationLog(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			openStore(t, b.url(t), storage.WithLogger(log))
			var applied []string
			for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
				var rec struct{ Level, Msg, Migration string }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if rec.Level != "INFO" || rec.Msg != "applied schema migration" {
					t.Errorf("unexpected log line: %s", line)
					continue
				}
				applied = append(applied, rec.Migration)
			}
			status, err := storage.MigrationStatus(t.Context(), b.url(t))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, m := range status {
				want = append(want, m.Name)
			}
			if !slices.Equal(applied, want) {
				t.Errorf("logged applying %q, want %q", applied, want)
			}
		})
	}
}
