package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// clockEnv is a testEnv whose store, key service and JWKS cache all read
// one settable clock, with no background worker: transitions are recorded
// only when the test calls service.ApplyTransitions.
type clockEnv struct {
	*testEnv
	clock   *conformance.Clock
	service *server.KeyService
}

func newClockEnv(t *testing.T, databaseURL string) *clockEnv {
	t.Helper()
	clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	env, service := startEnv(t, databaseURL, envOptions{
		store: []storage.Option{storage.WithClock(clock.Now)},
		cache: []server.JWKSCacheOption{server.WithCacheClock(clock.Now)},
		configure: func(c *server.KeyServiceConfig) {
			c.Now = clock.Now
			c.JWKSMaxAge = time.Hour
		},
	})
	return &clockEnv{testEnv: env, clock: clock, service: service}
}

func forEachBackendWithClock(t *testing.T, test func(t *testing.T, env *clockEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, newClockEnv(t, b.url(t))) })
	}
}

// signingKid returns the kid each signing path uses for id right now.
func (e *clockEnv) signingKid(t *testing.T, id string) string {
	t.Helper()
	ctx := context.Background()
	tk, err := e.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	if err != nil {
		t.Fatalf("GetToolKey: %v", err)
	}
	sj, err := e.keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}, ClaimsJson: `{"a":1}`})
	if err != nil {
		t.Fatalf("SignJwt: %v", err)
	}
	ca, err := e.keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: id}})
	if err != nil {
		t.Fatalf("CreateClientAssertion: %v", err)
	}
	gr, err := e.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
	if err != nil {
		t.Fatalf("GetRegistration: %v", err)
	}
	if tk.GetKid() != sj.GetKid() || tk.GetKid() != ca.GetKid() || tk.GetKid() != gr.GetRegistration().GetKid() || tk.GetKid() != tk.GetRegistration().GetKid() {
		t.Errorf("signing paths disagree: GetToolKey %s, SignJwt %s, CreateClientAssertion %s, GetRegistration %s", tk.GetKid(), sj.GetKid(), ca.GetKid(), gr.GetRegistration().GetKid())
	}
	return tk.GetKid()
}

// keyStates returns the state ListKeys reports for each of id's keys.
func (e *clockEnv) keyStates(t *testing.T, id string) map[string]ltikeysv1.KeyState {
	t.Helper()
	resp, err := e.keys.ListKeys(context.Background(), &ltikeysv1.ListKeysRequest{RegistrationId: id})
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	states := map[string]ltikeysv1.KeyState{}
	for _, k := range resp.GetKeys() {
		states[k.GetKid()] = k.GetState()
		if k.GetActive() != (k.GetState() != ltikeysv1.KeyState_KEY_STATE_RETIRED) {
			t.Errorf("key %s: active %v in state %v", k.GetKid(), k.GetActive(), k.GetState())
		}
	}
	return states
}

