package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

var jwksSeed = flag.Uint64("jwks-seed", 0, "seed of TestJWKSCacheIncremental's operations; 0 picks one, which the test logs")

// syntheticModulus is the n of every syntheticJWK: a random odd 2048-bit
// number, a valid public modulus to publish, never used to verify.
var syntheticModulus = func() string {
	n := make([]byte, 256)
	rand.Read(n)
	n[0] |= 0x80
	n[255] |= 1
	return base64.RawURLEncoding.EncodeToString(n)
}()

// syntheticJWK returns a public JWK named kid, valid to publish.
func syntheticJWK(kid string) []byte {
	return fmt.Appendf(nil, `{"kty":"RSA","n":%q,"e":"AQAB","kid":%q,"alg":"RS256","use":"sig"}`, syntheticModulus, kid)
}

// syntheticKey returns a key for registrationID with a synthetic public
// JWK and a placeholder sealed private half: enough for storage and the
// JWKS cache, which never opens it.
func syntheticKey(registrationID string) storage.Key {
	kid := "synthetic-" + uuid.NewString()
	return storage.Key{KID: kid, Alg: "RS256", RegistrationID: registrationID, PublicJWK: syntheticJWK(kid), PrivateJWK: []byte{0}}
}

func syntheticRegistration() storage.Registration {
	id := uuid.NewString()
	return storage.Registration{
		ID: id, Issuer: "https://platform.example/" + id, ClientID: "client",
		AuthEndpoint: "https://platform.example/auth", JWKSURI: "https://platform.example/jwks", TokenEndpoint: "https://platform.example/token",
	}
}

// countingStore counts the full loads a JWKS cache makes through it.
type countingStore struct {
	storage.Store
	activeKeys atomic.Int64
}

func (s *countingStore) ActiveKeys(ctx context.Context) ([]storage.Key, error) {
	s.activeKeys.Add(1)
	return s.Store.ActiveKeys(ctx)
}

func openClockStore(t *testing.T, databaseURL string, clock *conformance.Clock) storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), databaseURL, storage.WithClock(clock.Now))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustRefresh(t *testing.T, c *server.JWKSCache) {
	t.Helper()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
}

// expectedDocuments builds, independently of JWKSCache, what it must
// serve at now: crypto.JWKS of the published keys in ActiveKeys order, for
// all keys and for each registration with a published key.
func expectedDocuments(t *testing.T, store storage.Store, now time.Time) (global []byte, byRegistration map[string][]byte) {
	t.Helper()
	keys, err := store.ActiveKeys(context.Background())
	if err != nil {
		t.Fatalf("ActiveKeys: %v", err)
	}
	var all [][]byte
	regs := map[string][][]byte{}
	for _, k := range keys {
		if k.State(now) != storage.KeyRetired {
			all = append(all, k.PublicJWK)
			regs[k.RegistrationID] = append(regs[k.RegistrationID], k.PublicJWK)
		}
	}
	if global, err = crypto.JWKS(all); err != nil {
		t.Fatal(err)
	}
	byRegistration = map[string][]byte{}
	for id, jwks := range regs {
		if byRegistration[id], err = crypto.JWKS(jwks); err != nil {
			t.Fatal(err)
		}
	}
	return global, byRegistration
}

// kidList returns the kids of a JWK Set, in order; nil for no document.
func kidList(t testing.TB, doc []byte) []string {
	t.Helper()
	if doc == nil {
		return nil
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("not a JWK Set: %v", err)
	}
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.Kid
	}
	return kids
}

