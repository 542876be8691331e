package storage_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver storage uses, for direct queries

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Store {
		return openStore(t, storagetest.SQLiteURL(t))
	})
}

func TestSQLiteLifecycle(t *testing.T) {
	conformance.RunLifecycleTests(t, func(t *testing.T, now func() time.Time) storage.Store {
		return openStore(t, storagetest.SQLiteURL(t), storage.WithClock(now))
	})
}

func TestSQLiteSharedDatabase(t *testing.T) {
	conformance.RunSharedDatabaseTests(t, func(t *testing.T) conformance.Opener {
		url := storagetest.SQLiteURL(t)
		return func(t *testing.T, now func() time.Time) storage.Store {
			return openStore(t, url, storage.WithClock(now))
		}
	})
}

// The database files in testdata/sqlite-v1 were written by ltikeys before
// the embedded database moved from github.com/glebarez/sqlite (SQLite
// 3.40.1) to github.com/libtnb/sqlite on modernc.org/sqlite: empty.db by a
// first Open, data.db by the store API with the clock of data.json, which
// records what that release read back from it.
const earlierRelease = "testdata/sqlite-v1"

// copyFile copies src into dir and returns the copy's path.
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestSQLiteSchemaOfEarlierRelease runs the conformance suites on copies of
// a database file that the earlier release created.
func TestSQLiteSchemaOfEarlierRelease(t *testing.T) {
	earlier := func(t *testing.T) string {
		return "sqlite://" + copyFile(t, filepath.Join(earlierRelease, "empty.db"), t.TempDir())
	}
	conformance.RunTests(t, func(t *testing.T) storage.Store {
		return openStore(t, earlier(t))
	})
	conformance.RunLifecycleTests(t, func(t *testing.T, now func() time.Time) storage.Store {
		return openStore(t, earlier(t), storage.WithClock(now))
	})
}

// TestSQLiteDataOfEarlierRelease reads a database the earlier release
// wrote and gets back exactly what that release read, then lets due
// transitions run against its stored times.
func TestSQLiteDataOfEarlierRelease(t *testing.T) {
	url := "sqlite://" + copyFile(t, filepath.Join(earlierRelease, "data.db"), t.TempDir())
	checkEarlierData(t, url, filepath.Join(earlierRelease, "data.json"))
}

