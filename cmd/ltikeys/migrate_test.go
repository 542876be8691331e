package main_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// migrationRows returns how many rows the migration table of the database
// (opened with driver and dsn) has for each version above 0.
func migrationRows(t *testing.T, driver, dsn string) map[int64]int {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT version_id, count(*) FROM "+storage.MigrationTable+" WHERE version_id > 0 GROUP BY version_id")
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

// checkEachOnce fails the test unless counts has one row for every
// migration and nothing else.
func checkEachOnce(t *testing.T, counts map[int64]int) {
	t.Helper()
	ok := len(counts) == storage.SchemaVersion
	for v := int64(1); v <= storage.SchemaVersion; v++ {
		ok = ok && counts[v] == 1
	}
	if !ok {
		t.Errorf("%s rows per version = %v, want one for each of 1 to %d", storage.MigrationTable, counts, storage.SchemaVersion)
	}
}

// TestServeStartsTogetherOnEmptyPostgres starts three serve processes at
// once on one empty database, as a deployment of replicas does: all become
// ready, each migration is applied exactly once (by one of them, the
// others waiting for it), and none logs a warning or an error.
func TestServeStartsTogetherOnEmptyPostgres(t *testing.T) {
	dbURL := storagetest.PostgresURL(t)
	env := append([]string{"LTIKEYS_DATABASE_URL=" + dbURL}, postgresSecrets...)
	var procs []*process
	for range 3 {
		procs = append(procs, spawnServe(t, t.TempDir(), env, "serving"))
	}
	for _, p := range procs {
		p.waitStarted(t)
	}
	applied := map[string]int{}
	for i, p := range procs {
		p.stop(t)
		for _, rec := range p.stderr.records("applied schema migration") {
			name, _ := rec["migration"].(string)
			applied[name]++
		}
		for line := range strings.SplitSeq(strings.TrimSpace(p.stderr.String()), "\n") {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("serve %d logged: %s", i, line)
			}
		}
	}
	if len(applied) != storage.SchemaVersion {
		t.Errorf("the processes logged applying %v; want each of the %d migrations", applied, storage.SchemaVersion)
	}
	for name, n := range applied {
		if n != 1 {
			t.Errorf("%s was applied %d times", name, n)
		}
	}
	checkEachOnce(t, migrationRows(t, "pgx", dbURL))
}

// statusLine matches a line of migrate status: version, state, when, file.
var statusLine = regexp.MustCompile(`^(\d+)\s+(applied|pending|baseline)\s+(-|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(\S.*)$`)

// migrationStates parses migrate status's table into version → state.
func migrationStates(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "database: ") || !strings.HasPrefix(lines[1], "VERSION") {
		t.Fatalf("migrate status printed no database line and table header:\n%s", out)
	}
	states := map[string]string{}
	for _, l := range lines[2:] {
		m := statusLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("migrate status line %q is not version, state, time, migration", l)
		}
		if (m[2] == "applied") != (m[3] != "-") {
			t.Errorf("migrate status line %q: a time if and only if applied", l)
		}
		states[m[1]] = m[2]
	}
	return states
}

// allStates returns version → state for every migration in state.
func allStates(state string) map[string]string {
	want := map[string]string{}
	for v := 1; v <= storage.SchemaVersion; v++ {
		want[fmt.Sprint(v)] = state
	}
	return want
}

