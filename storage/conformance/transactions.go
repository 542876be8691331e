package conformance

import (
	"slices"
	"strconv"
	"sync"
	"testing"

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
