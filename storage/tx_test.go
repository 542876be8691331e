package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// sqliteErrors provokes, on raw connections to a fresh database file that
// never wait for a lock, the SQLite errors the store must retry (busy,
// busy with an extended code, locked) and one it must not (a unique
// constraint).
func sqliteErrors(t *testing.T) (busy, busySnapshot, locked, constraint error) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER UNIQUE); INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	conn := func() *sql.Conn {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	exec := func(c *sql.Conn, query string) error {
		_, err := c.ExecContext(ctx, query)
		return err
	}
	mustExec := func(c *sql.Conn, query string) {
		t.Helper()
		if err := exec(c, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	a, b := conn(), conn()

	// A second writer while the first holds the write lock.
	mustExec(a, "BEGIN IMMEDIATE")
	busy = exec(b, "BEGIN IMMEDIATE")
	mustExec(a, "ROLLBACK")

	// A reader that tries to write after another connection committed:
	// its snapshot is stale (SQLITE_BUSY_SNAPSHOT).
	mustExec(a, "BEGIN")
	var n int
	if err := a.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	mustExec(b, "INSERT INTO t VALUES (3)")
	busySnapshot = exec(a, "INSERT INTO t VALUES (4)")
	mustExec(a, "ROLLBACK")

	// Dropping a table that a statement of the same connection is reading.
	rows, err := a.QueryContext(ctx, "SELECT x FROM t")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	locked = exec(a, "DROP TABLE t")
	rows.Close()

	constraint = exec(a, "INSERT INTO t VALUES (1)")
	return busy, busySnapshot, locked, constraint
}

func TestConflict(t *testing.T) {
	busy, busySnapshot, locked, constraint := sqliteErrors(t)
	pg := func(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"deadlock, wrapped", fmt.Errorf("rotate: %w", pg("40P01")), true},
		{"SQLITE_BUSY", busy, true},
		{"SQLITE_BUSY_SNAPSHOT", busySnapshot, true},
		{"SQLITE_LOCKED", locked, true},
		{"unique violation", pg("23505"), false},
		{"admin shutdown", pg("57P01"), false},
		{"query canceled", pg("57014"), false},
		{"SQLite constraint", constraint, false},
		{"connection reset", transient("connection reset", syscall.ECONNRESET), false},
		{"not found", ErrNotFound, false},
		{"context canceled", context.Canceled, false},
		{"other", errors.New("boom"), false},
	} {
		if tc.err == nil {
			t.Fatalf("%s: the error was not provoked", tc.name)
		}
		if got := conflict(tc.err); got != tc.want {
			t.Errorf("conflict(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	// The extended code is what the driver reports for a stale snapshot.
	var lite interface{ Code() int }
	if !errors.As(busySnapshot, &lite) || lite.Code() != 517 {
		t.Errorf("stale snapshot error %v: want code SQLITE_BUSY_SNAPSHOT (517)", busySnapshot)
	}
}

// attempts returns an attempt function that fails with errs in turn, then
// succeeds, and a pointer to how many times it ran.
func attempts(errs ...error) (func() error, *int) {
	n := 0
	return func() error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestRetryPolicy(t *testing.T) {
	busy, _, _, _ := sqliteErrors(t)
	deadlock := &pgconn.PgError{Severity: "ERROR", Code: "40P01", Message: "deadlock detected"}
	serialization := &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "could not serialize access"}

	t.Run("RetriesConflicts", func(t *testing.T) {
		attempt, n := attempts(serialization, deadlock, busy)
		if err := txRetry.run(t.Context(), attempt); err != nil || *n != 4 {
			t.Errorf("run = %v after %d attempts, want success after 4", err, *n)
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		var conflicts []error
		for range txRetry.attempts + 1 {
			conflicts = append(conflicts, deadlock)
		}
		attempt, n := attempts(conflicts...)
		err := txRetry.run(t.Context(), attempt)
		if *n != txRetry.attempts {
			t.Errorf("ran %d attempts, want %d", *n, txRetry.attempts)
		}
		// As a Store method returns it.
		err = wrap(err, "rotate key of registration %q", "r")
		if !errors.Is(err, ErrConflict) || !Unavailable(err) {
			t.Errorf("error after the last attempt = %v: want ErrConflict, unavailable", err)
		}
		var pg *pgconn.PgError
		if errors.As(err, &pg) {
			t.Errorf("error after the last attempt wraps the driver's error %v", pg)
		}
	})

	t.Run("OtherErrorsAsIs", func(t *testing.T) {
		for _, want := range []error{
			&pgconn.PgError{Code: "23505"},
			transient("connection reset", syscall.ECONNRESET),
			ErrNotFound,
			errors.New("update failed"),
		} {
			attempt, n := attempts(want)
			if err := txRetry.run(t.Context(), attempt); err != want || *n != 1 { //nolint:errorlint // as is
				t.Errorf("run = %v after %d attempts, want %v as is after 1", err, *n, want)
			}
		}
	})

	t.Run("StopsWhenContextIsDone", func(t *testing.T) {
		// A back-off that only ctx can cut short.
		slow := retryPolicy{attempts: 5, base: time.Hour, limit: time.Hour}
		ctx, cancel := context.WithCancel(t.Context())
		n := 0
		err := slow.run(ctx, func() error {
			n++
			cancel()
			return deadlock
		})
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrConflict) || n != 1 {
			t.Errorf("run = %v after %d attempts, want context.Canceled after 1", err, n)
		}
	})

	t.Run("Backoff", func(t *testing.T) {
		var total time.Duration
		for n := 1; n <= 40; n++ {
			ceiling := min(txRetry.base<<min(n-1, 30), txRetry.limit)
			longest := time.Duration(0)
			for range 200 {
				d := txRetry.backoff(n)
				if d < ceiling/2 || d > ceiling {
					t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, ceiling/2, ceiling)
				}
				longest = max(longest, d)
			}
			if longest == ceiling/2 {
				t.Errorf("backoff(%d) is always %v: no jitter", n, longest)
			}
			if n < txRetry.attempts {
				total += ceiling
			}
		}
		if total > time.Second/2 {
			t.Errorf("the back-offs of one transaction add up to as much as %v", total)
		}
	})
}

// TestTransactionRetriesDeadlock runs two transactions that lock two rows
// in opposite orders, so that PostgreSQL aborts one: it is run again and
// both commit.
func TestTransactionRetriesDeadlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := Open(ctx, storagetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := st.(*pgStore).gormStore
	ids := [2]string{createRegistration(t, s), createRegistration(t, s)}

	var (
		holds [2]chan struct{} // closed once transaction i holds its first row
		runs  [2]int
		errs  [2][]error // what locking the second row returned, per run
		wg    sync.WaitGroup
		got   [2]error
	)
	for i := range 2 {
		holds[i] = make(chan struct{})
		wg.Go(func() {
			first, second := ids[i], ids[1-i]
			got[i] = s.transaction(ctx, func(tx *gorm.DB) error {
				runs[i]++
				if err := lockRegistration(tx, first); err != nil {
					return err
				}
				if runs[i] == 1 {
					close(holds[i])
					<-holds[1-i]
				}
				err := lockRegistration(tx, second)
				errs[i] = append(errs[i], err)
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range got {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	victim := 0
	if runs[1] > runs[0] {
		victim = 1
	}
	if runs[victim] != 2 || runs[1-victim] != 1 {
		t.Fatalf("transactions ran %v times, want one once and the other twice", runs)
	}
	var pg *pgconn.PgError
	if first := errs[victim][0]; !errors.As(first, &pg) || pg.Code != sqlstateDeadlockDetected || !conflict(first) {
		t.Errorf("the retried transaction first failed with %v, want a deadlock", first)
	}
}

// TestStoreRetriesDeadlock deadlocks a rotation against another
// transaction after it has done most of its work, and checks that the
// rotation, run again, is done once and reported as done.
func TestStoreRetriesDeadlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	url := storagetest.PostgresURL(t)
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := st.(*pgStore).gormStore
	id := createRegistration(t, s)
	pending, err := s.Rotate(ctx, id, testKey(id), RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}

	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	otherTx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer otherTx.Rollback(context.Background())
	// Holding the counter's row, the last lock every write takes.
	if _, err := otherTx.Exec(ctx, "UPDATE ltikeys_changes SET version = version"); err != nil {
		t.Fatal(err)
	}
	var (
		rotation Rotation
		rotated  = make(chan error, 1)
	)
	next := testKey(id)
	go func() {
		var err error
		rotation, err = s.Rotate(ctx, id, next, RotateOptions{})
		rotated <- err
	}()
	// Once the rotation waits for the counter, holding the registration,
	// wait for the registration: PostgreSQL aborts the rotation, which
	// has waited longer.
	for {
		var waiting int
		err := otherTx.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'").Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-rotated:
			t.Fatalf("Rotate returned %v while the counter was locked", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := otherTx.Exec(ctx, "SELECT 1 FROM platform_registrations WHERE id = $1 FOR UPDATE", id); err != nil {
		t.Fatalf("the other transaction, not the rotation, lost the deadlock: %v", err)
	}
	if err := otherTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-rotated; err != nil {
		t.Fatalf("Rotate after a deadlock: %v", err)
	}

	if rotation.New.KID != next.KID || rotation.Replaced.KID != pending.New.KID || rotation.Previous.KID != pending.Previous.KID ||
		rotation.Registration.KID != next.KID || rotation.Registration.PendingKID != "" {
		t.Errorf("rotation = new %s, replaced %s, previous %s, registration on %s (pending %q); want %s, %s, %s, %s",
			rotation.New.KID, rotation.Replaced.KID, rotation.Previous.KID, rotation.Registration.KID, rotation.Registration.PendingKID,
			next.KID, pending.New.KID, pending.Previous.KID, next.KID)
	}
	if after, err := s.Version(ctx); err != nil || after != before+1 {
		t.Errorf("Version %d → %d, %v; want one change", before, after, err)
	}
	reg, err := s.GetRegistration(ctx, id)
	if err != nil || reg.KID != next.KID || reg.PendingKID != "" {
		t.Errorf("registration after the rotation: %+v, %v", reg, err)
	}
	active, err := s.ActiveKeys(ctx)
	if err != nil || len(active) != 1 || active[0].KID != next.KID {
		t.Errorf("ActiveKeys = %d keys, %v; want only the new key", len(active), err)
	}
}

func testKey(registrationID string) Key {
	kid := "kid-" + uuid.NewString()
	return Key{KID: kid, Alg: "RS256", RegistrationID: registrationID, PublicJWK: []byte(`{"kid":"` + kid + `"}`), PrivateJWK: []byte{1}}
}

func createRegistration(t *testing.T, s *gormStore) string {
	t.Helper()
	id := uuid.NewString()
	reg := Registration{ID: id, Issuer: "https://platform.example/" + id, ClientID: "client",
		AuthEndpoint: "https://platform.example/a", JWKSURI: "https://platform.example/j", TokenEndpoint: "https://platform.example/t"}
	if _, _, err := s.CreateRegistration(t.Context(), reg, testKey(id)); err != nil {
		t.Fatal(err)
	}
	return id
}

func lockRegistration(tx *gorm.DB, id string) error {
	return tx.Clauses(forUpdate).Where("id = ?", id).Take(&registrationModel{}).Error
}

// TestSQLiteBusyGivesUp holds the write lock of an SQLite database that
// the store does not wait for: its writes fail busy, are retried, and end
// with ErrConflict, writing nothing; once the lock is released they
// succeed.
func TestSQLiteBusyGivesUp(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ltikeys.db")
	st, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := st.(*gormStore)
	// One connection, which fails at once instead of waiting 10s for the
	// lock.
	pool, err := s.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	pool.SetMaxOpenConns(1)
	if err := s.db.Exec("PRAGMA busy_timeout = 0").Error; err != nil {
		t.Fatal(err)
	}
	id := createRegistration(t, s)

	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	holder, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	before, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = s.RotateKey(ctx, id, testKey(id))
	if !errors.Is(err, ErrConflict) || !Unavailable(err) {
		t.Fatalf("RotateKey while another connection holds the write lock = %v, want ErrConflict", err)
	}
	if _, err := holder.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Version(ctx); err != nil || v != before {
		t.Errorf("Version after the failed rotation = %d, %v; want %d", v, err, before)
	}
	if _, _, _, err := s.RotateKey(ctx, id, testKey(id)); err != nil {
		t.Errorf("RotateKey once the lock is released: %v", err)
	}
}
