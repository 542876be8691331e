package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/storage"
)

// RunTests runs the suite. newStore must return a fresh, empty store; it is
// called once per subtest, and the suite closes the store when the subtest
// ends.
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Store)
	}{
		{"CreateRegistration", testCreateRegistration},
		{"CreateRegistrationMismatchedIDs", testCreateRegistrationMismatchedIDs},
		{"CreateRegistrationDuplicateIssuerClient", testCreateRegistrationDuplicateIssuerClient},
		{"CreateRegistrationDuplicateKID", testCreateRegistrationDuplicateKID},
		{"CreateRegistrationDuplicateID", testCreateRegistrationDuplicateID},
		{"GetRegistrationNotFound", testGetRegistrationNotFound},
		{"GetKey", testGetKey},
		{"RotateKey", testRotateKey},
		{"RotateKeyUnknownRegistration", testRotateKeyUnknownRegistration},
		{"RotateKeyDuplicateKID", testRotateKeyDuplicateKID},
		{"RotateKeyMismatchedIDs", testRotateKeyMismatchedIDs},
		{"RetireKey", testRetireKey},
		{"RetireKeyInUse", testRetireKeyInUse},
		{"RetireKeyNotFound", testRetireKeyNotFound},
		{"ActiveKeysOrder", testActiveKeysOrder},
		{"KeyIDs", testKeyIDs},
		{"PrivateKeys", testPrivateKeys},
		{"UpdatePrivateKeyChanged", testUpdatePrivateKeyChanged},
		{"UpdatePrivateKeyUnchanged", testUpdatePrivateKeyUnchanged},
		{"UpdatePrivateKeyError", testUpdatePrivateKeyError},
		{"UpdatePrivateKeyNotFound", testUpdatePrivateKeyNotFound},
		{"Version", testVersion},
		{"ConcurrentRotateKey", testConcurrentRotateKey},
		{"ConcurrentUpdatePrivateKey", testConcurrentUpdatePrivateKey},
		{"DeploymentIDsRoundTrip", testDeploymentIDsRoundTrip},
		{"DeploymentIDsUpdate", testDeploymentIDsUpdate},
		{"DeploymentIDsNotText", testDeploymentIDsNotText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

// newRegistration returns a registration with a fresh id and issuer.
func newRegistration() storage.Registration {
	id := uuid.NewString()
	return storage.Registration{
		ID:            id,
		Issuer:        "https://platform.example/" + id,
		ClientID:      "client-" + id[:8],
		AuthEndpoint:  "https://platform.example/auth",
		JWKSURI:       "https://platform.example/jwks",
		TokenEndpoint: "https://platform.example/token",
	}
}

// newKey returns fake key material for registrationID. The sealed private
// half holds bytes that are not valid text, as real ciphertext does.
func newKey(registrationID string) storage.Key {
	kid := "kid-" + uuid.NewString()
	return storage.Key{
		KID:            kid,
		Alg:            "RS256",
		RegistrationID: registrationID,
		PublicJWK:      fmt.Appendf(nil, `{"kty":"RSA","kid":%q,"n":"AQAB","e":"AQAB"}`, kid),
		PrivateJWK:     append([]byte{0x00, 0xff, 0xfe, 0x80}, kid...),
		Active:         true,
	}
}

func mustCreate(t *testing.T, s storage.Store) (storage.Registration, storage.Key) {
	t.Helper()
	reg := newRegistration()
	reg, key, err := s.CreateRegistration(t.Context(), reg, newKey(reg.ID))
	if err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}
	return reg, key
}

func mustRotate(t *testing.T, s storage.Store, registrationID string) storage.Key {
	t.Helper()
	_, key, _, err := s.RotateKey(t.Context(), registrationID, newKey(registrationID))
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	return key
}

func mustGetKey(t *testing.T, s storage.Store, kid string) storage.Key {
	t.Helper()
	key, err := s.GetKey(t.Context(), kid)
	if err != nil {
		t.Fatalf("GetKey(%q): %v", kid, err)
	}
	return key
}

func mustGetRegistration(t *testing.T, s storage.Store, id string) storage.Registration {
	t.Helper()
	reg, err := s.GetRegistration(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRegistration(%q): %v", id, err)
	}
	return reg
}

func mustKeyIDs(t *testing.T, s storage.Store) []string {
	t.Helper()
	kids, err := s.KeyIDs(t.Context())
	if err != nil {
		t.Fatalf("KeyIDs: %v", err)
	}
	return kids
}

func mustActiveKIDs(t *testing.T, s storage.Store) []string {
	t.Helper()
	keys, err := s.ActiveKeys(t.Context())
	if err != nil {
		t.Fatalf("ActiveKeys: %v", err)
	}
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.KID
	}
	return kids
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// checkTimes checks that stored times are set and in UTC.
func checkTimes(t *testing.T, what string, created, updated time.Time) {
	t.Helper()
	if created.IsZero() || updated.IsZero() {
		t.Errorf("%s: zero timestamp: created %v, updated %v", what, created, updated)
	}
	if created.Location() != time.UTC || updated.Location() != time.UTC {
		t.Errorf("%s: timestamps not in UTC: created %v, updated %v", what, created, updated)
	}
	if updated.Before(created) {
		t.Errorf("%s: updated %v before created %v", what, updated, created)
	}
}

// checkRegistration compares registrations, times by instant.
func checkRegistration(t *testing.T, what string, got, want storage.Registration) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: times (created, updated) = (%v, %v), want (%v, %v)", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	if !slices.Equal(got.DeploymentIDs, want.DeploymentIDs) || (got.DeploymentIDs == nil) != (want.DeploymentIDs == nil) {
		t.Errorf("%s: DeploymentIDs = %#v, want %#v", what, got.DeploymentIDs, want.DeploymentIDs)
	}
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	got.DeploymentIDs, want.DeploymentIDs = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// checkKey compares keys, times by instant.
func checkKey(t *testing.T, what string, got, want storage.Key) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: times (created, updated) = (%v, %v), want (%v, %v)", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	if got.KID != want.KID || got.Alg != want.Alg || got.RegistrationID != want.RegistrationID || got.Active != want.Active {
		t.Errorf("%s: got kid %q alg %q registration %q active %v, want %q %q %q %v", what,
			got.KID, got.Alg, got.RegistrationID, got.Active, want.KID, want.Alg, want.RegistrationID, want.Active)
	}
	if !bytes.Equal(got.PublicJWK, want.PublicJWK) {
		t.Errorf("%s: PublicJWK = %q, want %q", what, got.PublicJWK, want.PublicJWK)
	}
	if !bytes.Equal(got.PrivateJWK, want.PrivateJWK) {
		t.Errorf("%s: PrivateJWK = %x, want %x", what, got.PrivateJWK, want.PrivateJWK)
	}
}

