package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver storage uses, for the bulk insert

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// BenchmarkJWKSRotation measures what one rotation costs the JWKS cache of
// a process holding n published keys, on each backend:
//
//   - refresh: the Refresh that follows the rotation (as KeyService makes
//     after every write, and every replica on its next check): the change
//     counter, the changed keys, the rotated registration's key list. It
//     should not grow with n.
//   - global: the rebuild of the document of every key that the next
//     request for /.well-known/jwks.json makes (at most once per
//     --jwks-coalesce under a stream of changes). It grows with n.
//
// The rotation itself (the store's transaction) is not timed, and keys are
// not generated: n-1 keys are inserted in bulk, one per registration, with
// a synthetic public JWK, and the rotated registration's new keys are
// synthetic too. Each rotation retires the previous key at once, so n
// stays fixed.
func BenchmarkJWKSRotation(b *testing.B) {
	for _, backend := range backends {
		for _, n := range []int{1000, 10000, 100000} {
			ctx := context.Background()
			url := backend.url(b)
			store, err := storage.Open(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			insertKeys(b, backend.name, url, n-1)
			reg := syntheticRegistration()
			if _, _, err := store.CreateRegistration(ctx, reg, syntheticKey(reg.ID)); err != nil {
				b.Fatal(err)
			}
			cache := server.NewJWKSCache(store)
			if err := cache.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
			if got := len(kidList(b, cache.Document())); got != n {
				b.Fatalf("the cache publishes %d keys, want %d", got, n)
			}
			rotate := func(b *testing.B) {
				if _, err := store.Rotate(ctx, reg.ID, syntheticKey(reg.ID), storage.RotateOptions{RetirePreviousAfter: 0}); err != nil {
					b.Fatal(err)
				}
			}
			name := backend.name + "/keys=" + strconv.Itoa(n)
			b.Run(name+"/refresh", func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					rotate(b)
					b.StartTimer()
					if err := cache.Refresh(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/global", func(b *testing.B) {
				var size int
				for b.Loop() {
					b.StopTimer()
					rotate(b)
					if err := cache.Refresh(ctx); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					size = len(cache.Document())
				}
				b.ReportMetric(float64(size), "doc-bytes")
			})
			store.Close()
		}
	}
}

// insertKeys inserts n active keys, each of its own registration id (with
// no registration row: the JWKS reads keys alone), in one statement
// straight into the database at databaseURL, whose schema storage.Open has
// made. Their version is 0, as for keys written before versions were
// recorded: a full load covers them.
func insertKeys(b *testing.B, backend, databaseURL string, n int) {
	b.Helper()
	ctx := context.Background()
	// One statement both dialects take: a recursive CTE counting 1..n.
	jwk := strings.Replace(string(syntheticJWK("@")), `"@"`, `"bulk-' || i || '"`, 1)
	stmt := fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %d)
		INSERT INTO lti_jwks (kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at)
		SELECT 'bulk-' || i, 'RS256', 'bulk-' || i, '%s', '', true, '2020-01-01 00:00:00+00:00', '2020-01-01 00:00:00+00:00', '2020-01-01 00:00:00+00:00' FROM seq`, n, jwk)
	switch backend {
	case "postgres":
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			b.Fatalf("insert keys: %v", err)
		}
		// As autovacuum would before long: plans as in a running service.
		if _, err := conn.Exec(ctx, "ANALYZE lti_jwks"); err != nil {
			b.Fatal(err)
		}
	case "sqlite":
		db, err := sql.Open("sqlite", strings.TrimPrefix(databaseURL, "sqlite://"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			b.Fatalf("insert keys: %v", err)
		}
	default:
		b.Fatalf("no bulk insert for backend %q", backend)
	}
}
