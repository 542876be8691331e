package conformance

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// testConcurrentRotateKey starts many rotations of one registration at once.
// All must succeed, and they must serialize: each sees the key the one
// before it installed, so the previous keys they report are all distinct.
func testConcurrentRotateKey(t *testing.T, s storage.Store) {
	const n = 20
	ctx := t.Context()
	reg, first := mustCreate(t, s)

	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		kids  [n]string
		prevs [n]string
		errs  [n]error
	)
	for i := range n {
		key := newKey(reg.ID)
		kids[i] = key.KID
		wg.Go(func() {
			<-start
			_, _, prev, err := s.RotateKey(ctx, reg.ID, key)
			prevs[i], errs[i] = prev.KID, err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rotation %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	final := mustGetRegistration(t, s, reg.ID).KID
	if !slices.Contains(kids[:], final) {
		t.Fatalf("registration points at %q, not one of the new keys", final)
	}
	// Serialized rotations form a chain first → … → final: the previous
	// keys are the first key and every new key but the last.
	wantPrevs := append([]string{first.KID}, kids[:]...)
	wantPrevs = slices.DeleteFunc(wantPrevs, func(kid string) bool { return kid == final })
	slices.Sort(wantPrevs)
	gotPrevs := slices.Sorted(slices.Values(prevs[:]))
	if !slices.Equal(gotPrevs, wantPrevs) {
		t.Errorf("previous keys reported = %q, want %q (rotations did not serialize)", gotPrevs, wantPrevs)
	}

	wantActive := append([]string{first.KID}, kids[:]...)
	slices.Sort(wantActive)
	if got := slices.Sorted(slices.Values(mustActiveKIDs(t, s))); !slices.Equal(got, wantActive) {
		t.Errorf("active keys = %q, want all %d", got, n+1)
	}
}

// testConcurrentUpdatePrivateKey runs many read-modify-write updates of one
// key at once; each increments a counter held in the sealed bytes. None may
// be lost.
func testConcurrentUpdatePrivateKey(t *testing.T, s storage.Store) {
	const n = 10
	ctx := t.Context()
	_, key := mustCreate(t, s)
	err := s.UpdatePrivateKey(ctx, key.KID, func([]byte) ([]byte, bool, error) {
		return []byte("0"), true, nil
	})
	if err != nil {
		t.Fatalf("UpdatePrivateKey: %v", err)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			err := s.UpdatePrivateKey(ctx, key.KID, func(sealed []byte) ([]byte, bool, error) {
				v, err := strconv.Atoi(string(sealed))
				if err != nil {
					return nil, false, err
				}
				return strconv.AppendInt(nil, int64(v+1), 10), true, nil
			})
			if err != nil {
				t.Errorf("UpdatePrivateKey: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()

	if got := string(mustGetKey(t, s, key.KID).PrivateJWK); got != strconv.Itoa(n) {
		t.Errorf("counter after %d concurrent updates = %s, want %d (updates were lost)", n, got, n)
	}
}

// Opener opens a store on one database, with clock now, as another process
// sharing that database would. The suite closes every store it opens.
type Opener func(t *testing.T, now func() time.Time) storage.Store

// RunSharedDatabaseTests runs the tests of several stores on one database,
// as replicas of the service run. newDatabase must create a fresh, empty
// database and return an Opener of stores on it; it is called once per
// subtest.
func RunSharedDatabaseTests(t *testing.T, newDatabase func(t *testing.T) Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"ConcurrentReplicas", testConcurrentReplicas},
		{"ConcurrentUseNonceReplicas", testConcurrentUseNonceReplicas},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := newDatabase(t)
			tc.run(t, func(t *testing.T, now func() time.Time) storage.Store {
				s := open(t, now)
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				return s
			})
		})
	}
}

// testConcurrentReplicas has three stores on one database rotate (at once
// and ahead of time), retire, delete and re-create, and apply transitions
// to a few registrations at once, while the clock moves so that scheduled
// transitions fall due. Every call must succeed or fail with a sentinel it
// documents, never with a deadlock or ErrConflict; afterwards the rows must
// be consistent.
func testConcurrentReplicas(t *testing.T, open Opener) {
	const (
		replicas   = 3
		workers    = 2 // per replica
		iterations = 40
		slots      = 4 // registrations under load at any time
	)
	ctx := t.Context()
	clock := NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	stores := make([]storage.Store, replicas)
	for i := range stores {
		stores[i] = open(t, clock.Now)
	}

	var (
		mu      sync.Mutex
		slot    [slots]string       // the registration each slot holds
		live    = map[string]bool{} // every registration created and not deleted
		deleted []string
	)
	for i := range slot {
		reg, _ := mustCreate(t, stores[i%replicas])
		slot[i], live[reg.ID] = reg.ID, true
	}
	check := func(what string, err error, allowed ...error) { CheckErr(t, what, err, allowed...) }

	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range replicas * workers {
		s := stores[w%replicas]
		rng := rand.New(rand.NewPCG(uint64(w), 0x5eed))
		wg.Go(func() {
			<-start
			for range iterations {
				n := rng.IntN(slots)
				mu.Lock()
				id := slot[n]
				mu.Unlock()
				// A registration may be deleted under any call: ErrNotFound
				// is always a possible answer, except where noted.
				switch op := rng.IntN(10); op {
				case 0:
					_, err := s.Rotate(ctx, id, newKey(id), storage.RotateOptions{})
					check("Rotate, retiring at once", err, storage.ErrNotFound)
				case 1:
					_, _, _, err := s.RotateKey(ctx, id, newKey(id))
					check("RotateKey", err, storage.ErrNotFound)
				case 2, 3:
					_, err := s.Rotate(ctx, id, newKey(id), storage.RotateOptions{
						PublishAhead: time.Hour, RetirePreviousAfter: time.Duration(op-2) * time.Hour, MaxPublished: 4,
					})
					check("Rotate ahead", err, storage.ErrNotFound, storage.ErrTooManyKeys)
				case 4, 5:
					reg, err := s.GetRegistration(ctx, id)
					if check("GetRegistration", err, storage.ErrNotFound); err != nil {
						continue
					}
					// The current or the pending key, or any of its keys.
					kid := reg.KID
					if reg.PendingKID != "" && rng.IntN(2) == 0 {
						kid = reg.PendingKID
					}
					if op == 5 {
						keys, err := s.ListKeys(ctx, storage.KeyQuery{RegistrationID: id, Limit: 100})
						if check("ListKeys", err); err != nil || len(keys) == 0 {
							continue
						}
						kid = keys[rng.IntN(len(keys))].KID
					}
					_, err = s.RetireKey(ctx, kid) // keys are never deleted
					check("RetireKey", err, storage.ErrKeyInUse)
				case 6, 7:
					_, err := s.ApplyTransitions(ctx)
					check("ApplyTransitions", err)
				case 8:
					clock.Advance(20 * time.Minute)
				case 9:
					// Replace the slot's registration by a new one. If
					// another worker replaced it first, the new one stays
					// live, out of the slots.
					next := newRegistration()
					_, _, err := s.CreateRegistration(ctx, next, newKey(next.ID))
					check("CreateRegistration", err)
					mu.Lock()
					replace := err == nil && slot[n] == id
					if replace {
						slot[n] = next.ID
					}
					if err == nil {
						live[next.ID] = true
					}
					mu.Unlock()
					if !replace {
						continue
					}
					_, err = s.DeleteRegistration(ctx, id)
					check("DeleteRegistration", err)
					mu.Lock()
					delete(live, id)
					deleted = append(deleted, id)
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	checkRows(t, stores[0], clock.Now(), live, deleted)
}

// checkRows checks, through s, that the live registrations are exactly
// those listed and each signs with an active key, that every key of a
// deleted registration is retired, and that ActiveKeys returns exactly the
// keys whose rows are active, all of live registrations.
func checkRows(t *testing.T, s storage.Store, now time.Time, live map[string]bool, deleted []string) {
	t.Helper()
	ctx := t.Context()
	var listed []string
	for q := (storage.RegistrationQuery{Limit: 100}); ; {
		page, err := s.ListRegistrations(ctx, q)
		if err != nil {
			t.Fatalf("ListRegistrations: %v", err)
		}
		for _, r := range page {
			listed = append(listed, r.ID)
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterID = page[len(page)-1].ID
	}
	if want := slices.Sorted(maps.Keys(live)); !slices.Equal(slices.Sorted(slices.Values(listed)), want) {
		t.Errorf("live registrations = %q, want %q", listed, want)
	}

	for id := range live {
		reg := mustGetRegistration(t, s, id)
		for _, kid := range []string{reg.KID, reg.PendingKID} {
			if kid == "" {
				continue
			}
			k, err := s.GetKey(ctx, kid)
			switch {
			case err != nil:
				t.Errorf("registration %s points at key %s: %v", id, kid, err)
			case !k.Active || k.RegistrationID != id:
				t.Errorf("registration %s points at key %s, which is active %v and of registration %s", id, kid, k.Active, k.RegistrationID)
			}
		}
		signing := mustGetKey(t, s, reg.SigningKID(now))
		if st := signing.State(now); st != storage.KeyCurrent {
			t.Errorf("registration %s signs with key %s, in state %d at %v", id, signing.KID, st, now)
		}
	}
	for _, id := range deleted {
		if _, err := s.GetRegistration(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetRegistration of deleted %s: %v, want ErrNotFound", id, err)
		}
		keys, err := s.ListKeys(ctx, storage.KeyQuery{RegistrationID: id, Limit: 1000})
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		for _, k := range keys {
			if k.Active {
				t.Errorf("key %s of deleted registration %s is active", k.KID, id)
			}
		}
	}

	var activeRows []string
	for q := (storage.KeyQuery{Limit: 100}); ; {
		page, err := s.ListKeys(ctx, q)
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		for _, k := range page {
			if k.Active {
				activeRows = append(activeRows, k.KID)
				if !live[k.RegistrationID] {
					t.Errorf("key %s is active, but its registration %s is not live", k.KID, k.RegistrationID)
				}
			}
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterSeq = page[len(page)-1].Seq
	}
	slices.Sort(activeRows)
	if got := slices.Sorted(slices.Values(mustActiveKIDs(t, s))); !slices.Equal(got, activeRows) {
		t.Errorf("ActiveKeys = %q,\nthe active rows are %q", got, activeRows)
	}
}

// CheckErr fails t, without stopping it, unless err is nil or matches one
// of allowed (errors.Is); an ErrConflict is reported as such, since the
// store's retries should have absorbed it. what names the call. It is for
// tests that run concurrent writes and accept each call's documented
// sentinels; it may be called from any goroutine.
func CheckErr(t testing.TB, what string, err error, allowed ...error) {
	t.Helper()
	for _, a := range allowed {
		if errors.Is(err, a) {
			return
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrConflict):
		t.Errorf("%s gave up on conflicts: %v", what, err)
	default:
		t.Errorf("%s: %v", what, err)
	}
}