// checkCache fails unless cache serves, at now, byte for byte what a fresh
// cache's full load serves and what expectedDocuments builds, for every
// key and for each registration, and serves exactly the registrations
// that have a published key.
func checkCache(t *testing.T, what string, cache *server.JWKSCache, store storage.Store, clock *conformance.Clock) {
	t.Helper()
	fresh := server.NewJWKSCache(store, server.WithCacheClock(clock.Now))
	mustRefresh(t, fresh)
	global, byRegistration := expectedDocuments(t, store, clock.Now())
	if got := cache.Document(); !bytes.Equal(got, global) {
		t.Fatalf("%s: the global document holds kids %q, want %q (or differs otherwise)", what, kidList(t, got), kidList(t, global))
	}
	if got := fresh.Document(); !bytes.Equal(got, global) {
		t.Fatalf("%s: a fresh cache's global document holds kids %q, want %q (or differs otherwise)", what, kidList(t, got), kidList(t, global))
	}
	want := slices.Sorted(maps.Keys(byRegistration))
	if got := server.ServedRegistrations(cache); !slices.Equal(got, want) {
		t.Fatalf("%s: serves registrations %q, want %q", what, got, want)
	}
	if got := server.ServedRegistrations(fresh); !slices.Equal(got, want) {
		t.Fatalf("%s: a fresh cache serves registrations %q, want %q", what, got, want)
	}
	for id, doc := range byRegistration {
		if got := server.RegistrationDocument(cache, id); !bytes.Equal(got, doc) {
			t.Fatalf("%s: registration %s's document holds kids %q, want %q (or differs otherwise)", what, id, kidList(t, got), kidList(t, doc))
		}
		if got := server.RegistrationDocument(fresh, id); !bytes.Equal(got, doc) {
			t.Fatalf("%s: a fresh cache's document of registration %s holds kids %q, want %q (or differs otherwise)", what, id, kidList(t, got), kidList(t, doc))
		}
	}
}

// TestJWKSCacheIncremental runs a random sequence of writes, through two
// store instances on one database, transitions and clock advances, and
// after every step compares the incrementally updated cache with a fresh
// cache's full load and with documents built from ActiveKeys directly. A
// second cache, refreshed every few steps, applies several changes at
// once. Neither cache loads every key more than once.
func TestJWKSCacheIncremental(t *testing.T) {
	seed := *jwksSeed
	if seed == 0 {
		seed = mathrand.Uint64()
	}
	t.Logf("seed %d (rerun with -jwks-seed=%d)", seed, seed)
	const steps = 150
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			rng := mathrand.New(mathrand.NewPCG(seed, 0))
			clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			url := b.url(t)
			local := &countingStore{Store: openClockStore(t, url, clock)}
			stores := []storage.Store{local.Store, openClockStore(t, url, clock)}
			inc := server.NewJWKSCache(local, server.WithCacheClock(clock.Now))
			batchedStore := &countingStore{Store: local.Store}
			batched := server.NewJWKSCache(batchedStore, server.WithCacheClock(clock.Now))
			mustRefresh(t, inc)
			mustRefresh(t, batched)

			var live []string // registrations not deleted
			pick := func() string { return live[rng.IntN(len(live))] }
			durations := []time.Duration{0, 0, 30 * time.Minute, 2 * time.Hour}
			retirements := []time.Duration{-1, 0, 45 * time.Minute, 3 * time.Hour}
			for step := range steps {
				store := stores[rng.IntN(len(stores))]
				var what string
				switch r := rng.IntN(100); {
				case r < 15 || len(live) == 0:
					reg := syntheticRegistration()
					if _, _, err := store.CreateRegistration(ctx, reg, syntheticKey(reg.ID)); err != nil {
						t.Fatalf("CreateRegistration: %v", err)
					}
					live = append(live, reg.ID)
					what = "create"
				case r < 50:
					id := pick()
					opts := storage.RotateOptions{
						PublishAhead:        durations[rng.IntN(len(durations))],
						RetirePreviousAfter: retirements[rng.IntN(len(retirements))],
					}
					if _, err := store.Rotate(ctx, id, syntheticKey(id), opts); err != nil {
						t.Fatalf("Rotate: %v", err)
					}
					what = fmt.Sprintf("rotate (publish ahead %s, retire previous after %s)", opts.PublishAhead, opts.RetirePreviousAfter)
				case r < 65:
					keys, err := store.ListKeys(ctx, storage.KeyQuery{RegistrationID: pick(), Limit: 100})
					if err != nil {
						t.Fatal(err)
					}
					k := keys[rng.IntN(len(keys))]
					if _, err := store.RetireKey(ctx, k.KID); err != nil && !errors.Is(err, storage.ErrKeyInUse) {
						t.Fatalf("RetireKey: %v", err)
					}
					what = "retire"
				case r < 72:
					i := rng.IntN(len(live))
					if _, err := store.DeleteRegistration(ctx, live[i]); err != nil {
						t.Fatalf("DeleteRegistration: %v", err)
					}
					live = slices.Delete(live, i, i+1)
					what = "delete"
				case r < 85:
					if _, err := store.ApplyTransitions(ctx); err != nil {
						t.Fatalf("ApplyTransitions: %v", err)
					}
					what = "apply transitions"
				default:
					d := []time.Duration{time.Minute, 20 * time.Minute, time.Hour, 150 * time.Minute, 5 * time.Hour}[rng.IntN(5)]
					clock.Set(clock.Now().Add(d))
					what = "advance the clock " + d.String()
				}
				mustRefresh(t, inc)
				checkCache(t, fmt.Sprintf("step %d, %s", step, what), inc, local.Store, clock)
				if step%5 == 4 || step == steps-1 {
					mustRefresh(t, batched)
					checkCache(t, fmt.Sprintf("step %d, %s, batched", step, what), batched, local.Store, clock)
				}
			}
			if n := local.activeKeys.Load(); n != 1 {
				t.Errorf("the incremental cache loaded every key %d times, want once", n)
			}
			if n := batchedStore.activeKeys.Load(); n != 1 {
				t.Errorf("the batched cache loaded every key %d times, want once", n)
			}
		})
	}
}

