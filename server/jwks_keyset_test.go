package server

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestKeySetOrder drives a keySet with random insertions (in and out of
// creation order, with ties), replacements, removals and due retirements,
// enough for order to be compacted many times, and checks after each
// change that order, the registrations' lists and the retirement queue
// agree with the published keys sorted afresh.
func TestKeySetOrder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	s := &keySet{keys: map[string]*publishedKey{}, regs: map[string]*registrationKeys{}}
	var seq int64
	newKey := func(kid string) *publishedKey {
		seq++
		k := &publishedKey{
			kid:          kid,
			registration: "reg-" + strconv.Itoa(rng.IntN(8)),
			// Mostly increasing, sometimes earlier, often tied.
			createdAt: now.Add(time.Duration(rng.IntN(5)-1) * time.Minute),
			seq:       seq,
			member:    []byte(`{"kid":"` + kid + `"}`),
			queued:    -1,
		}
		if rng.IntN(3) == 0 {
			k.retireAt = now.Add(time.Duration(1+rng.IntN(120)) * time.Minute)
		}
		return k
	}
	compactions := 0
	for step := range 3000 {
		touched := make(touchedRegistrations)
		before := len(s.order)
		switch r := rng.IntN(10); {
		case r < 5 || len(s.keys) == 0:
			s.put(newKey("k"+strconv.Itoa(step)), touched)
		case r < 6:
			// A new version of a published key (its schedule changed).
			kid := slices.Collect(maps.Keys(s.keys))[rng.IntN(len(s.keys))]
			s.put(newKey(kid), touched)
		case r < 9:
			kid := slices.Collect(maps.Keys(s.keys))[rng.IntN(len(s.keys))]
			s.remove(kid, touched)
		default:
			now = now.Add(time.Duration(rng.IntN(30)) * time.Minute)
			s.retireDue(now, touched)
		}
		s.rebuild(touched)
		if len(s.order) < before {
			compactions++
		}

		want := slices.SortedFunc(maps.Values(s.keys), newestFirst)
		var got []*publishedKey
		for _, k := range slices.Backward(s.order) {
			if !k.dead {
				got = append(got, k)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: order gives %d keys out of order or wrong, want %d", step, len(got), len(want))
		}
		dead := 0
		for _, k := range s.order {
			if k.dead {
				dead++
			}
		}
		if dead != s.dead {
			t.Fatalf("step %d: %d dead keys in order, counted %d", step, dead, s.dead)
		}
		byReg := map[string][]*publishedKey{}
		for _, k := range want {
			byReg[k.registration] = append(byReg[k.registration], k)
		}
		if len(byReg) != len(s.regs) {
			t.Fatalf("step %d: %d registrations, want %d", step, len(s.regs), len(byReg))
		}
		for id, keys := range byReg {
			if r := s.regs[id]; r == nil || !slices.Equal(r.keys, keys) {
				t.Fatalf("step %d: registration %s's keys are wrong", step, id)
			}
		}
		queued := 0
		for i, k := range s.retirements {
			if k.queued != i || s.keys[k.kid] != k || !now.Before(k.retireAt) {
				t.Fatalf("step %d: retirement queue entry %d is wrong", step, i)
			}
			queued++
		}
		for _, k := range s.keys {
			if !k.retireAt.IsZero() {
				queued--
			}
		}
		if queued != 0 {
			t.Fatalf("step %d: the retirement queue holds %d keys more than have a RetireAt", step, queued)
		}
	}
	if compactions < 5 {
		t.Errorf("order was compacted %d times; the test should exercise it more", compactions)
	}
}
