package main_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// readOnlyTokens configures one token (by hash) so serve accepts a database
// without generating credentials; no test here calls KeyService.
const readOnlyTokens = "LTIKEYS_TOKENS=probe:keys.read:0000000000000000000000000000000000000000000000000000000000000000"

// masterKeyLine returns a fresh random master key named id as a keyring
// line.
func masterKeyLine(t *testing.T, id string) string {
	t.Helper()
	mk, err := crypto.GenerateMasterKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return mk.Line()
}

// seedKey stores one registration whose key is sealed under mk and returns
// the sealed bytes, to compare against later.
func seedKey(t *testing.T, databaseURL string, mk crypto.MasterKey) (kid string, sealed []byte) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keyring, err := crypto.NewKeyring(mk)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := crypto.GenerateKeyPair(2048)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err = keyring.Seal(pair.PrivateJWK, pair.KID)
	if err != nil {
		t.Fatal(err)
	}
	const id = "0190a5c0-0000-7000-8000-000000000001"
	_, _, err = store.CreateRegistration(ctx, storage.Registration{
		ID: id, Issuer: "https://platform.example.com", ClientID: "tool",
		AuthEndpoint: "https://platform.example.com/auth", JWKSURI: "https://platform.example.com/jwks", TokenEndpoint: "https://platform.example.com/token",
	}, storage.Key{KID: pair.KID, Alg: pair.Alg, RegistrationID: id, PublicJWK: pair.PublicJWK, PrivateJWK: sealed, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	return pair.KID, sealed
}

// storedKey reads a key's sealed bytes straight from storage.
func storedKey(t *testing.T, databaseURL, kid string) []byte {
	t.Helper()
	store, err := storage.Open(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, err := store.GetKey(context.Background(), kid)
	if err != nil {
		t.Fatal(err)
	}
	return key.PrivateJWK
}

// TestMasterKeyRotationEndToEnd drives the documented procedure through the
// binary, on both backends: serve refuses a keyring that lacks the key the
// data is sealed under (naming it, changing nothing); rewrap with the new key
// first moves every key; serve then starts with the new key alone; a rerun
// of rewrap has nothing to do.
func TestMasterKeyRotationEndToEnd(t *testing.T) {
	for _, backend := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", storagetest.SQLiteURL},
		{"postgres", storagetest.PostgresURL},
	} {
		t.Run(backend.name, func(t *testing.T) {
			url := backend.url(t)
			oldKey, err := crypto.GenerateMasterKey("old-2025")
			if err != nil {
				t.Fatal(err)
			}
			newKey, err := crypto.GenerateMasterKey("new-2026")
			if err != nil {
				t.Fatal(err)
			}
			kid, sealed := seedKey(t, url, oldKey)
			dir := t.TempDir()
			env := func(keys ...crypto.MasterKey) []string {
				lines := make([]string, len(keys))
				for i, k := range keys {
					lines[i] = k.Line()
				}
				return []string{readOnlyTokens, "LTIKEYS_DATABASE_URL=" + url, "LTIKEYS_MASTER_KEYS=" + strings.Join(lines, ",")}
			}

			// A keyring without the sealing key: refused, named, nothing written.
			out, err := command(context.Background(), dir, env(newKey), "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0").CombinedOutput()
			if err == nil {
				t.Fatalf("serve started without the key the data is sealed under\n%s", out)
			}
			if !strings.Contains(string(out), `"old-2025"`) {
				t.Errorf("serve's refusal does not name the missing master key:\n%s", out)
			}
			if strings.Contains(string(out), newKey.Line()) {
				t.Errorf("serve's output contains master key material")
			}
			if got := storedKey(t, url, kid); !bytes.Equal(got, sealed) {
				t.Fatalf("a refused start changed the stored key")
			}

			// rewrap with the new key alone cannot open the data either.
			if out, err := command(context.Background(), dir, env(newKey), "rewrap").CombinedOutput(); err == nil || !strings.Contains(string(out), `"old-2025"`) {
				t.Errorf("rewrap without the old key: err=%v, output does not name it:\n%s", err, out)
			}

			out, err = command(context.Background(), dir, env(newKey, oldKey), "rewrap").CombinedOutput()
			if err != nil {
				t.Fatalf("rewrap: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "rewrapped 1 keys") || !strings.Contains(string(out), "0 were already current") {
				t.Errorf("rewrap reported %q, want 1 rewrapped and 0 current", out)
			}
			if got, _ := crypto.SealedBy(storedKey(t, url, kid)); got != "new-2026" {
				t.Errorf("after rewrap the key is sealed by %q, want new-2026", got)
			}

			out, err = command(context.Background(), dir, env(newKey, oldKey), "rewrap").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "rewrapped 0 keys") || !strings.Contains(string(out), "1 were already current") {
				t.Errorf("second rewrap: err=%v, output %q, want nothing to do", err, out)
			}

			p := startServe(t, dir, env(newKey))
			p.stop(t)
		})
	}
}