// TestJWKSCacheFollowsAnotherStore makes every change through a second
// store instance on the cache's database, as another replica would: each
// Refresh picks it up from the change counter and the changed keys alone.
func TestJWKSCacheFollowsAnotherStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			url := b.url(t)
			mine := &countingStore{Store: openClockStore(t, url, clock)}
			other := openClockStore(t, url, clock)
			cache := server.NewJWKSCache(mine, server.WithCacheClock(clock.Now))
			mustRefresh(t, cache)

			a, b := syntheticRegistration(), syntheticRegistration()
			_, first, err := other.CreateRegistration(ctx, a, syntheticKey(a.ID))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := other.CreateRegistration(ctx, b, syntheticKey(b.ID)); err != nil {
				t.Fatal(err)
			}
			mustRefresh(t, cache)
			checkCache(t, "after two creations", cache, mine.Store, clock)

			rot, err := other.Rotate(ctx, a.ID, syntheticKey(a.ID), storage.RotateOptions{RetirePreviousAfter: -1})
			if err != nil {
				t.Fatal(err)
			}
			mustRefresh(t, cache)
			checkCache(t, "after a rotation", cache, mine.Store, clock)
			if doc := server.RegistrationDocument(cache, a.ID); !kids(t, doc)[rot.New.KID] || !kids(t, doc)[first.KID] {
				t.Errorf("after the rotation, registration %s serves %s; want both keys", a.ID, doc)
			}

			if _, err := other.RetireKey(ctx, first.KID); err != nil {
				t.Fatal(err)
			}
			mustRefresh(t, cache)
			checkCache(t, "after a retirement", cache, mine.Store, clock)
			if kids(t, cache.Document())[first.KID] {
				t.Errorf("the retired key %s is still published", first.KID)
			}

			if _, err := other.DeleteRegistration(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			mustRefresh(t, cache)
			checkCache(t, "after a deletion", cache, mine.Store, clock)
			if server.RegistrationDocument(cache, b.ID) != nil {
				t.Errorf("the deleted registration %s still has a document", b.ID)
			}
			if n := mine.activeKeys.Load(); n != 1 {
				t.Errorf("the cache loaded every key %d times, want once", n)
			}
		})
	}
}