// TestRotationPublishAhead24hRetire72h follows a rotation with publish_ahead
// 24h and retire_previous_after 72h through every instant that matters,
// first with the worker stopped, then again after it records each step.
func TestRotationPublishAhead24hRetire72h(t *testing.T) {
	forEachBackendWithClock(t, func(t *testing.T, env *clockEnv) {
		ctx := context.Background()
		t0 := env.clock.Now()
		created := env.mustCreate(t, "ahead")
		id, oldKid := created.GetRegistration().GetId(), created.GetKey().GetKid()
		other := env.mustCreate(t, "bystander")
		// Warm the caches before the rotation, as a running service would be.
		env.signingKid(t, id)

		rot, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{
			RegistrationId:      id,
			PublishAhead:        durationpb.New(24 * time.Hour),
			RetirePreviousAfter: durationpb.New(72 * time.Hour),
		})
		if err != nil {
			t.Fatalf("RotateKey: %v", err)
		}
		newKid := rot.GetNewKey().GetKid()
		if got := rot.GetNewKey().GetState(); got != ltikeysv1.KeyState_KEY_STATE_PENDING {
			t.Errorf("new key state %v, want PENDING", got)
		}
		if got := rot.GetPreviousKey().GetRetireTime().AsTime(); !got.Equal(t0.Add(96 * time.Hour)) {
			t.Errorf("previous key retire_time %v, want %v", got, t0.Add(96*time.Hour))
		}
		if reg := rot.GetRegistration(); reg.GetKid() != oldKid || reg.GetPendingKid() != newKid || !reg.GetPendingActivateTime().AsTime().Equal(t0.Add(24*time.Hour)) {
			t.Errorf("registration after rotation: kid %s pending %s at %v", reg.GetKid(), reg.GetPendingKid(), reg.GetPendingActivateTime().AsTime())
		}

		const (
			pending  = ltikeysv1.KeyState_KEY_STATE_PENDING
			current  = ltikeysv1.KeyState_KEY_STATE_CURRENT
			previous = ltikeysv1.KeyState_KEY_STATE_PREVIOUS
			retired  = ltikeysv1.KeyState_KEY_STATE_RETIRED
		)
		steps := []struct {
			name      string
			at        time.Duration
			signing   string
			published []string
			oldState  ltikeysv1.KeyState
			newState  ltikeysv1.KeyState
		}{
			{"rotated", 0, oldKid, []string{oldKid, newKid}, current, pending},
			{"an hour later", time.Hour, oldKid, []string{oldKid, newKid}, current, pending},
			{"just before activation", 24*time.Hour - time.Second, oldKid, []string{oldKid, newKid}, current, pending},
			{"activation", 24 * time.Hour, newKid, []string{oldKid, newKid}, previous, current},
			{"between", 60 * time.Hour, newKid, []string{oldKid, newKid}, previous, current},
			{"just before retirement", 96*time.Hour - time.Second, newKid, []string{oldKid, newKid}, previous, current},
			{"retirement", 96 * time.Hour, newKid, []string{newKid}, retired, current},
			{"a week later", 7 * 24 * time.Hour, newKid, []string{newKid}, retired, current},
		}
		check := func(t *testing.T, step string, signing string, published []string, oldState, newState ltikeysv1.KeyState) {
			t.Helper()
			if got := env.signingKid(t, id); got != signing {
				t.Errorf("%s: signs with %s, want %s", step, got, signing)
			}
			want := map[string]bool{other.GetKey().GetKid(): true}
			for _, k := range published {
				want[k] = true
			}
			if got := publishedKids(t, env.testEnv); !equalSets(got, want) {
				t.Errorf("%s: JWKS publishes %v, want %v", step, got, want)
			}
			states := env.keyStates(t, id)
			if states[oldKid] != oldState || states[newKid] != newState {
				t.Errorf("%s: states old %v new %v, want %v and %v", step, states[oldKid], states[newKid], oldState, newState)
			}
		}
		// The worker stopped: reads follow the schedule alone.
		for _, s := range steps {
			env.clock.Set(t0.Add(s.at))
			check(t, s.name+" (worker stopped)", s.signing, s.published, s.oldState, s.newState)
		}
		env.clock.Set(t0.Add(8 * 24 * time.Hour))
		if n, err := env.service.ApplyTransitions(ctx); err != nil || n != 2 {
			t.Errorf("ApplyTransitions after the fact: %d, %v; want 2", n, err)
		}
		check(t, "recorded late", newKid, []string{newKid}, retired, current)
	})
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestRotateKeyOptions covers the defaults, emergency revocation, the
// max-age guard and rotating while a rotation is pending.
func TestRotateKeyOptions(t *testing.T) {
	forEachBackendWithClock(t, func(t *testing.T, env *clockEnv) {
		ctx := context.Background()
		t0 := env.clock.Now()
		reg := env.mustCreate(t, "opts")
		id, firstKid := reg.GetRegistration().GetId(), reg.GetKey().GetKid()

		for _, tc := range []struct {
			name  string
			req   *ltikeysv1.RotateKeyRequest
			field string
		}{
			{"publish_ahead below max-age", &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(time.Minute)}, "publish_ahead"},
			{"retire_previous_after below max-age", &ltikeysv1.RotateKeyRequest{RegistrationId: id, RetirePreviousAfter: durationpb.New(time.Minute)}, "retire_previous_after"},
			{"negative", &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(-time.Hour)}, "publish_ahead"},
		} {
			_, err := env.keys.RotateKey(ctx, tc.req)
			if status.Code(err) != codes.InvalidArgument || !containsField(err, tc.field) {
				t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
			}
		}
		if n := env.keyCount(t); n != 1 {
			t.Errorf("refused rotations stored keys: %d keys", n)
		}

		// Defaults: the new key pending for the default publish-ahead (the
		// JWKS max-age, an hour here), the previous one retired 48h after
		// it takes over.
		def, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
		if err != nil {
			t.Fatal(err)
		}
		activates := t0.Add(time.Hour)
		if got := def.GetNewKey(); got.GetState() != ltikeysv1.KeyState_KEY_STATE_PENDING || !got.GetActivateTime().AsTime().Equal(activates) {
			t.Errorf("default rotation: new key %v activating %v, want PENDING until %v", got.GetState(), got.GetActivateTime().AsTime(), activates)
		}
		if got := def.GetPreviousKey(); got.GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT || !got.GetSupersedeTime().AsTime().Equal(activates) ||
			!got.GetRetireTime().AsTime().Equal(activates.Add(48*time.Hour)) {
			t.Errorf("default rotation: previous key %v superseded %v retiring %v, want CURRENT until %v and retiring 48h later",
				got.GetState(), got.GetSupersedeTime().AsTime(), got.GetRetireTime().AsTime(), activates)
		}
		if r := def.GetRegistration(); r.GetKid() != firstKid || r.GetPendingKid() != def.GetNewKey().GetKid() || !r.GetPendingActivateTime().AsTime().Equal(activates) {
			t.Errorf("default rotation: registration kid %s pending %s at %v", r.GetKid(), r.GetPendingKid(), r.GetPendingActivateTime().AsTime())
		}
		if got := env.signingKid(t, id); got != firstKid {
			t.Errorf("after a default rotation signs with %s, want the previous key %s until %v", got, firstKid, activates)
		}

		// publish_ahead 0s: current at once, replacing the pending key.
		now, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0)})
		if err != nil {
			t.Fatal(err)
		}
		if now.GetNewKey().GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT || !now.GetNewKey().GetActivateTime().AsTime().Equal(t0) ||
			now.GetPreviousKey().GetKid() != firstKid || now.GetPreviousKey().GetState() != ltikeysv1.KeyState_KEY_STATE_PREVIOUS ||
			!now.GetPreviousKey().GetRetireTime().AsTime().Equal(t0.Add(48*time.Hour)) {
			t.Errorf("rotation with publish_ahead 0s: new %v from %v, previous %s %v retiring %v", now.GetNewKey().GetState(), now.GetNewKey().GetActivateTime().AsTime(),
				now.GetPreviousKey().GetKid(), now.GetPreviousKey().GetState(), now.GetPreviousKey().GetRetireTime().AsTime())
		}
		if now.GetReplacedPendingKey().GetKid() != def.GetNewKey().GetKid() {
			t.Errorf("rotation with publish_ahead 0s replaced pending key %q, want %s", now.GetReplacedPendingKey().GetKid(), def.GetNewKey().GetKid())
		}
		if got := env.signingKid(t, id); got != now.GetNewKey().GetKid() {
			t.Errorf("after a rotation with publish_ahead 0s signs with %s, want %s", got, now.GetNewKey().GetKid())
		}
		// Forced short windows.
		forced, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(time.Minute), RetirePreviousAfter: durationpb.New(time.Minute), Force: true})
		if err != nil {
			t.Errorf("forced short windows: %v", err)
		} else if !forced.GetNewKey().GetActivateTime().AsTime().Equal(t0.Add(time.Minute)) {
			t.Errorf("forced publish_ahead 1m: activates %v, want %v", forced.GetNewKey().GetActivateTime().AsTime(), t0.Add(time.Minute))
		}
		// Emergency revocation: the old key leaves the JWKS and stops signing at once.
		cur := env.signingKid(t, id)
		rev, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0), RetirePreviousAfter: durationpb.New(0)})
		if err != nil {
			t.Fatal(err)
		}
		if rev.GetPreviousKey().GetKid() != cur || rev.GetPreviousKey().GetState() != ltikeysv1.KeyState_KEY_STATE_RETIRED {
			t.Errorf("revoked key %s state %v", rev.GetPreviousKey().GetKid(), rev.GetPreviousKey().GetState())
		}
		if publishedKids(t, env.testEnv)[cur] {
			t.Errorf("revoked key %s still published", cur)
		}
		if got := env.signingKid(t, id); got != rev.GetNewKey().GetKid() {
			t.Errorf("signs with %s after revocation, want %s", got, rev.GetNewKey().GetKid())
		}

		// Rotating while pending replaces the pending key.
		first, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		second, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if second.GetReplacedPendingKey().GetKid() != first.GetNewKey().GetKid() || second.GetReplacedPendingKey().GetState() != ltikeysv1.KeyState_KEY_STATE_RETIRED ||
			second.GetPreviousKey().GetKid() != rev.GetNewKey().GetKid() {
			t.Errorf("second pending rotation: replaced %s (%v), previous %s", second.GetReplacedPendingKey().GetKid(), second.GetReplacedPendingKey().GetState(), second.GetPreviousKey().GetKid())
		}
		if published := publishedKids(t, env.testEnv); published[first.GetNewKey().GetKid()] || !published[second.GetNewKey().GetKid()] {
			t.Errorf("JWKS after replacing the pending key: %v", published)
		}
		pendingList, err := env.keys.ListKeys(ctx, &ltikeysv1.ListKeysRequest{RegistrationId: id, State: ltikeysv1.KeyState_KEY_STATE_PENDING})
		if err != nil || len(pendingList.GetKeys()) != 1 || pendingList.GetKeys()[0].GetKid() != second.GetNewKey().GetKid() {
			t.Errorf("pending keys: %v, %v", pendingList.GetKeys(), err)
		}
	})
}

