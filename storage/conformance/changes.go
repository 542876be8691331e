package conformance

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// keyReplica follows a store's keys as a JWK Set cache does: a full load
// with ActiveKeys, then KeysChangedSince from the version of that load.
type keyReplica struct {
	version int64
	// active holds the active keys by kid, as the replica knows them.
	active map[string]storage.Key
}

func newKeyReplica(t *testing.T, s storage.Store) *keyReplica {
	t.Helper()
	r := &keyReplica{version: mustVersion(t, s), active: map[string]storage.Key{}}
	keys, err := s.ActiveKeys(t.Context())
	if err != nil {
		t.Fatalf("ActiveKeys: %v", err)
	}
	for _, k := range keys {
		r.active[k.KID] = k
	}
	return r
}

// catchUp applies the keys changed since the replica's version and returns
// them.
func (r *keyReplica) catchUp(t *testing.T, s storage.Store) []storage.Key {
	t.Helper()
	current, keys, err := s.KeysChangedSince(t.Context(), r.version)
	if err != nil {
		t.Fatalf("KeysChangedSince(%d): %v", r.version, err)
	}
	if current < r.version {
		t.Fatalf("KeysChangedSince(%d) returned counter %d, below the version it was given", r.version, current)
	}
	if !slices.IsSortedFunc(keys, func(a, b storage.Key) int { return cmp.Compare(a.Seq, b.Seq) }) {
		t.Errorf("KeysChangedSince(%d): keys not ordered by Seq", r.version)
	}
	for _, k := range keys {
		if len(k.PrivateJWK) != 0 {
			t.Errorf("KeysChangedSince returned key %s with its private half", k.KID)
		}
		if k.Active {
			r.active[k.KID] = k
		} else {
			delete(r.active, k.KID)
		}
	}
	r.version = current
	return keys
}

// check fails unless the replica holds exactly the store's active keys,
// with their schedules.
func (r *keyReplica) check(t *testing.T, s storage.Store, what string) {
	t.Helper()
	keys, err := s.ActiveKeys(t.Context())
	if err != nil {
		t.Fatalf("ActiveKeys: %v", err)
	}
	if len(keys) != len(r.active) {
		t.Errorf("%s: the replica holds %d active keys, the store %d", what, len(r.active), len(keys))
	}
	for _, want := range keys {
		got, ok := r.active[want.KID]
		if !ok {
			t.Errorf("%s: the replica lacks active key %s", what, want.KID)
			continue
		}
		if !sameSchedule(got, want) {
			t.Errorf("%s: key %s: replica %+v, store %+v", what, want.KID, got, want)
		}
	}
}

// sameSchedule reports whether a and b agree on everything a JWK Set is
// made of: kid, registration, public half, creation and schedule.
func sameSchedule(a, b storage.Key) bool {
	return a.KID == b.KID && a.RegistrationID == b.RegistrationID && string(a.PublicJWK) == string(b.PublicJWK) &&
		a.Active == b.Active && a.Seq == b.Seq && a.CreatedAt.Equal(b.CreatedAt) &&
		a.ActivatesAt.Equal(b.ActivatesAt) && a.SupersededAt.Equal(b.SupersededAt) &&
		a.RetireAt.Equal(b.RetireAt) && a.RetiredAt.Equal(b.RetiredAt)
}

func kidSet(keys []storage.Key) []string {
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.KID
	}
	slices.Sort(kids)
	return kids
}