// checkEarlierData opens the database at url, which an earlier release
// wrote with the scenario of testdata/sqlite-v1, and checks that it reads
// back what that release read (recorded in the file golden), and that
// transitions then fall due at the stored times.
func checkEarlierData(t *testing.T, url, golden string) {
	t.Helper()
	var want struct {
		Version       int64
		Registrations []storage.Registration
		Deleted       []string
		Keys          []storage.Key
	}
	text, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(text, &want); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s := openStore(t, url, storage.WithClock(func() time.Time { return clock }))
	ctx := t.Context()

	if v, err := s.Version(ctx); err != nil || v != want.Version {
		t.Errorf("Version = %d, %v; want %d", v, err, want.Version)
	}
	for _, w := range want.Registrations {
		got, err := s.GetRegistration(ctx, w.ID)
		if err != nil {
			t.Fatalf("GetRegistration(%s): %v", w.ID, err)
		}
		if g, w := asJSON(t, got), asJSON(t, w); g != w {
			t.Errorf("registration read back as\n%s\nthe earlier release read\n%s", g, w)
		}
	}
	for _, id := range want.Deleted {
		if _, err := s.GetRegistration(ctx, id); err == nil {
			t.Errorf("deleted registration %s is readable", id)
		}
	}
	kids, err := s.KeyIDs(ctx)
	if err != nil || len(kids) != len(want.Keys) {
		t.Fatalf("KeyIDs = %v, %v; want %d kids", kids, err, len(want.Keys))
	}
	for _, w := range want.Keys {
		got, err := s.GetKey(ctx, w.KID)
		if err != nil {
			t.Fatalf("GetKey(%s): %v", w.KID, err)
		}
		if g, w := asJSON(t, got), asJSON(t, w); g != w {
			t.Errorf("key read back as\n%s\nthe earlier release read\n%s", g, w)
		}
	}

	// Registration 2's pending key activates on 21 November at 09:31:21,
	// registration 1's previous key retires on 22 November at 09:30:21.
	// Stored times compare with the clock's as text, so a clock on the
	// morning of the 22nd in another format (2026-11-22T01:00…) could
	// pass for later than 2026-11-22 09:30: only the activation is due.
	clock = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	if n, err := s.ApplyTransitions(ctx); err != nil || n != 1 {
		t.Fatalf("ApplyTransitions on the 22nd at 01:00 = %d, %v; want 1", n, err)
	}
	reg2, err := s.GetRegistration(ctx, want.Registrations[1].ID)
	if err != nil || reg2.KID != want.Registrations[1].PendingKID || reg2.PendingKID != "" {
		t.Errorf("registration 2 after its activation = %+v, %v; want kid %s and nothing pending", reg2, err, want.Registrations[1].PendingKID)
	}
	if !published(t, s)["kid-b-01"] {
		t.Errorf("registration 1's previous key retired before its time")
	}
	clock = time.Date(2026, 11, 22, 9, 30, 22, 0, time.UTC)
	if n, err := s.ApplyTransitions(ctx); err != nil || n != 1 {
		t.Fatalf("ApplyTransitions on the 22nd at 09:30:22 = %d, %v; want 1", n, err)
	}
	if p := published(t, s); p["kid-b-01"] || !p["kid-f-01"] {
		t.Errorf("published after registration 1's previous key retired: %v", p)
	}
	if n, err := s.ApplyTransitions(ctx); err != nil || n != 0 {
		t.Errorf("second ApplyTransitions = %d, %v; want 0", n, err)
	}
}

// published returns the kids of s's active keys.
func published(t *testing.T, s storage.Store) map[string]bool {
	t.Helper()
	active, err := s.ActiveKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	kids := map[string]bool{}
	for _, k := range active {
		kids[k.KID] = true
	}
	return kids
}

// asJSON is v as data.json records it: times to the nanosecond, with their
// zone offset, and bytes in base64.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSQLiteVersion checks that the embedded SQLite is a current release.
func TestSQLiteVersion(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version string
	if err := db.QueryRowContext(t.Context(), "select sqlite_version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(version, ".")
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major != 3 || minor < 50 {
		t.Errorf("sqlite_version() = %s, want 3.50 or later", version)
	}
}

// TestSQLiteFileModes checks that the database and its -wal and -shm files
// are readable by their owner only, whether Open creates them or finds them
// with a wider mode.
func TestSQLiteFileModes(t *testing.T) {
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(name)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(name), err)
				continue
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s mode = %#o, want 0600", filepath.Base(name), perm)
			}
		}
	}
	write := func(t *testing.T, s storage.Store) {
		t.Helper()
		reg, key := fixture("k")
		if _, _, err := s.CreateRegistration(t.Context(), reg, key); err != nil {
			t.Fatalf("CreateRegistration: %v", err)
		}
	}

	t.Run("Created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "elsewhere", "ltikeys.db")
		s := openStore(t, "sqlite://"+path)
		write(t, s) // the -wal and -shm files exist while the store is open
		check(t, path)
	})
	t.Run("Existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ltikeys.db")
		s := openStore(t, "sqlite://"+path)
		write(t, s)
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Chmod(name, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Closing the last connection removes the -wal file; recreate
		// wide-open ones to see that Open narrows them too.
		for _, name := range []string{path + "-wal", path + "-shm"} {
			if _, err := os.Stat(name); os.IsNotExist(err) {
				if err := os.WriteFile(name, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(name, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		s = openStore(t, "sqlite://"+path)
		write(t, s)
		check(t, path)
	})
}
