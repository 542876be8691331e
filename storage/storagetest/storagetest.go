package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// DatabaseURLEnv names the PostgreSQL server used by tests: a URL of
	// any database there, with rights to create databases.
	DatabaseURLEnv = "LTIKEYS_TEST_DATABASE_URL"
	// RequirePostgresEnv, set to 1, turns an unreachable server from a skip
	// into a failure.
	RequirePostgresEnv = "LTIKEYS_TEST_REQUIRE_POSTGRES"

	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// PostgresURL creates an empty database with a unique name
// (ltikeys_test_<hex>) and returns its URL. The database is dropped, with
// any connections still open to it, when t and its subtests end.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(DatabaseURLEnv)
	if admin == "" {
		admin = defaultDatabaseURL
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storagetest: %s must be a postgres:// URL", DatabaseURLEnv)
	}

	conn, err := connect(t.Context(), admin)
	if err != nil {
		msg := "storagetest: PostgreSQL at " + u.Redacted() + " is unreachable: " + err.Error()
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "\n(set " + DatabaseURLEnv + " to a server, or " + RequirePostgresEnv + "=1 to fail instead of skipping)")
	}
	defer conn.Close(context.Background())

	var b [8]byte
	rand.Read(b[:])
	name := "ltikeys_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("storagetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := connect(ctx, admin)
		if err != nil {
			t.Errorf("storagetest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("storagetest: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

func connect(ctx context.Context, databaseURL string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, databaseURL)
}

// SQLiteURL returns the URL of a database file, not yet created, in the
// test's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "ltikeys.db")
}
