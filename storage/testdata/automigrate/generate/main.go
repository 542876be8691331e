// Command generate writes the fixtures of storage/testdata/automigrate:
// databases as a release whose schema GORM's AutoMigrate managed wrote
// them. It uses nothing but that release's storage API, so it must be built
// in a checkout of that release (see ../README.md):
//
//	go run ./cmd/generate-fixtures -out DIR [-postgres ADMIN_URL]
//
// It writes, in DIR: sqlite-empty.db (a first Open) and sqlite-data.db
// (the scenario below); postgres-empty.sql and postgres-data.sql, pg_dump
// plain-SQL dumps of a PostgreSQL database at the same two points; and
// data.json, what the release read back from both databases, which must
// agree. The scenario is the one of testdata/sqlite-v1: registrations in
// every lifecycle state, written at fixed times.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltikeys/ltikeys/storage"
)

func main() {
	out := flag.String("out", "", "directory to write the fixtures to (required)")
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "URL of a PostgreSQL database, with rights to create databases")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "generate: -out is required")
		os.Exit(2)
	}
	if err := run(context.Background(), *out, *admin); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

// readBack is what the release read from a database after the scenario,
// the layout of data.json.
type readBack struct {
	Version       int64
	Registrations []storage.Registration
	Deleted       []string
	Keys          []storage.Key
}

