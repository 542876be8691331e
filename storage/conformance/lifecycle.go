package conformance

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// Clock is a settable clock for lifecycle tests, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start.UTC().Truncate(time.Microsecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d).Truncate(time.Microsecond)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC().Truncate(time.Microsecond)
}

// RunLifecycleTests runs the key lifecycle suite. newStore must return a
// fresh, empty store whose clock is now; it is called once per subtest, and
// the suite closes the store when the subtest ends.
func RunLifecycleTests(t *testing.T, newStore func(t *testing.T, now func() time.Time) storage.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Store, clock *Clock)
	}{
		{"PublishAheadThenRetire", testPublishAheadThenRetire},
		{"ImmediateRevoke", testImmediateRevoke},
		{"RotateWhilePending", testRotateWhilePending},
		{"RotateAfterDueActivation", testRotateAfterDueActivation},
		{"RetireKeyPendingAndSuperseded", testRetireKeyPendingAndSuperseded},
		{"DeleteRegistration", testDeleteRegistration},
		{"UpdateRegistration", testUpdateRegistration},
		{"ListKeysByState", testListKeysByState},
		{"MaxPublished", testMaxPublished},
		{"ConcurrentMaxPublished", testConcurrentMaxPublished},
		{"KeysChangedSince", testKeysChangedSince},
		{"ConcurrentKeysChangedSince", testConcurrentKeysChangedSince},
		{"UseNonce", testUseNonce},
		{"UseNonceArguments", testUseNonceArguments},
		{"PruneNonces", testPruneNonces},
		{"ConcurrentUseNonce", testConcurrentUseNonce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			s := newStore(t, clock.Now)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s, clock)
		})
	}
}

func mustApply(t *testing.T, s storage.Store, want int) {
	t.Helper()
	n, err := s.ApplyTransitions(t.Context())
	if err != nil {
		t.Fatalf("ApplyTransitions: %v", err)
	}
	if n != want {
		t.Fatalf("ApplyTransitions applied %d transitions, want %d", n, want)
	}
}

func mustVersion(t *testing.T, s storage.Store) int64 {
	t.Helper()
	v, err := s.Version(t.Context())
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	return v
}

func wantState(t *testing.T, what string, k storage.Key, now time.Time, want storage.KeyState) {
	t.Helper()
	if got := k.State(now); got != want {
		t.Errorf("%s at %v: state %d, want %d", what, now, got, want)
	}
}

func testPublishAheadThenRetire(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	reg, k1 := mustCreate(t, s)
	r, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: 24 * time.Hour, RetirePreviousAfter: 72 * time.Hour})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	k2 := r.New
	activate, retire := t0.Add(24*time.Hour), t0.Add(96*time.Hour)
	if r.Registration.KID != k1.KID || r.Registration.PendingKID != k2.KID || !r.Registration.PendingActivatesAt.Equal(activate) {
		t.Fatalf("registration after Rotate: %+v", r.Registration)
	}
	if !k2.ActivatesAt.Equal(activate) || !r.Previous.SupersededAt.Equal(activate) || !r.Previous.RetireAt.Equal(retire) || r.Replaced.KID != "" {
		t.Fatalf("schedule: new activates %v, previous superseded %v retire %v, replaced %q", k2.ActivatesAt, r.Previous.SupersededAt, r.Previous.RetireAt, r.Replaced.KID)
	}
	got := mustGetRegistration(t, s, reg.ID)
	if got.PendingKID != k2.KID || !got.PendingActivatesAt.Equal(activate) {
		t.Fatalf("GetRegistration: pending %q at %v", got.PendingKID, got.PendingActivatesAt)
	}
	// Published at once: both keys are active.
	if kids := mustActiveKIDs(t, s); len(kids) != 2 {
		t.Fatalf("ActiveKeys = %q, want both keys", kids)
	}

	for _, step := range []struct {
		at       time.Time
		applied  int
		signing  string
		old, new storage.KeyState
	}{
		{t0, 0, k1.KID, storage.KeyCurrent, storage.KeyPending},
		{activate.Add(-time.Microsecond), 0, k1.KID, storage.KeyCurrent, storage.KeyPending},
		{activate, 1, k2.KID, storage.KeyPrevious, storage.KeyCurrent},
		{retire.Add(-time.Microsecond), 0, k2.KID, storage.KeyPrevious, storage.KeyCurrent},
		{retire, 1, k2.KID, storage.KeyRetired, storage.KeyCurrent},
	} {
		clock.Set(step.at)
		// Before the transitions are recorded, the schedule already says.
		if got := mustGetRegistration(t, s, reg.ID).SigningKID(step.at); got != step.signing {
			t.Errorf("at %v, before recording: signing kid %q, want %q", step.at, got, step.signing)
		}
		wantState(t, "previous key", mustGetKey(t, s, k1.KID), step.at, step.old)
		wantState(t, "new key", mustGetKey(t, s, k2.KID), step.at, step.new)
		before := mustVersion(t, s)
		mustApply(t, s, step.applied)
		if after := mustVersion(t, s); after != before+int64(step.applied) {
			t.Errorf("at %v: version %d → %d, want +%d", step.at, before, after, step.applied)
		}
		got := mustGetRegistration(t, s, reg.ID)
		if got.SigningKID(step.at) != step.signing {
			t.Errorf("at %v, after recording: signing kid %q, want %q", step.at, got.SigningKID(step.at), step.signing)
		}
		wantState(t, "previous key, recorded", mustGetKey(t, s, k1.KID), step.at, step.old)
		wantState(t, "new key, recorded", mustGetKey(t, s, k2.KID), step.at, step.new)
	}
	got = mustGetRegistration(t, s, reg.ID)
	if got.KID != k2.KID || got.PendingKID != "" {
		t.Errorf("recorded registration: kid %q pending %q, want %q and none", got.KID, got.PendingKID, k2.KID)
	}
	old := mustGetKey(t, s, k1.KID)
	if old.Active || !old.RetiredAt.Equal(retire) {
		t.Errorf("previous key: active %v, retired at %v; want inactive, retired at %v", old.Active, old.RetiredAt, retire)
	}
	mustApply(t, s, 0)
}