// TestDefaultPublishAhead checks the publish_ahead a RotateKey without one
// gets under each configuration, against an explicit 0s, and that
// NewKeyService refuses a default the window rules would refuse in a
// request.
func TestDefaultPublishAhead(t *testing.T) {
	for _, tc := range []struct {
		name                string
		jwksMaxAge, setting time.Duration
		want                time.Duration
	}{
		{"unset, default max-age", 0, 0, server.DefaultJWKSMaxAge},
		{"unset, max-age below a minute", 20 * time.Second, 0, server.MinDefaultPublishAhead},
		{"unset, no max-age", -1, 0, server.MinDefaultPublishAhead},
		{"unset, max-age an hour", time.Hour, 0, time.Hour},
		{"set above the max-age", time.Hour, 3 * time.Hour, 3 * time.Hour},
		{"set to the max-age", time.Hour, time.Hour, time.Hour},
		{"none", time.Hour, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			t0 := clock.Now()
			env, _ := startEnv(t, storagetest.SQLiteURL(t), envOptions{
				store: []storage.Option{storage.WithClock(clock.Now)},
				cache: []server.JWKSCacheOption{server.WithCacheClock(clock.Now)},
				configure: func(c *server.KeyServiceConfig) {
					c.Now = clock.Now
					c.JWKSMaxAge = tc.jwksMaxAge
					c.DefaultPublishAhead = tc.setting
				},
			})
			id := env.mustCreate(t, "default-ahead").GetRegistration().GetId()
			rotated, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
			if err != nil {
				t.Fatal(err)
			}
			wantState := ltikeysv1.KeyState_KEY_STATE_PENDING
			if tc.want == 0 {
				wantState = ltikeysv1.KeyState_KEY_STATE_CURRENT
			}
			if got := rotated.GetNewKey(); got.GetState() != wantState || !got.GetActivateTime().AsTime().Equal(t0.Add(tc.want)) {
				t.Errorf("RotateKey without publish_ahead: new key %v activating %v, want %v at %v", got.GetState(), got.GetActivateTime().AsTime(), wantState, t0.Add(tc.want))
			}
			now, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0)})
			if err != nil {
				t.Fatal(err)
			}
			if got := now.GetNewKey(); got.GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT || !got.GetActivateTime().AsTime().Equal(t0) {
				t.Errorf("RotateKey with publish_ahead 0s: new key %v activating %v, want CURRENT at %v", got.GetState(), got.GetActivateTime().AsTime(), t0)
			}
		})
	}

	store, err := storage.Open(context.Background(), storagetest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, bad := range []struct{ jwksMaxAge, setting time.Duration }{
		{time.Hour, 30 * time.Minute},
		{time.Hour, server.MaxRotationWindow + time.Second},
		{server.MaxRotationWindow + time.Second, 0},
	} {
		_, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, JWKSMaxAge: bad.jwksMaxAge, DefaultPublishAhead: bad.setting})
		if err == nil || !strings.Contains(err.Error(), "default publish-ahead") {
			t.Errorf("NewKeyService with JWKS max-age %s and default publish-ahead %s: %v, want an error about the default publish-ahead", bad.jwksMaxAge, bad.setting, err)
		}
	}
}