func equalStates(a, b map[string]string) bool {
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

// TestMigrateCommand runs migrate status and up on a new database of each
// backend: everything pending, then applied once, then nothing to do. The
// PostgreSQL URL carries a password, which is never printed.
func TestMigrateCommand(t *testing.T) {
	pg, err := url.Parse(storagetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server trusts local connections, so the password is not
	// checked; it must not be shown either way.
	pg.User = url.UserPassword(pg.User.Username(), dbPassword)
	for _, tt := range []struct {
		name, env string
		// file is the SQLite database the command must create only when
		// migrating ("" for PostgreSQL).
		file           string
		driver, dsn    string
		wantDatabaseIs string
	}{
		{name: "SQLite", file: filepath.Join("ltikeys-data", "ltikeys.db"), driver: "sqlite", wantDatabaseIs: "database: sqlite://ltikeys-data/ltikeys.db"},
		{name: "Postgres", env: "LTIKEYS_DATABASE_URL=" + pg.String(), driver: "pgx", dsn: pg.String(),
			wantDatabaseIs: "database: " + strings.Replace(pg.String(), dbPassword, storage.Redacted, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var env []string
			if tt.env != "" {
				env = []string{tt.env}
			}
			if tt.file != "" {
				tt.dsn = filepath.Join(dir, tt.file)
			}
			run := func(args ...string) cliResult {
				t.Helper()
				res := mustCLI(t, dir, env, args...)
				if strings.Contains(res.stdout+res.stderr, dbPassword) {
					t.Errorf("ltikeys %s printed the password:\n%s%s", strings.Join(args, " "), res.stdout, res.stderr)
				}
				if first, _, _ := strings.Cut(res.stdout, "\n"); first != tt.wantDatabaseIs {
					t.Errorf("ltikeys %s: first line %q, want %q", strings.Join(args, " "), first, tt.wantDatabaseIs)
				}
				return res
			}

			if got := migrationStates(t, run("migrate", "status").stdout); !equalStates(got, allStates("pending")) {
				t.Errorf("status of a new database = %v, want every migration pending", got)
			}
			if tt.file != "" {
				if _, err := os.Stat(tt.dsn); !os.IsNotExist(err) {
					t.Errorf("migrate status created the database (%v)", err)
				}
			}

			up := run("migrate", "up").stdout
			for v := 1; v <= storage.SchemaVersion; v++ {
				if !regexp.MustCompile(fmt.Sprintf(`(?m)^applied %05d_\w+\.sql$`, v)).MatchString(up) {
					t.Errorf("migrate up does not say it applied migration %d:\n%s", v, up)
				}
			}
			if want := fmt.Sprintf("the schema is at version %d\n", storage.SchemaVersion); !strings.HasSuffix(up, want) {
				t.Errorf("migrate up does not end with %q:\n%s", want, up)
			}
			if got := migrationStates(t, run("migrate", "status").stdout); !equalStates(got, allStates("applied")) {
				t.Errorf("status after up = %v, want every migration applied", got)
			}
			if again := run("migrate", "up").stdout; strings.Contains(again, "applied ") || !strings.Contains(again, "nothing to apply") {
				t.Errorf("a second migrate up:\n%s\nwant nothing applied", again)
			}
			checkEachOnce(t, migrationRows(t, tt.driver, tt.dsn))
		})
	}
}

// TestMigrateRefusesNewerSchema runs migrate status and up on a database
// that a later release migrated: status lists the unknown migration and
// fails, up fails and changes nothing.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "newer.db")
	openOnce(t, "sqlite://"+dbFile)
	db, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	later := storage.SchemaVersion + 1
	if _, err := db.ExecContext(t.Context(), fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, 1)", storage.MigrationTable, later)); err != nil {
		t.Fatal(err)
	}
	env := []string{"LTIKEYS_DATABASE_URL=sqlite://" + dbFile}

	status := runCLI(t, dir, env, "migrate", "status")
	if status.exit == 0 {
		t.Errorf("migrate status of a newer schema exited 0:\n%s", status.stdout)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+applied\s+\S+ \S+\s+\(unknown to this binary\)$`, later)).MatchString(status.stdout) {
		t.Errorf("migrate status does not list migration %d as unknown:\n%s", later, status.stdout)
	}
	want := fmt.Sprintf("ltikeys: --database-url: storage: database configuration: the database schema is version %d, newer than this binary's %d", later, storage.SchemaVersion)
	if !strings.HasPrefix(strings.TrimSpace(status.stderr), want) {
		t.Errorf("migrate status stderr = %q, want %q…", status.stderr, want)
	}

	before := migrationRows(t, "sqlite", dbFile)
	up := runCLI(t, dir, env, "migrate", "up")
	if up.exit == 0 || strings.Contains(up.stdout, "applied") || !strings.Contains(up.stderr, "newer than this binary") {
		t.Errorf("migrate up of a newer schema: exit %d\nstdout:\n%s\nstderr:\n%s", up.exit, up.stdout, up.stderr)
	}
	if after := migrationRows(t, "sqlite", dbFile); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("migrate up changed the migration table: %v, then %v", before, after)
	}
}
