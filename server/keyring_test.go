package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// seedKeys stores n registrations, each with a key whose private half is
// sealed by sealers[i] (testKeyring if nil) as the KeyService seals it, and
// returns the kids and registration ids in insertion order. The plaintext
// is no real JWK: checking and rewrapping only open envelopes.
func seedKeys(t *testing.T, store storage.Store, sealers []*crypto.Keyring, n int) (kids, regs []string) {
	t.Helper()
	for i := range n {
		sealer := testKeyring
		if i < len(sealers) && sealers[i] != nil {
			sealer = sealers[i]
		}
		id := uuid.NewString()
		kid := fmt.Sprintf("kid-%02d-%s", i, id[:8])
		sealed, err := sealer.Seal([]byte(`{"kty":"RSA","d":"secret"}`), kid, id)
		if err != nil {
			t.Fatal(err)
		}
		reg := storage.Registration{
			ID: id, Issuer: "https://platform.example/" + id, ClientID: "tool",
			AuthEndpoint: "https://platform.example/auth", JWKSURI: "https://platform.example/jwks", TokenEndpoint: "https://platform.example/token",
		}
		key := storage.Key{KID: kid, Alg: "RS256", RegistrationID: id, PublicJWK: []byte(`{"kty":"RSA"}`), PrivateJWK: sealed}
		if _, _, err := store.CreateRegistration(context.Background(), reg, key); err != nil {
			t.Fatal(err)
		}
		kids, regs = append(kids, kid), append(regs, id)
	}
	return kids, regs
}

// noPerKeyReads is a Store on which listing kids or reading one key at a
// time fails the test: passes over every key must read them in batches.
type noPerKeyReads struct {
	storage.Store
	t *testing.T
}

func (s noPerKeyReads) GetKey(ctx context.Context, kid string) (storage.Key, error) {
	s.t.Errorf("GetKey(%s) called: keys must be read in batches", kid)
	return s.Store.GetKey(ctx, kid)
}

func (s noPerKeyReads) KeyIDs(ctx context.Context) ([]string, error) {
	s.t.Error("KeyIDs called: keys must be read in batches")
	return s.Store.KeyIDs(ctx)
}

// TestCheckKeyringReadsInBatches checks that CheckKeyring costs one query
// per batch of keys, not one per key, on both backends, and that it still
// stops at the first key that does not open, naming it, without reading
// further batches. Rewrap reads in batches too.
func TestCheckKeyringReadsInBatches(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			var statements atomic.Int64
			opened, err := storage.Open(ctx, b.url(t), storage.WithStatementHook(func(context.Context) { statements.Add(1) }))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { opened.Close() })
			store := noPerKeyReads{Store: opened, t: t}

			const n = 10
			seedKeys(t, opened, nil, n)
			for _, tt := range []struct {
				batch int
				// queries is n/batch+1: a full last page needs one more,
				// empty, to end.
				queries int64
			}{
				{batch: 1, queries: 11},
				{batch: 4, queries: 3},
				{batch: 5, queries: 3},
				{batch: 10, queries: 2},
				{batch: 11, queries: 1},
			} {
				statements.Store(0)
				check, err := server.CheckKeyringBatch(ctx, store, testKeyring, tt.batch)
				if err != nil || check != (server.KeyringCheck{Keys: n}) {
					t.Errorf("batch %d: CheckKeyring = %+v, %v; want %d keys", tt.batch, check, err, n)
				}
				if got := statements.Load(); got != tt.queries {
					t.Errorf("batch %d: CheckKeyring ran %d statements for %d keys, want %d", tt.batch, got, n, tt.queries)
				}
			}
			statements.Store(0)
			if _, err := server.CheckKeyring(ctx, store, testKeyring); err != nil {
				t.Fatal(err)
			}
			if got := statements.Load(); got != 1 {
				t.Errorf("CheckKeyring with the default batch ran %d statements for %d keys, want 1", got, n)
			}

			stats, err := server.Rewrap(ctx, store, testKeyring)
			if err != nil || stats != (server.RewrapStats{Current: n}) {
				t.Errorf("Rewrap = %+v, %v; want %d keys current", stats, err, n)
			}
		})
	}
}

// TestCheckKeyringFailsOnFirstBadKey seals the 6th of 10 keys under a
// master key the keyring lacks: CheckKeyring, reading 4 keys a batch,
// fails naming that key, its registration and the missing master key,
// having read 2 batches and not the 3rd.
func TestCheckKeyringFailsOnFirstBadKey(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			var statements atomic.Int64
			store, err := storage.Open(ctx, b.url(t), storage.WithStatementHook(func(context.Context) { statements.Add(1) }))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })

			other := mustKeyring(t, mustMasterKey(t, "elsewhere"))
			kids, regs := seedKeys(t, store, []*crypto.Keyring{5: other, 7: other}, 10)

			statements.Store(0)
			_, err = server.CheckKeyringBatch(ctx, store, testKeyring, 4)
			var missing *crypto.MissingKeyError
			if !errors.As(err, &missing) || missing.ID != "elsewhere" {
				t.Fatalf("CheckKeyring = %v, want a MissingKeyError for %q", err, "elsewhere")
			}
			if msg := err.Error(); !strings.Contains(msg, kids[5]) || !strings.Contains(msg, regs[5]) || strings.Contains(msg, kids[7]) {
				t.Errorf("CheckKeyring error %q does not name the first bad key %s of registration %s alone", msg, kids[5], regs[5])
			}
			if got := statements.Load(); got != 2 {
				t.Errorf("CheckKeyring ran %d statements before failing in the 2nd batch, want 2", got)
			}
		})
	}
}