func run(ctx context.Context, out, admin string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"sqlite-empty.db", "sqlite-data.db"} {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(filepath.Join(out, name+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := openClose(ctx, "sqlite://"+filepath.Join(out, "sqlite-empty.db")); err != nil {
		return err
	}
	fromSQLite, err := scenario(ctx, "sqlite://"+filepath.Join(out, "sqlite-data.db"))
	if err != nil {
		return fmt.Errorf("SQLite: %w", err)
	}

	pgURL, drop, err := createDatabase(ctx, admin)
	if err != nil {
		return err
	}
	defer drop()
	if err := openClose(ctx, pgURL); err != nil {
		return err
	}
	if err := dump(ctx, pgURL, filepath.Join(out, "postgres-empty.sql")); err != nil {
		return err
	}
	fromPostgres, err := scenario(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if err := dump(ctx, pgURL, filepath.Join(out, "postgres-data.sql")); err != nil {
		return err
	}

	a, err := json.MarshalIndent(fromSQLite, "", "  ")
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(fromPostgres, "", "  ")
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("the backends read back different data:\nSQLite:\n%s\nPostgreSQL:\n%s", a, b)
	}
	return os.WriteFile(filepath.Join(out, "data.json"), append(a, '\n'), 0o644)
}

func openClose(ctx context.Context, databaseURL string) error {
	s, err := storage.Open(ctx, databaseURL)
	if err != nil {
		return err
	}
	return s.Close()
}

// scenario writes registrations in every lifecycle state at fixed times
// and returns what the store reads back.
func scenario(ctx context.Context, databaseURL string) (readBack, error) {
	var rb readBack
	clock := time.Date(2026, 11, 20, 9, 30, 15, 123456000, time.UTC)
	s, err := storage.Open(ctx, databaseURL, storage.WithClock(func() time.Time { return clock }))
	if err != nil {
		return rb, err
	}
	defer s.Close()

	seq := byte(0)
	key := func(kid string) storage.Key {
		seq++
		return storage.Key{
			KID:        kid,
			Alg:        "RS256",
			PublicJWK:  fmt.Appendf(nil, `{"kty":"RSA","n":"AQAB%c","e":"AQAB"}`, kid[4]),
			PrivateJWK: []byte{1, 0, 0xff, 0xfe, seq, 0x80, 'x'}, // opaque bytes, not a key
		}
	}
	reg := func(n int) storage.Registration {
		return storage.Registration{
			ID:            fmt.Sprintf("0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e%02d", n),
			Issuer:        fmt.Sprintf("https://platform%d.example", n),
			ClientID:      fmt.Sprintf("client-%d", n),
			AuthEndpoint:  "https://platform.example/auth",
			JWKSURI:       "https://platform.example/jwks",
			TokenEndpoint: "https://platform.example/token",
		}
	}
	create := func(n int, kid string) error {
		r, k := reg(n), key(kid)
		k.RegistrationID = r.ID
		_, _, err := s.CreateRegistration(ctx, r, k)
		return err
	}
	at := func(d time.Duration) { clock = time.Date(2026, 11, 20, 9, 30, 15, 123456000, time.UTC).Add(d) }

	steps := []func() error{
		// Four registrations, 1.5 s apart.
		func() error { at(0); return create(1, "kid-b-01") },
		func() error { at(1500 * time.Millisecond); return create(2, "kid-c-02") },
		func() error { at(3 * time.Second); return create(3, "kid-d-03") },
		func() error { at(4500 * time.Millisecond); return create(4, "kid-e-04") },
		// 1: rotated at once; the previous key retires 48 h later.
		func() error {
			at(6 * time.Second)
			_, err := s.Rotate(ctx, reg(1).ID, key("kid-f-01"), storage.RotateOptions{RetirePreviousAfter: 48 * time.Hour})
			return err
		},
		// 2: a pending key, signing a day later; the previous retires 48 h after that.
		func() error {
			at(66*time.Second + 7*time.Microsecond)
			_, err := s.Rotate(ctx, reg(2).ID, key("kid-g-02"), storage.RotateOptions{PublishAhead: 24 * time.Hour, RetirePreviousAfter: 48 * time.Hour})
			return err
		},
		// 3: rotated at once with no scheduled retirement, the previous key retired by hand.
		func() error {
			at(time.Hour + 66*time.Second + 7*time.Microsecond)
			_, err := s.Rotate(ctx, reg(3).ID, key("kid-h-03"), storage.RotateOptions{RetirePreviousAfter: -1})
			return err
		},
		func() error {
			at(time.Hour + 67*time.Second + 7*time.Microsecond)
			_, err := s.RetireKey(ctx, "kid-d-03")
			return err
		},
		// 4: deleted; 1: its JWKS URL changed.
		func() error {
			at(time.Hour + 68*time.Second + 7*time.Microsecond)
			_, err := s.DeleteRegistration(ctx, reg(4).ID)
			return err
		},
		func() error {
			_, err := s.UpdateRegistration(ctx, reg(1).ID, func(r storage.Registration) (storage.Registration, error) {
				r.JWKSURI = "https://platform1.example/keys"
				return r, nil
			})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return rb, fmt.Errorf("step %d: %w", i+1, err)
		}
	}

	if rb.Version, err = s.Version(ctx); err != nil {
		return rb, err
	}
	for n := 1; n <= 3; n++ {
		r, err := s.GetRegistration(ctx, reg(n).ID)
		if err != nil {
			return rb, err
		}
		rb.Registrations = append(rb.Registrations, r)
	}
	rb.Deleted = []string{reg(4).ID}
	kids, err := s.KeyIDs(ctx)
	if err != nil {
		return rb, err
	}
	for _, kid := range kids {
		k, err := s.GetKey(ctx, kid)
		if err != nil {
			return rb, err
		}
		rb.Keys = append(rb.Keys, k)
	}
	return rb, nil
}

// createDatabase creates a database of its own on the server of admin and
// returns its URL and a function that drops it.
func createDatabase(ctx context.Context, admin string) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres: %w", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "ltikeys_fixture_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	drop := func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "generate: drop database:", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "generate: drop database:", err)
		}
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// dump writes a plain-SQL dump of the database, with INSERT statements
// rather than COPY and without the psql-only \restrict lines of recent
// pg_dump releases, so that any client can replay it as one script.
func dump(ctx context.Context, databaseURL, file string) error {
	cmd := exec.CommandContext(ctx, "pg_dump", "--no-owner", "--no-privileges", "--column-inserts", "--dbname", databaseURL)
	cmd.Stderr = os.Stderr
	text, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	var b strings.Builder
	for line := range strings.SplitSeq(string(text), "\n") {
		if strings.HasPrefix(line, `\restrict `) || strings.HasPrefix(line, `\unrestrict `) {
			continue
		}
		b.WriteString(line + "\n")
	}
	return os.WriteFile(file, []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644)
}
