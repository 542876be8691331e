package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/crypto/cryptotest"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// rawDump reads every column of every row of both tables with plain SQL,
// bypassing the service and the storage package, and returns them as text.
func rawDump(t *testing.T, databaseURL string) string {
	t.Helper()
	driver, dsn := "pgx", databaseURL
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dump strings.Builder
	for _, table := range []string{"lti_jwks", "platform_registrations"} {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&dump, "%s.%s=%v\n", table, cols[i], v)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n == 0 {
			t.Fatalf("table %s is empty: the dump would prove nothing", table)
		}
	}
	return dump.String()
}

// TestNoPlaintextPrivateKeyAtRest runs a full flow, then reads both tables
// raw: no column may hold a private JWK member or any private key value.
func TestNoPlaintextPrivateKeyAtRest(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			env := newTestEnvWith(t, url, testKeyring)
			ctx := context.Background()

			var secrets []string // every private value the service ever handed out
			collect := func(id string) {
				resp, err := env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{
					Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
				if err != nil {
					t.Fatal(err)
				}
				var jwk map[string]string
				if err := json.Unmarshal([]byte(resp.GetPrivateJwk()), &jwk); err != nil {
					t.Fatal(err)
				}
				for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
					v := jwk[m]
					if v == "" {
						t.Fatalf("private JWK lacks %q", m)
					}
					raw, err := base64.RawURLEncoding.DecodeString(v)
					if err != nil {
						t.Fatal(err)
					}
					secrets = append(secrets, v, base64.StdEncoding.EncodeToString(raw), string(raw))
				}
			}

			a := env.mustCreate(t, "dump-a")
			b := env.mustCreate(t, "dump-b")
			collect(a.GetRegistration().GetId())
			if _, err := env.keys.RotateKey(ctx, rotateNow(a.GetRegistration().GetId())); err != nil {
				t.Fatal(err)
			}
			collect(a.GetRegistration().GetId())
			collect(b.GetRegistration().GetId())
			if _, err := env.keys.RetireKey(ctx, &ltikeysv1.RetireKeyRequest{Kid: a.GetKey().GetKid()}); err != nil {
				t.Fatal(err)
			}

			dump := rawDump(t, url)
			for _, member := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
				if strings.Contains(dump, member) {
					t.Errorf("the raw tables contain the private JWK member %s", member)
				}
			}
			for _, s := range secrets {
				if strings.Contains(dump, s) {
					t.Fatalf("the raw tables contain private key material")
				}
			}
		})
	}
}

// TestMasterKeyRotation rewraps from {old} to {new, old}, then serves with
// {new} alone.
func TestMasterKeyRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		oldKey := mustMasterKey(t, "old")
		newKey := mustMasterKey(t, "new")
		oldRing := mustKeyring(t, oldKey)
		both := mustKeyring(t, newKey, oldKey)
		newRing := mustKeyring(t, newKey)

		env = newTestEnvWith(t, env.url, oldRing)
		var ids []string
		for i := range 4 {
			ids = append(ids, env.mustCreate(t, fmt.Sprint("rewrap-", i)).GetRegistration().GetId())
		}
		if _, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: ids[0]}); err != nil {
			t.Fatal(err)
		}
		const total = 5

		// The new key alone cannot open the old data, and says which key is missing.
		var missing *crypto.MissingKeyError
		if _, err := server.CheckKeyring(ctx, env.store, newRing); !errors.As(err, &missing) || missing.ID != "old" {
			t.Fatalf("CheckKeyring with only the new key = %v, want a MissingKeyError for %q", err, "old")
		}

		// Interrupt a rewrap after two keys; the rows stay readable.
		cancelCtx, cancel := context.WithCancel(ctx)
		interrupted := &cancelAfter{Store: env.store, n: 2, cancel: cancel}
		stats, err := server.Rewrap(cancelCtx, interrupted, both)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted rewrap returned %v, want context.Canceled", err)
		}
		if stats.Rewrapped != 2 {
			t.Errorf("interrupted rewrap did %d keys, want 2", stats.Rewrapped)
		}
		if check, err := server.CheckKeyring(ctx, env.store, both); err != nil || check != (server.KeyringCheck{Keys: total}) {
			t.Fatalf("after an interrupted rewrap CheckKeyring = %+v, %v; want %d keys in format 2", check, err, total)
		}

		stats, err = server.Rewrap(ctx, env.store, both)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Rewrapped != total-2 || stats.Current != 2 {
			t.Errorf("rerun after interruption = %+v, want %d rewrapped, 2 current", stats, total-2)
		}
		stats, err = server.Rewrap(ctx, env.store, both)
		if err != nil {
			t.Fatal(err)
		}
		if stats != (server.RewrapStats{Current: total}) {
			t.Errorf("second full rewrap = %+v, want nothing to do", stats)
		}

		// Serve with the new key alone: every key opens and signs.
		if _, err := server.CheckKeyring(ctx, env.store, newRing); err != nil {
			t.Fatalf("after rewrap the new key alone does not open every key: %v", err)
		}
		env = newTestEnvWith(t, env.url, newRing)
		for _, id := range ids {
			verify(t, env, signWithToolKey(t, env, id))
		}
	})
}