// TestJWKSCacheGlobalRebuildInterval checks the coalescing of global
// rebuilds: within the interval after a build, requests are served that
// build; the per-registration documents, Document, and a scheduled
// retirement are not held back by it.
func TestJWKSCacheGlobalRebuildInterval(t *testing.T) {
	ctx := context.Background()
	clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	t0 := clock.Now()
	store := openClockStore(t, storagetest.SQLiteURL(t), clock)
	cache := server.NewJWKSCache(store, server.WithCacheClock(clock.Now), server.WithGlobalRebuildInterval(time.Hour))
	mustRefresh(t, cache)

	a, b := syntheticRegistration(), syntheticRegistration()
	_, ka, err := store.CreateRegistration(ctx, a, syntheticKey(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, cache)
	first := server.ServedDocument(cache) // the first request builds
	if !kids(t, first)[ka.KID] {
		t.Fatalf("the first global document %s lacks %s", first, ka.KID)
	}

	_, kb, err := store.CreateRegistration(ctx, b, syntheticKey(b.ID))
	if err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, cache)
	clock.Set(t0.Add(59 * time.Minute))
	if got := server.ServedDocument(cache); !bytes.Equal(got, first) {
		t.Errorf("within the interval, a request was served %s, want the previous build %s", got, first)
	}
	if got := server.RegistrationDocument(cache, b.ID); !kids(t, got)[kb.KID] {
		t.Errorf("registration %s's document %s lacks its key at once", b.ID, got)
	}
	clock.Set(t0.Add(time.Hour))
	second := server.ServedDocument(cache)
	if got := kids(t, second); !got[ka.KID] || !got[kb.KID] {
		t.Errorf("once the interval is over, the global document is %s, want both keys", second)
	}

	// Document is always current.
	rot, err := store.Rotate(ctx, a.ID, syntheticKey(a.ID), storage.RotateOptions{RetirePreviousAfter: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, cache)
	if got := kids(t, cache.Document()); !got[rot.New.KID] || !got[ka.KID] {
		t.Errorf("Document after a rotation = %v, want the new key and the previous one", got)
	}
	// A scheduled retirement passes within the interval of the last
	// build: the key leaves the global document at its RetireAt all the
	// same.
	clock.Set(rot.Previous.RetireAt.Add(-time.Second))
	if !kids(t, server.ServedDocument(cache))[ka.KID] {
		t.Fatalf("the previous key %s left the global document before its RetireAt", ka.KID)
	}
	clock.Set(rot.Previous.RetireAt)
	if got := kids(t, server.ServedDocument(cache)); got[ka.KID] || !got[rot.New.KID] {
		t.Errorf("at the previous key's RetireAt, within the rebuild interval, the global document is %v; want the new key without the retired one", got)
	}
	if got := kids(t, server.RegistrationDocument(cache, a.ID)); got[ka.KID] || len(got) != 1 {
		t.Errorf("at the previous key's RetireAt, registration %s serves %v, want the new key only", a.ID, got)
	}
}

// TestJWKSCacheConcurrentReaders reads every document while another
// goroutine rotates and refreshes: each document read is whole (a JWK Set
// of distinct keys, a registration's holding its own keys only), and, run
// with -race, the cache's state is never read while it is written.
func TestJWKSCacheConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	store, err := storage.Open(ctx, storagetest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cache := server.NewJWKSCache(store)
	ids := make([]string, 4)
	owner := sync.Map{} // kid → registration id
	for i := range ids {
		reg := syntheticRegistration()
		key := syntheticKey(reg.ID)
		if _, _, err := store.CreateRegistration(ctx, reg, key); err != nil {
			t.Fatal(err)
		}
		ids[i] = reg.ID
		owner.Store(key.KID, reg.ID)
	}
	mustRefresh(t, cache)

	const rotations = 20
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range rotations {
			id := ids[i%len(ids)]
			key := syntheticKey(id)
			owner.Store(key.KID, id)
			if _, err := store.Rotate(ctx, id, key, storage.RotateOptions{RetirePreviousAfter: 0}); err != nil {
				t.Error(err)
				return
			}
			if err := cache.Refresh(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	whole := func(doc []byte) (map[string]bool, error) {
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(doc, &set); err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for _, k := range set.Keys {
			if out[k.Kid] {
				return nil, errors.New("kid " + k.Kid + " twice")
			}
			out[k.Kid] = true
		}
		return out, nil
	}
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := whole(server.ServedDocument(cache)); err != nil {
					t.Errorf("global document: %v", err)
					return
				}
				id := ids[mathrand.IntN(len(ids))]
				got, err := whole(server.RegistrationDocument(cache, id))
				if err != nil || len(got) == 0 {
					t.Errorf("registration %s's document: %v, %d keys", id, err, len(got))
					return
				}
				for kid := range got {
					if o, _ := owner.Load(kid); o != id {
						t.Errorf("registration %s's document holds %s, a key of %v", id, kid, o)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	checkCache(t, "after the rotations", cache, store, conformance.NewClock(time.Now()))
}