func testImmediateRevoke(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	reg, k1 := mustCreate(t, s)
	r, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	now := clock.Now()
	if r.Registration.KID != r.New.KID || r.Registration.PendingKID != "" {
		t.Errorf("registration: kid %q pending %q, want %q", r.Registration.KID, r.Registration.PendingKID, r.New.KID)
	}
	old := mustGetKey(t, s, k1.KID)
	if old.Active || !old.RetiredAt.Equal(now) {
		t.Errorf("revoked key: active %v, retired at %v", old.Active, old.RetiredAt)
	}
	wantState(t, "revoked key", old, now, storage.KeyRetired)
	wantState(t, "new key", r.New, now, storage.KeyCurrent)
	if kids := mustActiveKIDs(t, s); len(kids) != 1 || kids[0] != r.New.KID {
		t.Errorf("ActiveKeys = %q, want only the new key", kids)
	}
	mustApply(t, s, 0)
}

func testRotateWhilePending(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	reg, k1 := mustCreate(t, s)
	opts := storage.RotateOptions{PublishAhead: 24 * time.Hour, RetirePreviousAfter: 48 * time.Hour}
	first, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), opts)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	clock.Set(t0.Add(time.Hour))
	second, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), opts)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if second.Replaced.KID != first.New.KID || second.Previous.KID != k1.KID {
		t.Fatalf("second rotation replaced %q and superseded %q, want %q and %q", second.Replaced.KID, second.Previous.KID, first.New.KID, k1.KID)
	}
	activate := t0.Add(25 * time.Hour)
	if !second.Previous.SupersededAt.Equal(activate) || !second.Previous.RetireAt.Equal(activate.Add(48*time.Hour)) {
		t.Errorf("current key rescheduled to supersede at %v, retire at %v", second.Previous.SupersededAt, second.Previous.RetireAt)
	}
	replaced := mustGetKey(t, s, first.New.KID)
	if replaced.Active || replaced.RetiredAt.IsZero() {
		t.Errorf("replaced pending key: active %v, retired at %v", replaced.Active, replaced.RetiredAt)
	}
	got := mustGetRegistration(t, s, reg.ID)
	if got.KID != k1.KID || got.PendingKID != second.New.KID || !got.PendingActivatesAt.Equal(activate) {
		t.Errorf("registration: kid %q, pending %q at %v", got.KID, got.PendingKID, got.PendingActivatesAt)
	}
	if kids := mustActiveKIDs(t, s); len(kids) != 2 {
		t.Errorf("ActiveKeys = %q, want the current and the new pending key only", kids)
	}
	clock.Set(t0.Add(24 * time.Hour)) // the first rotation's instant: nothing happens
	mustApply(t, s, 0)
	clock.Set(activate)
	mustApply(t, s, 1)
	if got := mustGetRegistration(t, s, reg.ID); got.KID != second.New.KID {
		t.Errorf("after activation: kid %q, want %q", got.KID, second.New.KID)
	}
}