func testCreateRegistration(t *testing.T, s storage.Store) {
	ctx := t.Context()
	in := newRegistration()
	inKey := newKey(in.ID)
	inKey.Active = false // ignored: a new key is always active
	reg, key, err := s.CreateRegistration(ctx, in, inKey)
	if err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}

	want := in
	want.KID, want.CreatedAt, want.UpdatedAt = inKey.KID, reg.CreatedAt, reg.CreatedAt
	checkRegistration(t, "returned registration", reg, want)
	checkTimes(t, "returned registration", reg.CreatedAt, reg.UpdatedAt)
	wantKey := inKey
	wantKey.Active, wantKey.CreatedAt, wantKey.UpdatedAt = true, key.CreatedAt, key.CreatedAt
	checkKey(t, "returned key", key, wantKey)
	checkTimes(t, "returned key", key.CreatedAt, key.UpdatedAt)

	checkRegistration(t, "GetRegistration", mustGetRegistration(t, s, in.ID), reg)
	byPair, err := s.GetRegistrationByIssuerClient(ctx, in.Issuer, in.ClientID)
	if err != nil {
		t.Fatalf("GetRegistrationByIssuerClient: %v", err)
	}
	checkRegistration(t, "GetRegistrationByIssuerClient", byPair, reg)
	checkKey(t, "GetKey", mustGetKey(t, s, key.KID), key)
}

