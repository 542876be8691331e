package main_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/crypto/cryptotest"
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

// seedKey stores registration n (1, 2, …) with a key sealed under mk, in
// envelope format 2 or, with v1, in format 1 as an older release wrote it,
// and returns the kid and the sealed bytes, to compare against later.
func seedKey(t *testing.T, databaseURL string, mk crypto.MasterKey, n int, v1 bool) (kid string, sealed []byte) {
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
	id := fmt.Sprintf("0190a5c0-0000-7000-8000-%012d", n)
	if v1 {
		sealed, err = cryptotest.SealV1(mk.ID, mk.Key, pair.PrivateJWK, pair.KID)
	} else {
		sealed, err = keyring.Seal(pair.PrivateJWK, pair.KID, id)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = store.CreateRegistration(ctx, storage.Registration{
		ID: id, Issuer: "https://platform.example.com", ClientID: fmt.Sprint("tool-", n),
		AuthEndpoint: "https://platform.example.com/auth", JWKSURI: "https://platform.example.com/jwks", TokenEndpoint: "https://platform.example.com/token",
	}, storage.Key{KID: pair.KID, Alg: pair.Alg, RegistrationID: id, PublicJWK: pair.PublicJWK, PrivateJWK: sealed, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	return pair.KID, sealed
}

// keyringEnv returns serve's and rewrap's environment for the database at
// url with keys as the keyring, the first the primary.
func keyringEnv(url string, keys ...crypto.MasterKey) []string {
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k.Line()
	}
	return []string{readOnlyTokens, "LTIKEYS_DATABASE_URL=" + url, "LTIKEYS_MASTER_KEYS=" + strings.Join(lines, ",")}
}

// envelopeFormat returns the format version of a stored key's envelope.
func envelopeFormat(t *testing.T, databaseURL, kid string) int {
	t.Helper()
	v, err := crypto.FormatVersion(storedKey(t, databaseURL, kid))
	if err != nil {
		t.Fatal(err)
	}
	return v
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

// backends are the storage backends the end-to-end tests run against.
var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", storagetest.SQLiteURL},
	{"postgres", storagetest.PostgresURL},
}

// TestMasterKeyRotationEndToEnd drives the documented procedure through the
// binary, on both backends: serve refuses a keyring that lacks the key the
// data is sealed under (naming it, changing nothing); rewrap with the new key
// first moves every key, upgrading the one an older release sealed in
// envelope format 1; serve then starts with the new key alone; a rerun of
// rewrap has nothing to do.
func TestMasterKeyRotationEndToEnd(t *testing.T) {
	for _, backend := range backends {
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
			kid, sealed := seedKey(t, url, oldKey, 1, false)
			kidV1, _ := seedKey(t, url, oldKey, 2, true)
			dir := t.TempDir()

			// A keyring without the sealing key: refused, named, nothing written.
			out, err := command(context.Background(), dir, keyringEnv(url, newKey), "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0").CombinedOutput()
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
			if out, err := command(context.Background(), dir, keyringEnv(url, newKey), "rewrap").CombinedOutput(); err == nil || !strings.Contains(string(out), `"old-2025"`) {
				t.Errorf("rewrap without the old key: err=%v, output does not name it:\n%s", err, out)
			}

			out, err = command(context.Background(), dir, keyringEnv(url, newKey, oldKey), "rewrap").CombinedOutput()
			if err != nil {
				t.Fatalf("rewrap: %v\n%s", err, out)
			}
			if want := `rewrapped 2 keys under master key "new-2026" (1 upgraded from envelope format 1); 0 were already current`; !strings.Contains(string(out), want) {
				t.Errorf("rewrap reported %q, want %q", out, want)
			}
			for _, k := range []string{kid, kidV1} {
				if got, _ := crypto.SealedBy(storedKey(t, url, k)); got != "new-2026" {
					t.Errorf("after rewrap key %s is sealed by %q, want new-2026", k, got)
				}
				if v := envelopeFormat(t, url, k); v != 2 {
					t.Errorf("after rewrap key %s is in envelope format %d, want 2", k, v)
				}
			}

			out, err = command(context.Background(), dir, keyringEnv(url, newKey, oldKey), "rewrap").CombinedOutput()
			if want := `rewrapped 0 keys under master key "new-2026" (0 upgraded from envelope format 1); 2 were already current`; err != nil || !strings.Contains(string(out), want) {
				t.Errorf("second rewrap: err=%v, output %q, want %q", err, out, want)
			}

			p := startServe(t, dir, keyringEnv(url, newKey))
			p.stop(t)
		})
	}
}

// TestRewrapUpgradesFormat1EndToEnd: serve warns of a key an older release
// sealed in envelope format 1 under the primary master key; rewrap rewrites
// it in format 2 under the same key, a rerun leaves it alone, and serve no
// longer warns.
func TestRewrapUpgradesFormat1EndToEnd(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			url := backend.url(t)
			mk, err := crypto.GenerateMasterKey("only-2026")
			if err != nil {
				t.Fatal(err)
			}
			kid, sealed := seedKey(t, url, mk, 1, true)
			dir := t.TempDir()

			// serve starts, and says what rewrap would do.
			const warning = `"msg":"private keys in envelope format 1 are bound to their kid but not to their registration: run ltikeys rewrap to upgrade them"`
			p := startServe(t, dir, keyringEnv(url, mk))
			p.stop(t)
			if logs := p.stderr.String(); !strings.Contains(logs, warning) || !strings.Contains(logs, `"format1_keys":1`) {
				t.Errorf("serve does not report the key in envelope format 1:\n%s", logs)
			}

			out, err := command(context.Background(), dir, keyringEnv(url, mk), "rewrap").CombinedOutput()
			if want := `rewrapped 1 keys under master key "only-2026" (1 upgraded from envelope format 1); 0 were already current`; err != nil || !strings.Contains(string(out), want) {
				t.Fatalf("rewrap: err=%v, output %q, want %q", err, out, want)
			}
			upgraded := storedKey(t, url, kid)
			if bytes.Equal(upgraded, sealed) || envelopeFormat(t, url, kid) != 2 {
				t.Fatalf("rewrap left the format 1 envelope as it was")
			}
			if id, _ := crypto.SealedBy(upgraded); id != "only-2026" {
				t.Errorf("the upgraded key is sealed by %q, want only-2026", id)
			}

			out, err = command(context.Background(), dir, keyringEnv(url, mk), "rewrap").CombinedOutput()
			if want := `rewrapped 0 keys under master key "only-2026" (0 upgraded from envelope format 1); 1 were already current`; err != nil || !strings.Contains(string(out), want) {
				t.Errorf("second rewrap: err=%v, output %q, want %q", err, out, want)
			}
			if got := storedKey(t, url, kid); !bytes.Equal(got, upgraded) {
				t.Error("a second rewrap rewrote a current envelope")
			}

			p = startServe(t, dir, keyringEnv(url, mk))
			p.stop(t)
			if logs := p.stderr.String(); strings.Contains(logs, "format1_keys") {
				t.Errorf("serve reports envelope format 1 keys after rewrap:\n%s", logs)
			}
		})
	}
}