func testRotateAfterDueActivation(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	reg, k1 := mustCreate(t, s)
	first, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: 10 * time.Hour})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	// The worker never ran: the pending key is current by schedule, so a
	// new rotation replaces it, not the key before.
	clock.Set(t0.Add(2 * time.Hour))
	second, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{RetirePreviousAfter: 24 * time.Hour})
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if second.Previous.KID != first.New.KID || second.Replaced.KID != "" {
		t.Fatalf("second rotation superseded %q, replaced %q; want %q and none", second.Previous.KID, second.Replaced.KID, first.New.KID)
	}
	if got := mustGetKey(t, s, k1.KID); !got.RetireAt.Equal(t0.Add(11*time.Hour)) || !got.Active {
		t.Errorf("first key keeps its schedule: retire at %v, active %v", got.RetireAt, got.Active)
	}
	if got := mustGetRegistration(t, s, reg.ID); got.KID != second.New.KID || got.PendingKID != "" {
		t.Errorf("registration: kid %q, pending %q", got.KID, got.PendingKID)
	}
}

func testRetireKeyPendingAndSuperseded(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	t0 := clock.Now()
	reg, k1 := mustCreate(t, s)
	r, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: -1})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	_, err = s.RetireKey(ctx, r.New.KID)
	wantErr(t, "RetireKey of the pending key", err, storage.ErrKeyInUse)
	_, err = s.RetireKey(ctx, k1.KID)
	wantErr(t, "RetireKey of the key signing until activation", err, storage.ErrKeyInUse)
	// Past the activation, unrecorded: the old key is PREVIOUS and may go.
	clock.Set(t0.Add(time.Hour))
	if _, err := s.RetireKey(ctx, k1.KID); err != nil {
		t.Fatalf("RetireKey after activation: %v", err)
	}
	if got := mustGetRegistration(t, s, reg.ID); got.KID != r.New.KID || got.PendingKID != "" {
		t.Errorf("registration: kid %q, pending %q; the activation is recorded with the retirement", got.KID, got.PendingKID)
	}
	mustApply(t, s, 0)
}

func testDeleteRegistration(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	reg, k1 := mustCreate(t, s)
	r, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	other, otherKey := mustCreate(t, s)
	before := mustVersion(t, s)
	keys, err := s.DeleteRegistration(ctx, reg.ID)
	if err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	if len(keys) != 2 || keys[0].KID != r.New.KID || keys[1].KID != k1.KID {
		t.Fatalf("DeleteRegistration returned %d keys", len(keys))
	}
	for _, k := range keys {
		if k.Active || k.State(clock.Now()) != storage.KeyRetired || !k.RetiredAt.Equal(clock.Now()) {
			t.Errorf("key %s after delete: active %v, retired at %v", k.KID, k.Active, k.RetiredAt)
		}
	}
	if after := mustVersion(t, s); after != before+1 {
		t.Errorf("version %d → %d, want one change", before, after)
	}
	_, err = s.GetRegistration(ctx, reg.ID)
	wantErr(t, "GetRegistration of a deleted registration", err, storage.ErrNotFound)
	_, err = s.GetRegistrationByIssuerClient(ctx, reg.Issuer, reg.ClientID)
	wantErr(t, "GetRegistrationByIssuerClient of a deleted registration", err, storage.ErrNotFound)
	_, err = s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{})
	wantErr(t, "Rotate of a deleted registration", err, storage.ErrNotFound)
	if kids := mustActiveKIDs(t, s); len(kids) != 1 || kids[0] != otherKey.KID {
		t.Errorf("ActiveKeys = %q, want only the other registration's", kids)
	}
	// Idempotent, and changes nothing the second time.
	if again, err := s.DeleteRegistration(ctx, reg.ID); err != nil || len(again) != 2 {
		t.Errorf("second DeleteRegistration: %d keys, %v", len(again), err)
	}
	if v := mustVersion(t, s); v != before+1 {
		t.Errorf("second delete changed the version")
	}
	_, err = s.DeleteRegistration(ctx, newRegistration().ID)
	wantErr(t, "DeleteRegistration of an unknown id", err, storage.ErrNotFound)
	// Its (issuer, client_id) is free again; the live one's is not.
	again := newRegistration()
	again.Issuer, again.ClientID = reg.Issuer, reg.ClientID
	if _, _, err := s.CreateRegistration(ctx, again, newKey(again.ID)); err != nil {
		t.Errorf("CreateRegistration reusing a deleted registration's pair: %v", err)
	}
	dup := newRegistration()
	dup.Issuer, dup.ClientID = other.Issuer, other.ClientID
	_, _, err = s.CreateRegistration(ctx, dup, newKey(dup.ID))
	wantErr(t, "CreateRegistration duplicating a live pair", err, storage.ErrAlreadyExists)
	// Nothing left to schedule: the deleted registration's keys are retired.
	clock.Set(clock.Now().Add(3 * time.Hour))
	mustApply(t, s, 0)
}

