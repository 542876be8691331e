package server_test

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// publishableKey returns a key of registrationID with a unique kid whose
// public half is a random 2048-bit odd modulus: valid to publish, never
// used to sign, and cheap to make.
func publishableKey(registrationID string) storage.Key {
	kid := "replica-" + uuid.NewString()
	return storage.Key{
		KID: kid, Alg: "RS256", RegistrationID: registrationID,
		PublicJWK:  storagetest.SyntheticPublicJWK(kid),
		PrivateJWK: []byte("not a sealed key: never opened"),
	}
}

// TestReplicas runs three replicas' stores on one PostgreSQL database
// through concurrent rotations, retirements, deletions and transitions,
// each replica refreshing its JWKS cache meanwhile. None of their calls
// may fail with anything but the sentinels it documents, and afterwards
// every replica, refreshed, serves the document that a fresh cache builds
// from the rows: exactly the keys the rows publish.
func TestReplicas(t *testing.T) {
	const (
		replicas   = 3
		workers    = 2 // per replica
		iterations = 40
		slots      = 4 // registrations under load at any time
	)
	ctx := t.Context()
	url := storagetest.PostgresURL(t)
	clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	stores := make([]storage.Store, replicas)
	caches := make([]*server.JWKSCache, replicas)
	for i := range replicas {
		s, err := storage.Open(ctx, url, storage.WithClock(clock.Now))
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
		caches[i] = server.NewJWKSCache(s, server.WithCacheClock(clock.Now))
	}

	var (
		mu   sync.Mutex
		slot [slots]string
	)
	create := func(s storage.Store) (string, error) {
		reg := storage.Registration{
			ID: uuid.NewString(), ClientID: "client", AuthEndpoint: "https://platform.example/auth",
			JWKSURI: "https://platform.example/jwks", TokenEndpoint: "https://platform.example/token",
		}
		reg.Issuer = "https://platform.example/" + reg.ID
		_, _, err := s.CreateRegistration(ctx, reg, publishableKey(reg.ID))
		return reg.ID, err
	}
	for i := range slot {
		id, err := create(stores[i%replicas])
		if err != nil {
			t.Fatalf("CreateRegistration: %v", err)
		}
		slot[i] = id
	}
	for _, c := range caches {
		if err := c.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	check := func(what string, err error, allowed ...error) { conformance.CheckErr(t, what, err, allowed...) }

	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range replicas * workers {
		s, cache := stores[w%replicas], caches[w%replicas]
		rng := rand.New(rand.NewPCG(uint64(w), 0x5eed))
		wg.Go(func() {
			<-start
			for range iterations {
				n := rng.IntN(slots)
				mu.Lock()
				id := slot[n]
				mu.Unlock()
				// Any registration may be deleted meanwhile: ErrNotFound.
				switch op := rng.IntN(12); op {
				case 0:
					_, err := s.Rotate(ctx, id, publishableKey(id), storage.RotateOptions{})
					check("Rotate, retiring at once", err, storage.ErrNotFound)
				case 1, 2:
					_, err := s.Rotate(ctx, id, publishableKey(id), storage.RotateOptions{
						PublishAhead: time.Hour, RetirePreviousAfter: time.Duration(op-1) * time.Hour, MaxPublished: 4,
					})
					check("Rotate ahead", err, storage.ErrNotFound, storage.ErrTooManyKeys)
				case 3, 4, 10, 11:
					// The current key, the pending one, or any key.
					reg, err := s.GetRegistration(ctx, id)
					if check("GetRegistration", err, storage.ErrNotFound); err != nil {
						continue
					}
					kid := reg.KID
					switch {
					case op == 4 && reg.PendingKID != "":
						kid = reg.PendingKID
					case op == 10:
						keys, err := s.ListKeys(ctx, storage.KeyQuery{RegistrationID: id, Limit: 100})
						if check("ListKeys", err); err != nil || len(keys) == 0 {
							continue
						}
						kid = keys[rng.IntN(len(keys))].KID
					}
					_, err = s.RetireKey(ctx, kid)
					check("RetireKey", err, storage.ErrKeyInUse)
				case 5:
					_, err := s.ApplyTransitions(ctx)
					check("ApplyTransitions", err)
				case 6:
					clock.Advance(20 * time.Minute)
				case 7, 8:
					check("Refresh", cache.Refresh(ctx))
				case 9:
					next, err := create(s)
					if check("CreateRegistration", err); err != nil {
						continue
					}
					mu.Lock()
					replace := slot[n] == id
					if replace {
						slot[n] = next
					}
					mu.Unlock()
					if replace {
						_, err := s.DeleteRegistration(ctx, id)
						check("DeleteRegistration", err)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	fresh := server.NewJWKSCache(stores[0], server.WithCacheClock(clock.Now))
	if err := fresh.Refresh(ctx); err != nil {
		t.Fatalf("fresh cache: Refresh: %v", err)
	}
	want := fresh.Document()
	now := clock.Now()
	published := map[string]bool{}
	for q := (storage.KeyQuery{Limit: 100}); ; {
		page, err := stores[0].ListKeys(ctx, q)
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		for _, k := range page {
			if k.State(now) != storage.KeyRetired {
				published[k.KID] = true
			}
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterSeq = page[len(page)-1].Seq
	}
	if len(published) == 0 {
		t.Fatal("no key is published after the load")
	}
	if got := kids(t, want); !maps.Equal(got, published) {
		t.Errorf("a fresh cache publishes %q,\nthe rows publish %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(published)))
	}
	for i, c := range caches {
		if err := c.Refresh(ctx); err != nil {
			t.Fatalf("replica %d: Refresh: %v", i, err)
		}
		if got := c.Document(); !bytes.Equal(got, want) {
			t.Errorf("replica %d serves\n%s\na fresh cache serves\n%s", i, got, want)
		}
	}
}
