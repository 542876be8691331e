package storage_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// backends lists, for tests beyond the conformance suite, how to get a
// fresh database URL of each backend.
var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"SQLite", storagetest.SQLiteURL},
	{"Postgres", storagetest.PostgresURL},
}

func openStore(t *testing.T, url string, opts ...storage.Option) storage.Store {
	t.Helper()
	s, err := storage.Open(t.Context(), url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fixture(marker string) (storage.Registration, storage.Key) {
	id := uuid.NewString()
	reg := storage.Registration{
		ID:            id,
		Issuer:        "https://platform.example/" + id,
		ClientID:      "client",
		AuthEndpoint:  "https://platform.example/auth",
		JWKSURI:       "https://platform.example/jwks",
		TokenEndpoint: "https://platform.example/token",
	}
	key := storage.Key{
		KID:            "kid-" + id,
		Alg:            "RS256",
		RegistrationID: id,
		PublicJWK:      []byte(`{"kid":"` + marker + `"}`),
		PrivateJWK:     []byte(marker),
	}
	return reg, key
}

// TestOpenTwice runs the migration on an existing schema, as every restart
// does, and checks data and constraints survive it.
func TestOpenTwice(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			first := openStore(t, url)
			reg, key := fixture("secret")
			if _, _, err := first.CreateRegistration(t.Context(), reg, key); err != nil {
				t.Fatalf("CreateRegistration: %v", err)
			}
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			second := openStore(t, url)
			got, err := second.GetRegistration(t.Context(), reg.ID)
			if err != nil || got.KID != key.KID {
				t.Fatalf("GetRegistration after reopening = %+v, %v", got, err)
			}
			dup, dupKey := fixture("other")
			dup.Issuer = reg.Issuer
			_, _, err = second.CreateRegistration(t.Context(), dup, dupKey)
			if !errors.Is(err, storage.ErrAlreadyExists) {
				t.Fatalf("duplicate after reopening: got %v, want ErrAlreadyExists", err)
			}
		})
	}
}

// TestClock checks the injected clock, UTC storage, and that ActiveKeys
// orders by creation time first, whatever the insertion order, and among
// equal times puts the later insertion first.
func TestClock(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			base := time.Date(2030, 5, 6, 7, 8, 9, 0, time.FixedZone("UTC+2", 2*3600))
			// Fractions of different lengths: SQLite compares times as text.
			times := []time.Time{
				base.Add(time.Second + 5*time.Microsecond + 999), // sub-µs dropped
				base.Add(120 * time.Millisecond),
				base.Add(100 * time.Millisecond),
				base,
				base, // a tie, broken by insertion order
			}
			var next int
			s := openStore(t, b.url(t), storage.WithClock(func() time.Time { return times[next] }))

			var kids []string
			for next = range times {
				reg, key := fixture("k")
				reg, key, err := s.CreateRegistration(t.Context(), reg, key)
				if err != nil {
					t.Fatalf("CreateRegistration: %v", err)
				}
				want := times[next].UTC().Truncate(time.Microsecond)
				if !key.CreatedAt.Equal(want) || key.CreatedAt.Location() != time.UTC || !reg.UpdatedAt.Equal(want) {
					t.Errorf("created at %v / %v, want %v in UTC", key.CreatedAt, reg.UpdatedAt, want)
				}
				if got, err := s.GetKey(t.Context(), key.KID); err != nil || !got.CreatedAt.Equal(key.CreatedAt) || got.CreatedAt.Location() != time.UTC {
					t.Errorf("GetKey CreatedAt = %v (%v), want %v", got.CreatedAt, err, key.CreatedAt)
				}
				kids = append(kids, key.KID)
			}

			keys, err := s.ActiveKeys(t.Context())
			if err != nil {
				t.Fatalf("ActiveKeys: %v", err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, k.KID)
			}
			want := []string{kids[0], kids[1], kids[2], kids[4], kids[3]}
			if !slices.Equal(got, want) {
				t.Errorf("ActiveKeys order = %q, want %q", got, want)
			}
		})
	}
}

// TestLogger checks what reaches the log: statement errors, with SQL but no
// parameter values; not the duplicates and misses that become sentinels.
func TestLogger(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			url := b.url(t)
			// Migrating logs what it applies: see TestMigrationLog.
			if _, err := storage.Migrate(t.Context(), url); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, url, storage.WithLogger(log))
			ctx := t.Context()

			reg, key := fixture("marker-one")
			if _, _, err := s.CreateRegistration(ctx, reg, key); err != nil {
				t.Fatalf("CreateRegistration: %v", err)
			}
			dup, dupKey := fixture("marker-two")
			dup.Issuer = reg.Issuer
			if _, _, err := s.CreateRegistration(ctx, dup, dupKey); !errors.Is(err, storage.ErrAlreadyExists) {
				t.Fatalf("duplicate: got %v, want ErrAlreadyExists", err)
			}
			if _, err := s.GetKey(ctx, "kid-unknown"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("GetKey: got %v, want ErrNotFound", err)
			}
			if buf.Len() != 0 {
				t.Errorf("logged for success, duplicate or miss:\n%s", buf.String())
			}

			// A NOT NULL violation is a fault: logged, without its values.
			bad, badKey := fixture("marker-three")
			badKey.PrivateJWK = nil
			_, _, err := s.CreateRegistration(ctx, bad, badKey)
			if err == nil || errors.Is(err, storage.ErrAlreadyExists) {
				t.Fatalf("CreateRegistration without private key: got %v, want a plain error", err)
			}
			out := buf.String()
			if !strings.Contains(out, "lti_jwks") {
				t.Errorf("failed statement not logged:\n%s", out)
			}
			if strings.Contains(out, "marker") || strings.Contains(err.Error(), "marker") {
				t.Errorf("parameter values leaked:\nlog: %s\nerror: %v", out, err)
			}
		})
	}
}

func TestDefaultSQLiteURL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	openStore(t, storage.DefaultSQLiteURL(dir))

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode = %#o, want 0700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "ltikeys.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenSQLiteURLForms(t *testing.T) {
	dir := t.TempDir()
	for _, url := range []string{
		"sqlite://" + filepath.Join(dir, "a", "slashes.db"),
		"sqlite:" + filepath.Join(dir, "b", "bare.db"),
		"file:" + filepath.Join(dir, "c", "uri.db") + "?cache=private",
		"sqlite://" + filepath.Join(dir, "d.db") + "?_pragma=synchronous(NORMAL)",
	} {
		t.Run(url, func(t *testing.T) {
			s := openStore(t, url)
			reg, key := fixture("k")
			if _, _, err := s.CreateRegistration(t.Context(), reg, key); err != nil {
				t.Fatalf("CreateRegistration: %v", err)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	for _, url := range []string{
		"mysql://root@localhost/ltikeys",
		"/var/lib/ltikeys.db",
		"sqlite://",
		"sqlite://" + filepath.Join(t.TempDir(), "x.db") + "?_time_format=sqlite",
	} {
		if s, err := storage.Open(t.Context(), url); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}
