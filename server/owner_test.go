package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// rawDB opens the database at databaseURL with plain SQL, bypassing the
// storage package, for tests that play a writer with database access.
// Queries use ? placeholders on both backends.
type rawDB struct {
	db       *sql.DB
	postgres bool
}

func openRawDB(t *testing.T, databaseURL string) *rawDB {
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
	return &rawDB{db: db, postgres: driver == "pgx"}
}

// query rewrites ? placeholders as $1, $2, … for PostgreSQL.
func (r *rawDB) query(q string) string {
	if !r.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// exec runs one statement that must change exactly one row.
func (r *rawDB) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	res, err := r.db.Exec(r.query(q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("%s changed %d rows (%v), want 1", q, n, err)
	}
}

// keyRowID returns the lti_jwks.id of kid, which platform_registrations
// references in jwk_id and pending_jwk_id.
func (r *rawDB) keyRowID(t *testing.T, kid string) int64 {
	t.Helper()
	var id int64
	if err := r.db.QueryRow(r.query("SELECT id FROM lti_jwks WHERE kid = ?"), kid).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// bumpChanges increments the change counter, as every committed write
// does, so running servers drop what they cached.
func (r *rawDB) bumpChanges(t *testing.T) {
	t.Helper()
	r.exec(t, "UPDATE ltikeys_changes SET version = version + 1 WHERE id = 1")
}

// TestSwappedKeyDoesNotSign plays a writer with database access who points
// registration 3 at registration 1's key, with plain SQL and a bump of the
// change counter. Registration 3 must not sign with that key, whichever
// column was rewritten: every call that needs its key is INTERNAL, carries
// nothing of registration 1's key, logs an error naming the registration
// asking and the key's owner, and counts a storage error.
func TestSwappedKeyDoesNotSign(t *testing.T) {
	tests := []struct {
		name string
		// tamper rewrites the database: reg[i] and kid[i] are registration
		// i+1 and its key.
		tamper func(t *testing.T, db *rawDB, env *testEnv, reg, kid []string)
		// owner is the registration the refused key's row names as owner,
		// as the error log line reports it (index into reg).
		owner int
		// logErr is part of the logged error.
		logErr string
		// checkRefuses tells whether CheckKeyring, which opens each key as
		// the owner its row names, must then fail with ErrDecrypt.
		checkRefuses bool
	}{
		{
			name: "jwk_id swapped",
			tamper: func(t *testing.T, db *rawDB, _ *testEnv, reg, kid []string) {
				db.exec(t, "UPDATE platform_registrations SET jwk_id = ? WHERE id = ?", db.keyRowID(t, kid[0]), reg[2])
			},
			owner:  0,
			logErr: "belongs to registration",
		},
		{
			// A format 1 envelope is bound to its kid alone: the check of
			// the owner column is what refuses it.
			name: "jwk_id swapped to a format 1 key",
			tamper: func(t *testing.T, db *rawDB, env *testEnv, reg, kid []string) {
				storeV1(t, env, ownerMasterKey, reg[0])
				db.exec(t, "UPDATE platform_registrations SET jwk_id = ? WHERE id = ?", db.keyRowID(t, kid[0]), reg[2])
			},
			owner:  0,
			logErr: "belongs to registration",
		},
		{
			name: "pending_jwk_id swapped",
			tamper: func(t *testing.T, db *rawDB, _ *testEnv, reg, kid []string) {
				db.exec(t, "UPDATE platform_registrations SET pending_jwk_id = ? WHERE id = ?", db.keyRowID(t, kid[0]), reg[2])
			},
			owner:  0,
			logErr: "belongs to registration",
		},
		{
			// The owner column is forged to match: the version 2 envelope,
			// bound to registration 1, does not open for registration 3.
			name: "owner column forged too",
			tamper: func(t *testing.T, db *rawDB, _ *testEnv, reg, kid []string) {
				db.exec(t, "UPDATE lti_jwks SET registration_id = ? WHERE kid = ?", reg[2], kid[0])
				db.exec(t, "UPDATE platform_registrations SET jwk_id = ? WHERE id = ?", db.keyRowID(t, kid[0]), reg[2])
			},
			owner:        2,
			logErr:       "envelope authentication failed",
			checkRefuses: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, b := range backends {
				t.Run(b.name, func(t *testing.T) {
					testSwappedKey(t, b.url(t), tt.tamper, tt.owner, tt.logErr, tt.checkRefuses)
				})
			}
		})
	}
}

// ownerMasterKey seals the keys of TestSwappedKeyDoesNotSign; its bytes are
// needed to write format 1 envelopes.
var ownerMasterKey = func() crypto.MasterKey {
	mk, err := crypto.GenerateMasterKey("owner-1")
	if err != nil {
		panic(err)
	}
	return mk
}()

func testSwappedKey(t *testing.T, url string, tamper func(*testing.T, *rawDB, *testEnv, []string, []string), owner int, logErr string, checkRefuses bool) {
	ctx := context.Background()
	var logs syncBuffer
	metrics := server.NewMetrics()
	ring, err := crypto.NewKeyring(ownerMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := startEnv(t, url, envOptions{keyring: ring, configure: func(c *server.KeyServiceConfig) {
		c.Store = server.InstrumentStore(c.Store, metrics)
		c.Metrics = metrics
		c.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	var reg, kid []string
	for i := range 3 {
		created := env.mustCreate(t, fmt.Sprint("owner-", i+1))
		reg, kid = append(reg, created.GetRegistration().GetId()), append(kid, created.GetKey().GetKid())
	}
	// Registration 1's private key, which must never reach registration 3.
	first, err := env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: reg[0]}})
	if err != nil {
		t.Fatal(err)
	}
	var firstJWK struct{ D string }
	if err := json.Unmarshal([]byte(first.GetPrivateJwk()), &firstJWK); err != nil || firstJWK.D == "" {
		t.Fatalf("registration 1's private JWK has no d: %v", err)
	}
	// Registration 3 signs with its own key, and the key cache holds it.
	if resp, err := env.keys.CreateClientAssertion(ctx, assertionFor(reg[2])); err != nil || resp.GetKid() != kid[2] {
		t.Fatalf("CreateClientAssertion before the swap = %v, %v; want kid %s", resp.GetKid(), err, kid[2])
	}

	db := openRawDB(t, url)
	tamper(t, db, env, reg, kid)
	db.bumpChanges(t)
	// What a running server's refresh loop does on its next tick.
	if err := env.jwks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before := storageErrors(t, metrics)

	claims := `{"sub":"tenant-3"}`
	byIssuer := &ltikeysv1.SignJwtRequest{ClaimsJson: claims, Lookup: &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
		Issuer: validCreate("owner-3").GetIssuer(), ClientId: validCreate("owner-3").GetClientId()}}}
	calls := []struct {
		name string
		call func() (fmt.Stringer, error)
	}{
		{"CreateClientAssertion", func() (fmt.Stringer, error) { return env.keys.CreateClientAssertion(ctx, assertionFor(reg[2])) }},
		{"SignJwt", func() (fmt.Stringer, error) {
			req := byRegistration(reg[2])
			req.ClaimsJson = claims
			return env.keys.SignJwt(ctx, req)
		}},
		{"SignJwt by issuer and client_id", func() (fmt.Stringer, error) { return env.keys.SignJwt(ctx, byIssuer) }},
		{"GetToolKey", func() (fmt.Stringer, error) {
			return env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{
				Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: reg[2]}})
		}},
	}
	for _, c := range calls {
		resp, err := c.call()
		if status.Code(err) != codes.Internal {
			t.Errorf("%s for registration 3 = %v, want INTERNAL", c.name, err)
		}
		if msg := status.Convert(err).Message(); strings.Contains(msg, reg[0]) || strings.Contains(msg, kid[0]) {
			t.Errorf("%s's error tells the caller about registration 1: %q", c.name, msg)
		}
		if text := fmt.Sprint(resp); strings.Contains(text, kid[0]) || strings.Contains(text, firstJWK.D) {
			t.Errorf("%s for registration 3 returned registration 1's kid or private key", c.name)
		}
	}

	// One error line per call, naming the registration asking and the
	// owner of the key it was pointed at; nothing before the swap logged
	// an error.
	lines := 0
	for line := range strings.Lines(logs.String()) {
		var l struct {
			Level, Msg, Err   string
			RegistrationID    string `json:"registration_id"`
			KeyRegistrationID string `json:"key_registration_id"`
			KID               string `json:"kid"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if l.Level != "ERROR" {
			continue
		}
		lines++
		if l.RegistrationID != reg[2] || l.KeyRegistrationID != reg[owner] || l.KID != kid[0] {
			t.Errorf("error line names registration %q, key owner %q, kid %q; want %s, %s, %s:\n%s",
				l.RegistrationID, l.KeyRegistrationID, l.KID, reg[2], reg[owner], kid[0], line)
		}
		if !strings.Contains(l.Err, reg[2]) || !strings.Contains(l.Err, reg[owner]) || !strings.Contains(l.Err, logErr) {
			t.Errorf("error %q does not name %s and %s, or lacks %q", l.Err, reg[2], reg[owner], logErr)
		}
	}
	if lines != len(calls) {
		t.Errorf("%d error lines for %d refused calls:\n%s", lines, len(calls), logs.String())
	}
	if strings.Contains(logs.String(), firstJWK.D) {
		t.Error("the log contains registration 1's private key")
	}
	if got := storageErrors(t, metrics); got != before+float64(len(calls)) {
		t.Errorf("ltikeys_storage_errors_total went from %v to %v, want +%d", before, got, len(calls))
	}
	wantSeries(t, scrape(t, metrics), fmt.Sprintf(`ltikeys_storage_errors_total{op="open_key"} %d`, len(calls)))

	if checkRefuses {
		if _, err := server.CheckKeyring(ctx, env.store, ring); !errors.Is(err, crypto.ErrDecrypt) || !strings.Contains(err.Error(), kid[0]) {
			t.Errorf("CheckKeyring = %v, want ErrDecrypt naming key %s", err, kid[0])
		}
	}

	// Registration 2, untouched, still signs with its own key.
	if resp, err := env.keys.CreateClientAssertion(ctx, assertionFor(reg[1])); err != nil || resp.GetKid() != kid[1] {
		t.Errorf("CreateClientAssertion for registration 2 = %v, %v; want kid %s", resp.GetKid(), err, kid[1])
	}
}