// testKeysChangedSince runs each kind of write and checks that
// KeysChangedSince returns exactly the keys it inserted or whose active
// flag or schedule it changed, and that a replica following the store by
// it always holds what ActiveKeys returns.
func testKeysChangedSince(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	// A key written before the replica's full load is in that load, and
	// nothing after it.
	_, bystander := mustCreate(t, s)
	r := newKeyReplica(t, s)

	var reg storage.Registration
	var k1, k2, k3, k4 storage.Key
	for _, step := range []struct {
		name string
		// do makes the change and returns the kids it should report.
		do      func(t *testing.T) []string
		changes bool
	}{
		{"CreateRegistration", func(t *testing.T) []string {
			reg, k1 = mustCreate(t, s)
			return []string{k1.KID}
		}, true},
		{"RotateKey", func(t *testing.T) []string {
			k2 = mustRotate(t, s, reg.ID)
			return []string{k1.KID, k2.KID}
		}, true},
		{"Rotate ahead, retiring the previous key later", func(t *testing.T) []string {
			rot, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			k3 = rot.New
			return []string{k2.KID, k3.KID}
		}, true},
		{"Rotate replacing the pending key", func(t *testing.T) []string {
			rot, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if rot.Replaced.KID != k3.KID {
				t.Fatalf("Rotate replaced %q, want %q", rot.Replaced.KID, k3.KID)
			}
			k4 = rot.New
			return []string{k2.KID, k3.KID, k4.KID}
		}, true},
		{"UpdateRegistration", func(t *testing.T) []string {
			_, err := s.UpdateRegistration(ctx, reg.ID, func(r storage.Registration) (storage.Registration, error) {
				r.AuthEndpoint += "/v2"
				return r, nil
			})
			if err != nil {
				t.Fatalf("UpdateRegistration: %v", err)
			}
			return nil
		}, true},
		{"UpdatePrivateKey", func(t *testing.T) []string {
			err := s.UpdatePrivateKey(ctx, k4.KID, func(b []byte) ([]byte, bool, error) { return append(b, 1), true, nil })
			if err != nil {
				t.Fatalf("UpdatePrivateKey: %v", err)
			}
			return nil
		}, false},
		{"RetireKey of the current key, refused", func(t *testing.T) []string {
			if _, err := s.RetireKey(ctx, k2.KID); err == nil {
				t.Fatal("RetireKey of the current key succeeded")
			}
			return nil
		}, false},
		{"ApplyTransitions: activation and retirement", func(t *testing.T) []string {
			clock.Set(t0.Add(3 * time.Hour))
			mustApply(t, s, 2)
			return []string{k2.KID}
		}, true},
		{"RetireKey", func(t *testing.T) []string {
			if _, err := s.RetireKey(ctx, k1.KID); err != nil {
				t.Fatalf("RetireKey: %v", err)
			}
			return []string{k1.KID}
		}, true},
		{"RetireKey of a retired key", func(t *testing.T) []string {
			if _, err := s.RetireKey(ctx, k1.KID); err != nil {
				t.Fatalf("RetireKey: %v", err)
			}
			return nil
		}, false},
		{"DeleteRegistration", func(t *testing.T) []string {
			if _, err := s.DeleteRegistration(ctx, reg.ID); err != nil {
				t.Fatalf("DeleteRegistration: %v", err)
			}
			return []string{k4.KID}
		}, true},
		{"DeleteRegistration again", func(t *testing.T) []string {
			if _, err := s.DeleteRegistration(ctx, reg.ID); err != nil {
				t.Fatalf("DeleteRegistration: %v", err)
			}
			return nil
		}, false},
	} {
		before := r.version
		want := step.do(t)
		slices.Sort(want)
		got := r.catchUp(t, s)
		if kids := kidSet(got); !slices.Equal(kids, want) {
			t.Errorf("%s: KeysChangedSince returned %q, want %q", step.name, kids, want)
		}
		if step.changes != (r.version > before) {
			t.Errorf("%s: the counter went from %d to %d", step.name, before, r.version)
		}
		if v := mustVersion(t, s); v != r.version {
			t.Errorf("%s: KeysChangedSince returned counter %d, Version %d", step.name, r.version, v)
		}
		for _, k := range got {
			if stored := mustGetKey(t, s, k.KID); !sameSchedule(k, stored) {
				t.Errorf("%s: KeysChangedSince returned %+v, GetKey %+v", step.name, k, stored)
			}
		}
		r.check(t, s, step.name)
	}

	// Every key this store wrote carries the version that last changed it.
	_, all, err := s.KeysChangedSince(ctx, 0)
	if err != nil {
		t.Fatalf("KeysChangedSince(0): %v", err)
	}
	if want := []string{bystander.KID, k1.KID, k2.KID, k3.KID, k4.KID}; !slices.Equal(kidSet(all), slices.Sorted(slices.Values(want))) {
		t.Errorf("KeysChangedSince(0) = %q, want every key: %q", kidSet(all), want)
	}
	// A version above the counter: the store says so.
	current, keys, err := s.KeysChangedSince(ctx, r.version+10)
	if err != nil || current != r.version || len(keys) != 0 {
		t.Errorf("KeysChangedSince past the counter = %d, %d keys, %v; want %d, none", current, len(keys), err, r.version)
	}
}

// testConcurrentKeysChangedSince follows the store with KeysChangedSince
// while several writers rotate, retire and delete at once: once they stop,
// one more call leaves the follower with exactly the store's active keys,
// whatever the interleaving of its reads with their commits.
func testConcurrentKeysChangedSince(t *testing.T, s storage.Store, _ *Clock) {
	ctx := t.Context()
	const writers, rounds = 4, 8
	regs := make([]storage.Registration, writers)
	for i := range regs {
		regs[i], _ = mustCreate(t, s)
	}
	r := newKeyReplica(t, s)

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, writers*rounds)
	for _, reg := range regs {
		wg.Go(func() {
			for i := range rounds {
				rot, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{RetirePreviousAfter: -1})
				if err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					if _, err := s.RetireKey(ctx, rot.Previous.KID); err != nil {
						errs <- err
						return
					}
				}
			}
			if _, err := s.DeleteRegistration(ctx, reg.ID); err != nil {
				errs <- err
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	last := r.version
	for following := true; following; {
		select {
		case <-done:
			following = false
		default:
		}
		r.catchUp(t, s)
		if r.version < last {
			t.Fatalf("KeysChangedSince's counter went back from %d to %d", last, r.version)
		}
		last = r.version
	}
	close(errs)
	for err := range errs {
		t.Errorf("writer: %v", err)
	}
	r.catchUp(t, s)
	r.check(t, s, "after the writers")
	if len(r.active) != 0 {
		t.Errorf("every registration is deleted, but the follower holds %q", slices.Sorted(maps.Keys(r.active)))
	}
}