// TestRewrapUpgradesFormat1 stores keys in envelope format 1, as releases
// before format 2 sealed them: they still open and sign; Rewrap rewrites
// them in format 2 under the same master key, bound to their registration,
// and leaves the format 2 key alone; a rerun has nothing to do.
func TestRewrapUpgradesFormat1(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		mk := mustMasterKey(t, "m-2026")
		ring := mustKeyring(t, mk)
		env = newTestEnvWith(t, env.url, ring)
		var ids, kids []string
		for i := range 3 {
			created := env.mustCreate(t, fmt.Sprint("v1-", i))
			ids, kids = append(ids, created.GetRegistration().GetId()), append(kids, created.GetKey().GetKid())
		}
		storeV1(t, env, mk, ids[0])
		storeV1(t, env, mk, ids[1])
		for i, kid := range kids {
			want := 2
			if i < 2 {
				want = 1
			}
			if got := storedFormat(t, env, kid); got != want {
				t.Fatalf("key %d is in envelope format %d, want %d", i, got, want)
			}
		}

		if check, err := server.CheckKeyring(ctx, env.store, ring); err != nil || check != (server.KeyringCheck{Keys: 3, Format1: 2}) {
			t.Errorf("CheckKeyring = %+v, %v; want 3 keys, 2 in format 1", check, err)
		}

		// Format 1 keys still sign, on a server with nothing cached.
		fresh := newTestEnvWith(t, env.url, ring)
		for _, id := range ids {
			verify(t, fresh, signWithToolKey(t, fresh, id))
		}

		before := map[string][]byte{}
		for _, kid := range kids {
			before[kid] = storedEnvelope(t, env, kid)
		}
		stats, err := server.Rewrap(ctx, env.store, ring)
		if err != nil {
			t.Fatal(err)
		}
		if want := (server.RewrapStats{Rewrapped: 2, Upgraded: 2, Current: 1}); stats != want {
			t.Errorf("Rewrap = %+v, want %+v", stats, want)
		}
		for i, kid := range kids {
			if got := storedFormat(t, env, kid); got != 2 {
				t.Errorf("after Rewrap key %d is in envelope format %d, want 2", i, got)
			}
			if changed := !bytes.Equal(storedEnvelope(t, env, kid), before[kid]); changed != (i < 2) {
				t.Errorf("Rewrap changed key %d: %v, want %v", i, changed, i < 2)
			}
			// Bound to its registration now.
			if _, err := ring.Open(storedEnvelope(t, env, kid), kid, ids[(i+1)%3]); !errors.Is(err, crypto.ErrDecrypt) {
				t.Errorf("key %d opens as another registration's: %v", i, err)
			}
		}
		stats, err = server.Rewrap(ctx, env.store, ring)
		if err != nil || stats != (server.RewrapStats{Current: 3}) {
			t.Errorf("second Rewrap = %+v, %v; want nothing to do", stats, err)
		}
		if check, err := server.CheckKeyring(ctx, env.store, ring); err != nil || check != (server.KeyringCheck{Keys: 3}) {
			t.Errorf("CheckKeyring after Rewrap = %+v, %v; want 3 keys, none in format 1", check, err)
		}
		fresh = newTestEnvWith(t, env.url, ring)
		for _, id := range ids {
			verify(t, fresh, signWithToolKey(t, fresh, id))
		}
	})
}

// storeV1 re-seals the current key of registration id in envelope format
// 1 under mk, as a release before format 2 left it.
func storeV1(t *testing.T, env *testEnv, mk crypto.MasterKey, id string) {
	t.Helper()
	resp, err := env.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := cryptotest.SealV1(mk.ID, mk.Key, []byte(resp.GetPrivateJwk()), resp.GetKid())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.UpdatePrivateKey(context.Background(), resp.GetKid(), func([]byte) ([]byte, bool, error) {
		return v1, true, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// storedEnvelope returns the sealed private key of kid as stored.
func storedEnvelope(t *testing.T, env *testEnv, kid string) []byte {
	t.Helper()
	key, err := env.store.GetKey(context.Background(), kid)
	if err != nil {
		t.Fatal(err)
	}
	return key.PrivateJWK
}

// storedFormat returns the envelope format version of kid's stored key.
func storedFormat(t *testing.T, env *testEnv, kid string) int {
	t.Helper()
	v, err := crypto.FormatVersion(storedEnvelope(t, env, kid))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustMasterKey(t *testing.T, id string) crypto.MasterKey {
	t.Helper()
	mk, err := crypto.GenerateMasterKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func mustKeyring(t *testing.T, keys ...crypto.MasterKey) *crypto.Keyring {
	t.Helper()
	kr, err := crypto.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// cancelAfter is a Store that cancels a context once n private keys have
// been updated, standing in for an operator's Ctrl-C part-way through.
type cancelAfter struct {
	storage.Store
	n      int
	cancel context.CancelFunc
}

func (s *cancelAfter) UpdatePrivateKey(ctx context.Context, kid string, update func([]byte) ([]byte, bool, error)) error {
	err := s.Store.UpdatePrivateKey(ctx, kid, update)
	if s.n--; s.n == 0 {
		s.cancel()
	}
	return err
}