func testUpdateRegistration(t *testing.T, s storage.Store, _ *Clock) {
	ctx := t.Context()
	reg, _ := mustCreate(t, s)
	before := mustVersion(t, s)
	got, err := s.UpdateRegistration(ctx, reg.ID, func(r storage.Registration) (storage.Registration, error) {
		r.JWKSURI = "https://platform.example/new-jwks"
		r.Issuer = "https://ignored.example" // not an endpoint: ignored
		return r, nil
	})
	if err != nil {
		t.Fatalf("UpdateRegistration: %v", err)
	}
	want := reg
	want.JWKSURI, want.UpdatedAt = "https://platform.example/new-jwks", got.UpdatedAt
	checkRegistration(t, "returned registration", got, want)
	checkRegistration(t, "GetRegistration", mustGetRegistration(t, s, reg.ID), got)
	if v := mustVersion(t, s); v != before+1 {
		t.Errorf("version %d → %d, want one change", before, v)
	}
	boom := errors.New("boom")
	_, err = s.UpdateRegistration(ctx, reg.ID, func(storage.Registration) (storage.Registration, error) { return storage.Registration{}, boom })
	wantErr(t, "UpdateRegistration with a failing update", err, boom)
	_, err = s.UpdateRegistration(ctx, newRegistration().ID, func(r storage.Registration) (storage.Registration, error) { return r, nil })
	wantErr(t, "UpdateRegistration of an unknown id", err, storage.ErrNotFound)
}

func testListKeysByState(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	now := clock.Now()
	a, a1 := mustCreate(t, s)
	r, err := s.Rotate(ctx, a.ID, newKey(a.ID), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, b1 := mustCreate(t, s)
	rb, err := s.Rotate(ctx, b.ID, newKey(b.ID), storage.RotateOptions{RetirePreviousAfter: 0})
	if err != nil {
		t.Fatal(err)
	}
	list := func(q storage.KeyQuery) []string {
		t.Helper()
		keys, err := s.ListKeys(ctx, q)
		if err != nil {
			t.Fatalf("ListKeys(%+v): %v", q, err)
		}
		var kids []string
		for _, k := range keys {
			kids = append(kids, k.KID)
			if len(k.PrivateJWK) != 0 {
				t.Errorf("ListKeys loaded a private key")
			}
		}
		return kids
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s = %q, want %q", what, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s = %q, want %q", what, got, want)
				return
			}
		}
	}
	check("all keys", list(storage.KeyQuery{Now: now, Limit: 10}), a1.KID, r.New.KID, b1.KID, rb.New.KID)
	check("page after the first two", list(storage.KeyQuery{Now: now, Limit: 10, AfterSeq: r.New.Seq}), b1.KID, rb.New.KID)
	check("first page of one", list(storage.KeyQuery{Now: now, Limit: 1}), a1.KID)
	check("keys of a", list(storage.KeyQuery{RegistrationID: a.ID, Now: now, Limit: 10}), a1.KID, r.New.KID)
	check("current", list(storage.KeyQuery{State: storage.KeyCurrent, Now: now, Limit: 10}), a1.KID, rb.New.KID)
	check("pending", list(storage.KeyQuery{State: storage.KeyPending, Now: now, Limit: 10}), r.New.KID)
	check("retired", list(storage.KeyQuery{State: storage.KeyRetired, Now: now, Limit: 10}), b1.KID)
	check("previous", list(storage.KeyQuery{State: storage.KeyPrevious, Now: now, Limit: 10}))
	// By schedule, before any recording.
	later := now.Add(90 * time.Minute)
	check("current later", list(storage.KeyQuery{State: storage.KeyCurrent, Now: later, Limit: 10}), r.New.KID, rb.New.KID)
	check("previous later", list(storage.KeyQuery{State: storage.KeyPrevious, Now: later, Limit: 10}), a1.KID)
	much := now.Add(3 * time.Hour)
	check("retired much later", list(storage.KeyQuery{State: storage.KeyRetired, Now: much, Limit: 10}), a1.KID, b1.KID)
}