func testCreateRegistrationMismatchedIDs(t *testing.T, s storage.Store) {
	reg := newRegistration()
	key := newKey(uuid.NewString())
	if _, _, err := s.CreateRegistration(t.Context(), reg, key); err == nil {
		t.Fatal("CreateRegistration with key.RegistrationID != reg.ID succeeded")
	}
	if kids := mustKeyIDs(t, s); len(kids) != 0 {
		t.Errorf("keys stored after a rejected create: %q", kids)
	}
}

func testCreateRegistrationDuplicateIssuerClient(t *testing.T, s storage.Store) {
	ctx := t.Context()
	first, _ := mustCreate(t, s)

	dup := newRegistration()
	dup.Issuer, dup.ClientID = first.Issuer, first.ClientID
	dupKey := newKey(dup.ID)
	_, _, err := s.CreateRegistration(ctx, dup, dupKey)
	wantErr(t, "duplicate (issuer, client_id)", err, storage.ErrAlreadyExists)

	// The key row inserted before the failing registration row is gone.
	if kids := mustKeyIDs(t, s); len(kids) != 1 || kids[0] != first.KID {
		t.Errorf("KeyIDs after failed create = %q, want only %q", kids, first.KID)
	}
	_, err = s.GetKey(ctx, dupKey.KID)
	wantErr(t, "GetKey of the failed create's key", err, storage.ErrNotFound)
	_, err = s.GetRegistration(ctx, dup.ID)
	wantErr(t, "GetRegistration of the failed create", err, storage.ErrNotFound)

	// Same issuer with another client id is a different registration.
	other := newRegistration()
	other.Issuer = first.Issuer
	if _, _, err := s.CreateRegistration(ctx, other, newKey(other.ID)); err != nil {
		t.Fatalf("CreateRegistration, same issuer, new client_id: %v", err)
	}
}

func testCreateRegistrationDuplicateKID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, firstKey := mustCreate(t, s)

	dup := newRegistration()
	dupKey := newKey(dup.ID)
	dupKey.KID = firstKey.KID
	_, _, err := s.CreateRegistration(ctx, dup, dupKey)
	wantErr(t, "duplicate kid", err, storage.ErrAlreadyExists)

	_, err = s.GetRegistration(ctx, dup.ID)
	wantErr(t, "GetRegistration of the failed create", err, storage.ErrNotFound)
	checkKey(t, "original key", mustGetKey(t, s, firstKey.KID), firstKey)
}

func testCreateRegistrationDuplicateID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	first, _ := mustCreate(t, s)

	dup := newRegistration()
	dup.ID = first.ID
	_, _, err := s.CreateRegistration(ctx, dup, newKey(dup.ID))
	wantErr(t, "duplicate registration id", err, storage.ErrAlreadyExists)
	if kids := mustKeyIDs(t, s); len(kids) != 1 {
		t.Errorf("KeyIDs after failed create = %q, want one", kids)
	}
	checkRegistration(t, "original registration", mustGetRegistration(t, s, first.ID), first)
}

func testGetRegistrationNotFound(t *testing.T, s storage.Store) {
	ctx := t.Context()
	reg, _ := mustCreate(t, s)

	_, err := s.GetRegistration(ctx, uuid.NewString())
	wantErr(t, "GetRegistration of unknown id", err, storage.ErrNotFound)
	_, err = s.GetRegistrationByIssuerClient(ctx, reg.Issuer, reg.ClientID+"-other")
	wantErr(t, "GetRegistrationByIssuerClient, unknown client_id", err, storage.ErrNotFound)
	_, err = s.GetRegistrationByIssuerClient(ctx, reg.Issuer+"/other", reg.ClientID)
	wantErr(t, "GetRegistrationByIssuerClient, unknown issuer", err, storage.ErrNotFound)
}

func testGetKey(t *testing.T, s storage.Store) {
	_, key := mustCreate(t, s)
	checkKey(t, "GetKey", mustGetKey(t, s, key.KID), key)

	_, err := s.GetKey(t.Context(), "kid-unknown")
	wantErr(t, "GetKey of unknown kid", err, storage.ErrNotFound)
}

func testRotateKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	orig, origKey := mustCreate(t, s)
	in := newKey(orig.ID)

	reg, cur, prev, err := s.RotateKey(ctx, orig.ID, in)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	want := orig
	want.KID, want.UpdatedAt = in.KID, reg.UpdatedAt
	checkRegistration(t, "returned registration", reg, want)
	checkTimes(t, "returned registration", reg.CreatedAt, reg.UpdatedAt)
	wantKey := in
	wantKey.CreatedAt, wantKey.UpdatedAt = cur.CreatedAt, cur.CreatedAt
	checkKey(t, "returned current key", cur, wantKey)
	checkTimes(t, "returned current key", cur.CreatedAt, cur.UpdatedAt)
	// The previous key's row gains its schedule: superseded now, no
	// scheduled retirement.
	origKey.UpdatedAt = cur.CreatedAt
	checkKey(t, "returned previous key", prev, origKey)
	if !prev.SupersededAt.Equal(cur.CreatedAt) || !prev.RetireAt.IsZero() {
		t.Errorf("previous key: superseded %v, retire at %v; want %v and zero", prev.SupersededAt, prev.RetireAt, cur.CreatedAt)
	}

	checkRegistration(t, "GetRegistration", mustGetRegistration(t, s, orig.ID), reg)
	byPair, err := s.GetRegistrationByIssuerClient(ctx, orig.Issuer, orig.ClientID)
	if err != nil {
		t.Fatalf("GetRegistrationByIssuerClient: %v", err)
	}
	checkRegistration(t, "GetRegistrationByIssuerClient", byPair, reg)
	checkKey(t, "GetKey of new key", mustGetKey(t, s, cur.KID), cur)
	checkKey(t, "GetKey of previous key (still active)", mustGetKey(t, s, prev.KID), origKey)

	// RegistrationID may be left for the store to fill.
	blank := newKey("")
	_, cur, _, err = s.RotateKey(ctx, orig.ID, blank)
	if err != nil {
		t.Fatalf("RotateKey with blank RegistrationID: %v", err)
	}
	if cur.RegistrationID != orig.ID {
		t.Errorf("RegistrationID = %q, want %q", cur.RegistrationID, orig.ID)
	}
}

func testRotateKeyUnknownRegistration(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, key := mustCreate(t, s)
	id := uuid.NewString()
	in := newKey(id)

	_, _, _, err := s.RotateKey(ctx, id, in)
	wantErr(t, "RotateKey of unknown registration", err, storage.ErrNotFound)
	_, err = s.GetKey(ctx, in.KID)
	wantErr(t, "GetKey of the failed rotation's key", err, storage.ErrNotFound)
	if kids := mustKeyIDs(t, s); !slices.Equal(kids, []string{key.KID}) {
		t.Errorf("KeyIDs after failed rotation = %q, want %q", kids, []string{key.KID})
	}
}

func testRotateKeyDuplicateKID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	reg, _ := mustCreate(t, s)
	_, otherKey := mustCreate(t, s)

	in := newKey(reg.ID)
	in.KID = otherKey.KID
	_, _, _, err := s.RotateKey(ctx, reg.ID, in)
	wantErr(t, "RotateKey with a taken kid", err, storage.ErrAlreadyExists)
	checkRegistration(t, "registration after failed rotation", mustGetRegistration(t, s, reg.ID), reg)
	checkKey(t, "owner of the kid", mustGetKey(t, s, otherKey.KID), otherKey)
}

func testRotateKeyMismatchedIDs(t *testing.T, s storage.Store) {
	reg, key := mustCreate(t, s)
	if _, _, _, err := s.RotateKey(t.Context(), reg.ID, newKey(uuid.NewString())); err == nil {
		t.Fatal("RotateKey with newKey.RegistrationID != registrationID succeeded")
	}
	if kids := mustKeyIDs(t, s); !slices.Equal(kids, []string{key.KID}) {
		t.Errorf("KeyIDs after rejected rotation = %q, want %q", kids, []string{key.KID})
	}
}

func testRetireKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	reg, old := mustCreate(t, s)
	cur := mustRotate(t, s, reg.ID)

	retired, err := s.RetireKey(ctx, old.KID)
	if err != nil {
		t.Fatalf("RetireKey: %v", err)
	}
	want := old
	want.Active, want.UpdatedAt = false, retired.UpdatedAt
	checkKey(t, "retired key", retired, want)
	checkTimes(t, "retired key", retired.CreatedAt, retired.UpdatedAt)
	checkKey(t, "GetKey of retired key", mustGetKey(t, s, old.KID), retired)

	if kids := mustActiveKIDs(t, s); !slices.Equal(kids, []string{cur.KID}) {
		t.Errorf("ActiveKeys = %q, want %q", kids, []string{cur.KID})
	}
	if kids := mustKeyIDs(t, s); len(kids) != 2 || !slices.Contains(kids, old.KID) {
		t.Errorf("KeyIDs = %q, want both keys, retired included", kids)
	}

	// Idempotent: a second retirement changes nothing, updated_at included.
	again, err := s.RetireKey(ctx, old.KID)
	if err != nil {
		t.Fatalf("RetireKey again: %v", err)
	}
	checkKey(t, "key retired twice", again, retired)
}

func testRetireKeyInUse(t *testing.T, s storage.Store) {
	_, key := mustCreate(t, s)
	_, err := s.RetireKey(t.Context(), key.KID)
	wantErr(t, "RetireKey of a current signing key", err, storage.ErrKeyInUse)
	checkKey(t, "key after refused retirement", mustGetKey(t, s, key.KID), key)
}

func testRetireKeyNotFound(t *testing.T, s storage.Store) {
	_, err := s.RetireKey(t.Context(), "kid-unknown")
	wantErr(t, "RetireKey of unknown kid", err, storage.ErrNotFound)
}

func testActiveKeysOrder(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if kids := mustActiveKIDs(t, s); len(kids) != 0 {
		t.Fatalf("ActiveKeys of empty store = %q", kids)
	}
	a, k1 := mustCreate(t, s)
	_, k2 := mustCreate(t, s)
	k3 := mustRotate(t, s, a.ID)
	k4 := mustRotate(t, s, a.ID)

	keys, err := s.ActiveKeys(ctx)
	if err != nil {
		t.Fatalf("ActiveKeys: %v", err)
	}
	// Rotations update the replaced key's row.
	k1.UpdatedAt, k3.UpdatedAt = k3.CreatedAt, k4.CreatedAt
	want := []storage.Key{k4, k3, k2, k1}
	if len(keys) != len(want) {
		t.Fatalf("ActiveKeys returned %d keys, want %d", len(keys), len(want))
	}
	for i, got := range keys {
		w := want[i]
		w.PrivateJWK = nil // not loaded
		checkKey(t, fmt.Sprintf("ActiveKeys[%d]", i), got, w)
	}

	if _, err := s.RetireKey(ctx, k3.KID); err != nil {
		t.Fatalf("RetireKey: %v", err)
	}
	if got, want := mustActiveKIDs(t, s), []string{k4.KID, k2.KID, k1.KID}; !slices.Equal(got, want) {
		t.Errorf("ActiveKeys after retirement = %q, want %q", got, want)
	}
}

func testKeyIDs(t *testing.T, s storage.Store) {
	if kids := mustKeyIDs(t, s); len(kids) != 0 {
		t.Fatalf("KeyIDs of empty store = %q", kids)
	}
	a, k1 := mustCreate(t, s)
	_, k2 := mustCreate(t, s)
	k3 := mustRotate(t, s, a.ID)
	if _, err := s.RetireKey(t.Context(), k1.KID); err != nil {
		t.Fatalf("RetireKey: %v", err)
	}

	got := mustKeyIDs(t, s)
	if sorted, want := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values([]string{k1.KID, k2.KID, k3.KID})); !slices.Equal(sorted, want) {
		t.Errorf("KeyIDs = %q, want the kids %q", got, want)
	}
	if again := mustKeyIDs(t, s); !slices.Equal(again, got) {
		t.Errorf("KeyIDs order is not stable: %q, then %q", got, again)
	}
}

