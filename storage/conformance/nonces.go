package conformance

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/storage"
)

// newIssuer returns an issuer no other test uses.
func newIssuer() string { return "https://platform.example/" + uuid.NewString() }

// useNonce calls UseNonce and fails t unless it returns want (nil or a
// sentinel).
func useNonce(t *testing.T, s storage.Store, what, issuer, nonce string, expiresAt time.Time, want error) {
	t.Helper()
	err := s.UseNonce(t.Context(), issuer, nonce, expiresAt)
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: UseNonce: %v, want success", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: UseNonce: %v, want %v", what, err, want)
	}
}

// testUseNonce records pairs once: a second use of a pair is ErrNonceUsed
// until its expiry, another issuer's or another nonce is a pair of its
// own, and at its expiry a pair may be used again, for a new term. None of
// it counts as a change.
func testUseNonce(t *testing.T, s storage.Store, clock *Clock) {
	t0 := clock.Now()
	issuer, other := newIssuer(), newIssuer()
	before := mustVersion(t, s)
	exp := t0.Add(10 * time.Minute)

	useNonce(t, s, "first use", issuer, "n-1", exp, nil)
	useNonce(t, s, "second use", issuer, "n-1", exp, storage.ErrNonceUsed)
	useNonce(t, s, "second use with a later expiry", issuer, "n-1", exp.Add(time.Hour), storage.ErrNonceUsed)
	useNonce(t, s, "the nonce from another issuer", other, "n-1", exp, nil)
	useNonce(t, s, "another nonce", issuer, "n-2", exp, nil)
	useNonce(t, s, "a nonce that differs in case", issuer, "N-1", exp, nil)

	clock.Set(exp.Add(-time.Microsecond))
	useNonce(t, s, "a use just before the expiry", issuer, "n-1", exp.Add(time.Hour), storage.ErrNonceUsed)
	clock.Set(exp)
	next := exp.Add(10 * time.Minute)
	useNonce(t, s, "a use at the expiry", issuer, "n-1", next, nil)
	useNonce(t, s, "a use during the new term", issuer, "n-1", next, storage.ErrNonceUsed)
	clock.Set(next.Add(-time.Microsecond))
	useNonce(t, s, "a use just before the new expiry", issuer, "n-1", next, storage.ErrNonceUsed)
	clock.Set(next.Add(time.Hour))
	useNonce(t, s, "a use after the new expiry", issuer, "n-1", next.Add(2*time.Hour), nil)

	// An expiry in another time zone is the same instant.
	clock.Set(t0)
	local := t0.Add(time.Hour).In(time.FixedZone("UTC+5", 5*3600))
	useNonce(t, s, "an expiry with a zone", other, "n-zone", local, nil)
	clock.Set(t0.Add(time.Hour - time.Microsecond))
	useNonce(t, s, "a use before the zoned expiry", other, "n-zone", local, storage.ErrNonceUsed)
	clock.Set(t0.Add(time.Hour))
	useNonce(t, s, "a use at the zoned expiry", other, "n-zone", local.Add(time.Hour), nil)

	if v := mustVersion(t, s); v != before {
		t.Errorf("version %d → %d after UseNonce, want no change", before, v)
	}
}

// testUseNonceArguments checks UseNonce's limits: each of issuer and nonce
// holds 1 to storage.MaxNonceLen bytes of UTF-8 without NUL, counted in
// bytes, whatever the characters, and the expiry is set. A refused call
// records nothing and is not ErrNonceUsed.
func testUseNonceArguments(t *testing.T, s storage.Store, clock *Clock) {
	issuer := newIssuer()
	exp := clock.Now().Add(time.Minute)
	longest := strings.Repeat("€", storage.MaxNonceLen/3) // 3 bytes each
	if len(longest) != storage.MaxNonceLen {
		t.Fatalf("test nonce of %d bytes, want %d", len(longest), storage.MaxNonceLen)
	}
	useNonce(t, s, "a nonce of MaxNonceLen bytes", issuer, longest, exp, nil)
	useNonce(t, s, "a nonce of MaxNonceLen bytes again", issuer, longest, exp, storage.ErrNonceUsed)
	longIssuer := "https://platform.example/" + strings.Repeat("p", storage.MaxNonceLen-len("https://platform.example/"))
	useNonce(t, s, "an issuer of MaxNonceLen bytes", longIssuer, "n", exp, nil)

	for _, tc := range []struct {
		name, issuer, nonce string
		expiresAt           time.Time
	}{
		{"empty issuer", "", "n", exp},
		{"empty nonce", issuer, "", exp},
		{"nonce too long", issuer, longest + "x", exp},
		{"issuer too long", longIssuer + "p", "n", exp},
		{"nonce not UTF-8", issuer, "n\xff", exp},
		{"issuer not UTF-8", issuer + "\xc3", "n", exp},
		{"nonce with NUL", issuer, "n\x00m", exp},
		{"no expiry", issuer, "n-unset", time.Time{}},
	} {
		err := s.UseNonce(t.Context(), tc.issuer, tc.nonce, tc.expiresAt)
		if err == nil || errors.Is(err, storage.ErrNonceUsed) {
			t.Errorf("UseNonce with %s: %v, want an error other than ErrNonceUsed", tc.name, err)
		}
	}
	// The refused calls recorded nothing.
	useNonce(t, s, "a nonce whose earlier use was refused", issuer, "n-unset", exp, nil)
	if n, err := s.PruneNonces(t.Context(), exp); err != nil || n != 3 {
		t.Errorf("PruneNonces = %d, %v; want the 3 pairs recorded", n, err)
	}
}