// containsField reports whether err's message starts with field.
func containsField(err error, field string) bool {
	return err != nil && strings.HasPrefix(status.Convert(err).Message(), field+":")
}

// decodeClaims returns a compact JWT's payload, unverified.
func decodeClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestRegistrationReadUpdateDelete covers Get, Update and Delete.
func TestRegistrationReadUpdateDelete(t *testing.T) {
	forEachBackendWithClock(t, func(t *testing.T, env *clockEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "rud")
		id := created.GetRegistration().GetId()
		env.signingKid(t, id) // warm

		upd, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
			Registration: &ltikeysv1.Registration{Id: id, TokenEndpoint: "https://canvas.example.edu/new-token", AuthEndpoint: "ignored"},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"token_endpoint"}},
		})
		if err != nil {
			t.Fatalf("UpdateRegistration: %v", err)
		}
		if upd.GetRegistration().GetTokenEndpoint() != "https://canvas.example.edu/new-token" || upd.GetRegistration().GetAuthEndpoint() != created.GetRegistration().GetAuthEndpoint() {
			t.Errorf("updated registration: %v", upd.GetRegistration())
		}
		// The signing cache follows: the assertion's aud is the new endpoint.
		ca, err := env.keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: id}})
		if err != nil {
			t.Fatal(err)
		}
		if claims := decodeClaims(t, ca.GetClientAssertion()); claims["aud"] != "https://canvas.example.edu/new-token" {
			t.Errorf("client assertion aud %v after update", claims["aud"])
		}
		for _, tc := range []struct {
			name string
			req  *ltikeysv1.UpdateRegistrationRequest
		}{
			{"issuer in mask", &ltikeysv1.UpdateRegistrationRequest{Registration: &ltikeysv1.Registration{Id: id, Issuer: "x"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"issuer"}}}},
			{"invalid endpoint", &ltikeysv1.UpdateRegistrationRequest{Registration: &ltikeysv1.Registration{Id: id, JwksUri: "http://remote.example/jwks"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"jwks_uri"}}}},
			{"empty mask needs all three", &ltikeysv1.UpdateRegistrationRequest{Registration: &ltikeysv1.Registration{Id: id, JwksUri: "https://a.example/j"}}},
		} {
			if _, err := env.keys.UpdateRegistration(ctx, tc.req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want INVALID_ARGUMENT", tc.name, err)
			}
		}
		missing := &ltikeysv1.UpdateRegistrationRequest{Registration: &ltikeysv1.Registration{Id: uuid.NewString(), JwksUri: "https://a.example/j"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"jwks_uri"}}}
		if _, err := env.keys.UpdateRegistration(ctx, missing); status.Code(err) != codes.NotFound {
			t.Errorf("update of an unknown id: %v", err)
		}

		del, err := env.keys.DeleteRegistration(ctx, &ltikeysv1.DeleteRegistrationRequest{Id: id})
		if err != nil {
			t.Fatalf("DeleteRegistration: %v", err)
		}
		if len(del.GetRetiredKeys()) != 1 || del.GetRetiredKeys()[0].GetState() != ltikeysv1.KeyState_KEY_STATE_RETIRED {
			t.Errorf("deleted keys: %v", del.GetRetiredKeys())
		}
		if publishedKids(t, env.testEnv)[created.GetKey().GetKid()] {
			t.Errorf("a deleted registration's key is still published")
		}
		lookup := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
		if _, err := env.keys.GetToolKey(ctx, lookup); status.Code(err) != codes.NotFound {
			t.Errorf("GetToolKey of a deleted registration (cache warm): %v", err)
		}
		if _, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Errorf("GetRegistration of a deleted registration: %v", err)
		}
		if _, err := env.keys.DeleteRegistration(ctx, &ltikeysv1.DeleteRegistrationRequest{Id: id}); err != nil {
			t.Errorf("second DeleteRegistration: %v", err)
		}
		if _, err := env.keys.DeleteRegistration(ctx, &ltikeysv1.DeleteRegistrationRequest{Id: uuid.NewString()}); status.Code(err) != codes.NotFound {
			t.Errorf("DeleteRegistration of an unknown id: %v", err)
		}
		// The pair is free again.
		if _, err := env.keys.CreateRegistration(ctx, validCreate("rud")); err != nil {
			t.Errorf("CreateRegistration reusing a deleted pair: %v", err)
		}
	})
}