func testUpdatePrivateKeyChanged(t *testing.T, s storage.Store) {
	_, key := mustCreate(t, s)
	next := append([]byte{0x01, 0x00, 0xff}, "resealed"...)

	var seen []byte
	err := s.UpdatePrivateKey(t.Context(), key.KID, func(sealed []byte) ([]byte, bool, error) {
		seen = bytes.Clone(sealed)
		return next, true, nil
	})
	if err != nil {
		t.Fatalf("UpdatePrivateKey: %v", err)
	}
	if !bytes.Equal(seen, key.PrivateJWK) {
		t.Errorf("update saw %x, want the stored %x", seen, key.PrivateJWK)
	}
	got := mustGetKey(t, s, key.KID)
	if got.UpdatedAt.Before(key.UpdatedAt) {
		t.Errorf("UpdatedAt went back: %v before %v", got.UpdatedAt, key.UpdatedAt)
	}
	want := key
	want.PrivateJWK, want.UpdatedAt = next, got.UpdatedAt
	checkKey(t, "key after update", got, want)
}

func testUpdatePrivateKeyUnchanged(t *testing.T, s storage.Store) {
	_, key := mustCreate(t, s)
	err := s.UpdatePrivateKey(t.Context(), key.KID, func(sealed []byte) ([]byte, bool, error) {
		return []byte("ignored"), false, nil
	})
	if err != nil {
		t.Fatalf("UpdatePrivateKey: %v", err)
	}
	checkKey(t, "key after unchanged update", mustGetKey(t, s, key.KID), key)
}

func testUpdatePrivateKeyError(t *testing.T, s storage.Store) {
	_, key := mustCreate(t, s)
	errUpdate := errors.New("update failed")
	err := s.UpdatePrivateKey(t.Context(), key.KID, func(sealed []byte) ([]byte, bool, error) {
		return []byte("partial"), true, errUpdate
	})
	if err != errUpdate { //nolint:errorlint // returned as is, not wrapped
		t.Fatalf("UpdatePrivateKey = %v, want the update's error as is", err)
	}
	checkKey(t, "key after failed update", mustGetKey(t, s, key.KID), key)
}

func testUpdatePrivateKeyNotFound(t *testing.T, s storage.Store) {
	called := false
	err := s.UpdatePrivateKey(t.Context(), "kid-unknown", func(sealed []byte) ([]byte, bool, error) {
		called = true
		return sealed, false, nil
	})
	wantErr(t, "UpdatePrivateKey of unknown kid", err, storage.ErrNotFound)
	if called {
		t.Error("update called for an unknown kid")
	}
}

// testVersion checks that every change, and only a change, moves the
// change counter forward.
func testVersion(t *testing.T, s storage.Store) {
	ctx := t.Context()
	last, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	step := func(what string, wantChange bool) {
		t.Helper()
		v, err := s.Version(ctx)
		if err != nil {
			t.Fatalf("Version after %s: %v", what, err)
		}
		switch {
		case wantChange && v <= last:
			t.Errorf("Version after %s = %d, want more than %d", what, v, last)
		case !wantChange && v != last:
			t.Errorf("Version after %s = %d, want it unchanged at %d", what, v, last)
		}
		last = v
	}
	reg, first := mustCreate(t, s)
	step("CreateRegistration", true)
	mustRotate(t, s, reg.ID)
	step("RotateKey", true)
	if _, err := s.RetireKey(ctx, first.KID); err != nil {
		t.Fatal(err)
	}
	step("RetireKey", true)

	// Reads, refused or idempotent writes, and re-sealing change nothing.
	mustGetRegistration(t, s, reg.ID)
	mustActiveKIDs(t, s)
	if _, err := s.RetireKey(ctx, first.KID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetireKey(ctx, "kid-unknown"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("RetireKey of unknown kid: %v", err)
	}
	dup := newRegistration()
	dup.Issuer, dup.ClientID = reg.Issuer, reg.ClientID
	if _, _, err := s.CreateRegistration(ctx, dup, newKey(dup.ID)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate CreateRegistration: %v", err)
	}
	if _, _, _, err := s.RotateKey(ctx, newRegistration().ID, newKey("")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("RotateKey of unknown registration: %v", err)
	}
	err = s.UpdatePrivateKey(ctx, first.KID, func(b []byte) ([]byte, bool, error) { return append(b, 1), true, nil })
	if err != nil {
		t.Fatal(err)
	}
	step("reads, refused writes and UpdatePrivateKey", false)
}
