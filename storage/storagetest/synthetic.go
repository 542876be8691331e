package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/google/uuid"
)

// SyntheticPublicJWK returns an RS256 public JWK with the given kid whose
// modulus is a random odd 2048-bit number: valid to publish in a JWKS,
// never used to verify anything. Benchmarks fill databases with them,
// since generating thousands of real RSA keys is not what they measure.
func SyntheticPublicJWK(kid string) []byte {
	mod := make([]byte, 256)
	rand.Read(mod)
	mod[0] |= 0x80
	mod[255] |= 1
	return fmt.Appendf(nil, `{"kty":"RSA","n":%q,"e":"AQAB","kid":%q,"alg":"RS256","use":"sig"}`,
		base64.RawURLEncoding.EncodeToString(mod), kid)
}

// BulkInsertSynthetic inserts n synthetic registrations, each with one
// active key whose private half is seal's result for its kid and
// registration id, straight into the tables of the PostgreSQL database at
// databaseURL (which Open has created): one COPY and one INSERT … SELECT,
// so that a database with 100,000 keys takes seconds to fill rather than
// as many transactions. It bumps the change counter once, as a write
// through the store would. It bypasses the store, so it is for benchmarks
// of what reads a large database (start-up, the JWKS); tests of behaviour
// write through the store.
func BulkInsertSynthetic(ctx context.Context, databaseURL string, n int, seal func(kid, registrationID string) ([]byte, error)) error {
	conn, err := connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, n)
	for i := range n {
		id := uuid.NewString()
		kid := "synthetic-" + strconv.Itoa(i) + "-" + id
		sealed, err := seal(kid, id)
		if err != nil {
			return err
		}
		rows[i] = []any{kid, "RS256", id, string(SyntheticPublicJWK(kid)), sealed, true, now, now, now}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"lti_jwks"},
		[]string{"kid", "alg", "registration_id", "public_jwk", "private_jwk", "active", "created_at", "updated_at", "activates_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copy keys: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO platform_registrations
			(id, issuer, client_id, auth_endpoint, jwks_uri, token_endpoint, jwk_id, created_at, updated_at)
		SELECT k.registration_id, 'https://synthetic.example/' || k.registration_id, 'client',
			'https://synthetic.example/auth', 'https://synthetic.example/jwks', 'https://synthetic.example/token',
			k.id, k.created_at, k.created_at
		FROM lti_jwks k
		WHERE k.kid LIKE 'synthetic-%' AND NOT EXISTS (SELECT 1 FROM platform_registrations r WHERE r.id = k.registration_id)`)
	if err != nil {
		return fmt.Errorf("insert registrations: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE ltikeys_changes SET version = version + 1`); err != nil {
		return fmt.Errorf("bump change counter: %w", err)
	}
	return tx.Commit(ctx)
}