// testMaxPublished rotates a registration up to its cap of published keys:
// the rotation past it changes nothing, and rotations that leave the count
// where it is, by replacing a pending key or retiring the previous one at
// once, still pass.
func testMaxPublished(t *testing.T, s storage.Store, clock *Clock) {
	ctx := t.Context()
	reg, _ := mustCreate(t, s)
	keep := storage.RotateOptions{RetirePreviousAfter: -1, MaxPublished: 3}
	for i := 0; i < 2; i++ {
		if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), keep); err != nil {
			t.Fatalf("rotation %d within the cap: %v", i+1, err)
		}
	}
	before, version := mustGetRegistration(t, s, reg.ID), mustVersion(t, s)
	published := mustActiveKIDs(t, s)
	extra := newKey(reg.ID)
	if _, err := s.Rotate(ctx, reg.ID, extra, keep); !errors.Is(err, storage.ErrTooManyKeys) {
		t.Fatalf("rotation past the cap: %v, want ErrTooManyKeys", err)
	}
	if got := mustGetRegistration(t, s, reg.ID); got.KID != before.KID || got.PendingKID != "" {
		t.Errorf("registration after the refused rotation: %+v", got)
	}
	if _, err := s.GetKey(ctx, extra.KID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused rotation's key was stored: %v", err)
	}
	if got := mustActiveKIDs(t, s); len(got) != len(published) || mustVersion(t, s) != version {
		t.Errorf("refused rotation changed the published keys (%q → %q) or the version", published, got)
	}

	// Retiring the previous key at once keeps the count (3): allowed.
	if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), storage.RotateOptions{RetirePreviousAfter: 0, MaxPublished: 3}); err != nil {
		t.Fatalf("rotation that retires the previous key at once: %v", err)
	}
	// Retiring the oldest makes room (2); a key published ahead takes it
	// (3), and replacing that pending key keeps the count.
	if _, err := s.RetireKey(ctx, published[len(published)-1]); err != nil {
		t.Fatalf("RetireKey of the oldest key: %v", err)
	}
	ahead := storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: 0, MaxPublished: 3}
	if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), ahead); err != nil {
		t.Fatalf("rotation ahead, within the cap: %v", err)
	}
	if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), ahead); err != nil {
		t.Fatalf("rotation replacing the pending key: %v", err)
	}
	// Once the pending key activates, the key it supersedes is past its
	// retirement and no longer counts, recorded or not (2).
	clock.Set(clock.Now().Add(2 * time.Hour))
	if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), keep); err != nil {
		t.Fatalf("rotation after a retirement came due: %v", err)
	}
	if _, err := s.Rotate(ctx, reg.ID, newKey(reg.ID), keep); !errors.Is(err, storage.ErrTooManyKeys) {
		t.Fatalf("rotation past the cap again: %v, want ErrTooManyKeys", err)
	}
}

// testConcurrentMaxPublished races rotations of one registration against
// its cap: exactly as many pass as the cap leaves room for.
func testConcurrentMaxPublished(t *testing.T, s storage.Store, _ *Clock) {
	reg, _ := mustCreate(t, s)
	const max, tries = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Rotate(t.Context(), reg.ID, newKey(reg.ID), storage.RotateOptions{RetirePreviousAfter: -1, MaxPublished: max})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	passed := 0
	for err := range errs {
		switch {
		case err == nil:
			passed++
		case !errors.Is(err, storage.ErrTooManyKeys):
			t.Errorf("Rotate: %v", err)
		}
	}
	if passed != max-1 {
		t.Errorf("%d concurrent rotations passed, want %d", passed, max-1)
	}
	if kids := mustActiveKIDs(t, s); len(kids) != max {
		t.Errorf("%d keys published, want %d", len(kids), max)
	}
}