// testPruneNonces records pairs with several expiries and prunes: only
// pairs whose expiry is at or before the given time are deleted, a pair
// that has not expired stays recorded, and none of it counts as a change.
func testPruneNonces(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	issuer := newIssuer()
	if n, err := s.PruneNonces(ctx, t0); err != nil || n != 0 {
		t.Fatalf("PruneNonces of an empty table = %d, %v", n, err)
	}
	for i := range 3 {
		useNonce(t, s, "record", issuer, fmt.Sprintf("n-%d", i+1), t0.Add(time.Duration(i+1)*time.Hour), nil)
	}
	before := mustVersion(t, s)
	clock.Set(t0.Add(2 * time.Hour))
	if n, err := s.PruneNonces(ctx, clock.Now()); err != nil || n != 2 {
		t.Fatalf("PruneNonces at the second expiry = %d, %v; want the first 2 pairs", n, err)
	}
	useNonce(t, s, "the pair that has not expired, after pruning", issuer, "n-3", t0.Add(5*time.Hour), storage.ErrNonceUsed)
	if n, err := s.PruneNonces(ctx, clock.Now()); err != nil || n != 0 {
		t.Errorf("PruneNonces again = %d, %v; want nothing left to prune", n, err)
	}
	if n, err := s.PruneNonces(ctx, t0.Add(3*time.Hour-time.Microsecond)); err != nil || n != 0 {
		t.Errorf("PruneNonces just before the third expiry = %d, %v; want 0", n, err)
	}
	// A pruned pair is recorded afresh.
	useNonce(t, s, "a pruned pair", issuer, "n-1", t0.Add(4*time.Hour), nil)
	if v := mustVersion(t, s); v != before {
		t.Errorf("version %d → %d after PruneNonces, want no change", before, v)
	}
	if n, err := s.PruneNonces(ctx, t0.Add(4*time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneNonces at the last expiry = %d, %v; want the 2 pairs left", n, err)
	}
	useNonce(t, s, "the third pair, pruned", issuer, "n-3", t0.Add(5*time.Hour), nil)
}

// testConcurrentUseNonce uses one pair from many goroutines at once, then,
// once it has expired, again: each time exactly one call succeeds and the
// others are ErrNonceUsed.
func testConcurrentUseNonce(t *testing.T, s storage.Store, clock *Clock) {
	issuer := newIssuer()
	exp := clock.Now().Add(time.Minute)
	raceNonce(t, "a new pair", issuer, "n", exp, []storage.Store{s}, 20)
	clock.Set(exp)
	raceNonce(t, "an expired pair", issuer, "n", exp.Add(time.Minute), []storage.Store{s}, 20)
}

// testConcurrentUseNonceReplicas has several stores on one database use
// the same pairs at once, as replicas receiving one replayed launch do:
// for each pair, new and then expired, exactly one call succeeds.
func testConcurrentUseNonceReplicas(t *testing.T, open Opener) {
	const replicas, perReplica, rounds = 4, 4, 5
	clock := NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	stores := make([]storage.Store, replicas)
	for i := range stores {
		stores[i] = open(t, clock.Now)
	}
	issuer := newIssuer()
	for r := range rounds {
		nonce := fmt.Sprintf("n-%d", r)
		exp := clock.Now().Add(time.Minute)
		raceNonce(t, fmt.Sprintf("round %d, a new pair", r), issuer, nonce, exp, stores, perReplica)
		clock.Set(exp)
		raceNonce(t, fmt.Sprintf("round %d, the expired pair", r), issuer, nonce, exp.Add(time.Minute), stores, perReplica)
	}
}

// raceNonce has callers goroutines per store use one pair at once, and
// checks that exactly one succeeds and every other call is ErrNonceUsed.
func raceNonce(t *testing.T, what, issuer, nonce string, expiresAt time.Time, stores []storage.Store, callers int) {
	t.Helper()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		won   int
	)
	for _, s := range stores {
		for range callers {
			wg.Go(func() {
				<-start
				err := s.UseNonce(t.Context(), issuer, nonce, expiresAt)
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
				CheckErr(t, what+": UseNonce", err, storage.ErrNonceUsed)
			})
		}
	}
	close(start)
	wg.Wait()
	if won != 1 {
		t.Errorf("%s: %d of %d concurrent UseNonce calls succeeded, want exactly 1", what, won, len(stores)*callers)
	}
}
