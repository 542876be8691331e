package server_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ltikeys/ltikeys/crypto"
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
			if _, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: a.GetRegistration().GetId()}); err != nil {
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
		if err := server.CheckKeyring(ctx, env.store, newRing); !errors.As(err, &missing) || missing.ID != "old" {
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
		if err := server.CheckKeyring(ctx, env.store, both); err != nil {
			t.Fatalf("after an interrupted rewrap a key does not open: %v", err)
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
		if err := server.CheckKeyring(ctx, env.store, newRing); err != nil {
			t.Fatalf("after rewrap the new key alone does not open every key: %v", err)
		}
		env = newTestEnvWith(t, env.url, newRing)
		for _, id := range ids {
			verify(t, env, signWithToolKey(t, env, id))
		}
	})
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