// TestListRegistrationsPagination lists 1,000 registrations in pages of 7
// while others are inserted: no registration twice, none that existed
// before the listing began missing.
func TestListRegistrationsPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		insert := func(i int, issuer string) string {
			id := uuid.Must(uuid.NewV7()).String()
			reg := storage.Registration{ID: id, Issuer: issuer, ClientID: fmt.Sprint("c-", i, "-", id[:8]),
				AuthEndpoint: "https://p.example/a", JWKSURI: "https://p.example/j", TokenEndpoint: "https://p.example/t"}
			kid := "kid-" + id
			key := storage.Key{KID: kid, Alg: "RS256", RegistrationID: id, PublicJWK: fmt.Appendf(nil, `{"kty":"RSA","kid":%q,"n":"AQAB","e":"AQAB"}`, kid), PrivateJWK: []byte{0}}
			if _, _, err := env.store.CreateRegistration(ctx, reg, key); err != nil {
				t.Errorf("CreateRegistration: %v", err)
			}
			return id
		}
		const n = 1000
		existing := map[string]bool{}
		for i := range n {
			issuer := "https://a.example"
			if i%10 == 0 {
				issuer = "https://b.example"
			}
			existing[insert(i, issuer)] = true
		}

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := n; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				insert(i, "https://a.example")
			}
		})
		seen := map[string]bool{}
		token, pages := "", 0
		for {
			resp, err := env.keys.ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{PageSize: 7, PageToken: token})
			if err != nil {
				t.Fatalf("ListRegistrations page %d: %v", pages, err)
			}
			pages++
			if len(resp.GetRegistrations()) > 7 {
				t.Fatalf("page of %d", len(resp.GetRegistrations()))
			}
			for _, r := range resp.GetRegistrations() {
				if seen[r.GetId()] {
					t.Errorf("registration %s listed twice", r.GetId())
				}
				seen[r.GetId()] = true
			}
			if token = resp.GetNextPageToken(); token == "" || pages > 2*n {
				break
			}
		}
		close(stop)
		wg.Wait()
		for id := range existing {
			if !seen[id] {
				t.Errorf("registration %s missing from the listing", id)
			}
		}
		if pages < n/7 {
			t.Errorf("only %d pages", pages)
		}

		// The issuer filter, and tokens bound to it.
		first, err := env.keys.ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{PageSize: 60, Issuer: "https://b.example"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range first.GetRegistrations() {
			if r.GetIssuer() != "https://b.example" {
				t.Errorf("filtered listing returned issuer %s", r.GetIssuer())
			}
		}
		rest, err := env.keys.ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{PageSize: 60, Issuer: "https://b.example", PageToken: first.GetNextPageToken()})
		if err != nil || len(first.GetRegistrations())+len(rest.GetRegistrations()) != n/10 || rest.GetNextPageToken() != "" {
			t.Errorf("issuer b: %d + %d registrations (%v), want %d", len(first.GetRegistrations()), len(rest.GetRegistrations()), err, n/10)
		}
		for _, bad := range []*ltikeysv1.ListRegistrationsRequest{
			{PageToken: first.GetNextPageToken()}, // other filter
			{PageToken: "not-a-token"},
			{PageSize: -1},
		} {
			if _, err := env.keys.ListRegistrations(ctx, bad); status.Code(err) != codes.InvalidArgument {
				t.Errorf("ListRegistrations(%v): %v, want INVALID_ARGUMENT", bad, err)
			}
		}
	})
}
