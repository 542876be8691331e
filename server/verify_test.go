package server_test

import (
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// TestVerifyPlatformToken verifies launches against a fake platform's
// key set, on every backend: what a verified token answers, the three
// ways of naming its registration, a warm verification's cost, and the
// refusal of a replayed nonce by the replica that accepted it and by
// another one on the same database, with a key cache of its own.
func TestVerifyPlatformToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			testVerifyPlatformToken(t, startLaunchEnv(t, b.url(t), launchEnvOptions{}))
		})
	}
}

func testVerifyPlatformToken(t *testing.T, le *launchEnv) {
	e, v, l := le.env, le.v, le.launcher
	id := le.reg.GetId()
	stored, err := v.keys.GetRegistration(e.as("reader"), &ltikeysv1.GetRegistrationRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}

	// The first launch waits for the platform's key set.
	series := verificationSeries(t, v.metrics)
	c, nonce := le.claims()
	token := le.sign(t, c, platformtest.SignOptions{})
	resp, err := le.verify(v, verifyByID(id, token, nonce))
	if err != nil {
		t.Fatalf("VerifyPlatformToken: %v", err)
	}
	if !proto.Equal(resp.GetRegistration(), stored.GetRegistration()) {
		t.Errorf("registration %v, want %v", resp.GetRegistration(), stored.GetRegistration())
	}
	if got, want := resp.GetClaimsJson(), payload(t, token); got != want {
		t.Errorf("claims_json %s, want the payload signed, %s", got, want)
	}
	if resp.GetDeploymentId() != l.DeploymentID {
		t.Errorf("deployment_id %q, want %q", resp.GetDeploymentId(), l.DeploymentID)
	}
	if resp.GetMessageType() != "LtiResourceLinkRequest" {
		t.Errorf("message_type %q, want LtiResourceLinkRequest", resp.GetMessageType())
	}
	if resp.GetKid() != l.KeyID() {
		t.Errorf("kid %q, want the platform's %q", resp.GetKid(), l.KeyID())
	}
	if got, want := resp.GetExpireTime().AsTime(), time.Unix(c["exp"].(int64), 0).UTC(); !got.Equal(want) {
		t.Errorf("expire_time %v, want the token's exp %v", got, want)
	}
	if n := l.JWKSFetches(); n != 1 {
		t.Errorf("%d fetches of the platform's key set, want 1", n)
	}
	checkMoved(t, v.metrics, series, map[string]float64{
		verifications(string(platform.OutcomeOK)):             1,
		keySetFetches(platform.OutcomeOK, platform.FetchCold): 1,
	})

	// The registration named by issuer and client_id, or by the token's
	// claims alone: iss and aud, or iss and azp when aud has several
	// values. Each launch has a nonce of its own.
	for _, tc := range []struct {
		name    string
		claims  func(platformtest.Claims) platformtest.Claims
		request func(token, nonce string) *ltikeysv1.VerifyPlatformTokenRequest
	}{
		{"by issuer_client", nil, func(token, nonce string) *ltikeysv1.VerifyPlatformTokenRequest {
			return verifyByIssuerClient(le.reg, token, nonce)
		}},
		{"by iss and aud", nil, verifyUnnamed},
		{"by iss and azp", func(c platformtest.Claims) platformtest.Claims {
			return c.With("aud", []string{"another-tool", platformClientID}).With("azp", platformClientID)
		}, verifyUnnamed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, nonce := le.claims()
			if tc.claims != nil {
				c = tc.claims(c)
			}
			token := le.sign(t, c, platformtest.SignOptions{})
			resp, err := le.verify(v, tc.request(token, nonce))
			if err != nil {
				t.Fatalf("VerifyPlatformToken: %v", err)
			}
			if !proto.Equal(resp.GetRegistration(), stored.GetRegistration()) {
				t.Errorf("registration %v, want %v", resp.GetRegistration(), stored.GetRegistration())
			}
			if got, want := resp.GetClaimsJson(), payload(t, token); got != want {
				t.Errorf("claims_json %s, want %s", got, want)
			}
		})
	}

	// Warm, a verification fetches nothing and runs one statement: the
	// record of its nonce.
	statements, fetches := v.statements.Load(), l.JWKSFetches()
	_, token, nonce = le.launch(t, v)
	if n := v.statements.Load() - statements; n != 1 {
		t.Errorf("a warm verification ran %d SQL statements, want 1", n)
	}
	if n := l.JWKSFetches() - fetches; n != 0 {
		t.Errorf("a warm verification fetched the platform's key set %d times", n)
	}

	// The same token again is refused, however the registration is named.
	series = verificationSeries(t, v.metrics)
	for name, req := range map[string]*ltikeysv1.VerifyPlatformTokenRequest{
		"by id":            verifyByID(id, token, nonce),
		"by issuer_client": verifyByIssuerClient(le.reg, token, nonce),
		"by its claims":    verifyUnnamed(token, nonce),
	} {
		_, err := le.verify(v, req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("replayed %s: %v, want InvalidArgument", name, err)
			continue
		}
		checkRefusal(t, err, invalid(server.ReasonNonceReplayed))
	}
	checkMoved(t, v.metrics, series, map[string]float64{verifications(server.ReasonNonceReplayed): 3})

	// Another replica, with a key cache of its own, refuses it too, once
	// it has fetched the key set and verified the token.
	second := le.verifier(t, launchEnvOptions{})
	series, fetches = verificationSeries(t, second.metrics), l.JWKSFetches()
	_, err = le.verify(second, verifyByID(id, token, nonce))
	checkRefusal(t, err, invalid(server.ReasonNonceReplayed))
	if n := l.JWKSFetches() - fetches; n != 1 {
		t.Errorf("the second replica fetched the platform's key set %d times, want 1", n)
	}
	checkMoved(t, second.metrics, series, map[string]float64{
		verifications(server.ReasonNonceReplayed):             1,
		keySetFetches(platform.OutcomeOK, platform.FetchCold): 1,
	})
	// And what the second accepts, the first refuses.
	_, token, nonce = le.launch(t, second)
	_, err = le.verify(v, verifyByID(id, token, nonce))
	checkRefusal(t, err, invalid(server.ReasonNonceReplayed))

	// Another nonce from the same platform verifies, on either.
	le.launch(t, v)
	le.launch(t, second)
}

// TestVerifyPlatformTokenRefusals tampers with a valid launch one claim,
// one header member or one request field at a time: each refusal names
// its check, moves its own series, and uses up no nonce.
func TestVerifyPlatformTokenRefusals(t *testing.T) {
	le := startLaunchEnv(t, storagetest.SQLiteURL(t), launchEnvOptions{})
	e, v, l := le.env, le.v, le.launcher
	id := le.reg.GetId()
	// A first launch warms the key cache.
	le.launch(t, v)

	// Every token below carries nonce, and the requests give it: none of
	// the refusals may use it up.
	c, nonce := le.claims()
	now := e.clock.Now()
	forged := func(what string) string {
		s := "forged-" + strings.ToLower(rand.Text())
		le.remember(what, s)
		return s
	}
	forgedIssuer := "https://" + forged("a tampered iss") + ".example"
	forgedClient := forged("a tampered aud")
	forgedDeployment := forged("a tampered deployment_id")
	otherNonce := le.nonce()
	otherKey := platformtest.NewRSAKey(t)
	unknownKid := forged("an unknown kid")
	le.madeUpKid(unknownKid)

	sign := func(c platformtest.Claims, o platformtest.SignOptions) func(*testing.T) string {
		return func(t *testing.T) string { return le.sign(t, c, o) }
	}
	tampered := func(c platformtest.Claims) func(*testing.T) string { return sign(c, platformtest.SignOptions{}) }
	raw := func(f func(platformtest.Claims) (string, error)) func(*testing.T) string {
		return func(t *testing.T) string {
			token, err := f(c)
			if err != nil {
				t.Fatal(err)
			}
			le.rememberToken(token)
			return token
		}
	}
	leeway := server.DefaultVerifyLeeway
	for _, tc := range []struct {
		name  string
		token func(*testing.T) string
		want  string
		// fetch, if set, is the fetch the refusal causes.
		fetch string
	}{
		{"iss of another platform", tampered(c.With("iss", forgedIssuer)), platform.ReasonIssuerMismatch, ""},
		{"no iss", tampered(c.Without("iss")), platform.ReasonIssuerMismatch, ""},
		{"aud another tool", tampered(c.With("aud", forgedClient)), platform.ReasonAudienceMismatch, ""},
		{"no aud", tampered(c.Without("aud")), platform.ReasonAudienceMismatch, ""},
		{"aud with several values and no azp", tampered(c.With("aud", []string{forgedClient, platformClientID})), platform.ReasonAZPMissing, ""},
		{"azp another tool", tampered(c.With("azp", forgedClient)), platform.ReasonAZPMismatch, ""},
		{"azp another tool, aud with several values", tampered(c.With("aud", []string{forgedClient, platformClientID}).With("azp", forgedClient)), platform.ReasonAZPMismatch, ""},
		{"no exp", tampered(c.Without("exp")), platform.ReasonExpMissing, ""},
		{"exp past, beyond the leeway", tampered(c.With("exp", now.Add(-leeway-time.Second).Unix())), platform.ReasonExpired, ""},
		{"no iat", tampered(c.Without("iat")), platform.ReasonIATMissing, ""},
		{"iat in the future, beyond the leeway", tampered(c.With("iat", now.Add(leeway+time.Second).Unix())), platform.ReasonIssuedInFuture, ""},
		{"nbf in the future, beyond the leeway", tampered(c.With("nbf", now.Add(leeway+time.Second).Unix())), platform.ReasonNotYetValid, ""},
		{"the nonce of another login", tampered(c.With("nonce", otherNonce)), platform.ReasonNonceMismatch, ""},
		{"no nonce claim", tampered(c.Without("nonce")), platform.ReasonNonceMismatch, ""},
		{"no deployment_id", tampered(c.Without(platformtest.ClaimDeploymentID)), platform.ReasonDeploymentIDMissing, ""},
		{"a deployment_id the registration does not list", tampered(c.With(platformtest.ClaimDeploymentID, forgedDeployment)), platform.ReasonDeploymentIDNotAllowed, ""},
		{"no message_type", tampered(c.Without(platformtest.ClaimMessageType)), platform.ReasonMessageTypeMissing, ""},
		{"no version", tampered(c.Without(platformtest.ClaimVersion)), platform.ReasonVersionMissing, ""},
		{"alg none", raw(l.SignAlgNone), platform.ReasonAlgNotAllowed, ""},
		{"HS256 keyed with the public modulus", raw(l.SignHS256WithModulus), platform.ReasonAlgNotAllowed, ""},
		{"PS256 with a key for RS256", sign(c, platformtest.SignOptions{Algorithm: "PS256"}), platform.ReasonAlgNotAllowed, ""},
		{"no kid", sign(c, platformtest.SignOptions{NoKeyID: true}), platform.ReasonKIDMissing, ""},
		{"a kid not in the set", sign(c, platformtest.SignOptions{KeyID: unknownKid}), platform.ReasonKIDUnknown,
			keySetFetches(platform.OutcomeOK, platform.FetchUnknownKID)},
		{"another key, with a published kid", sign(c, platformtest.SignOptions{Key: otherKey}), platform.ReasonBadSignature, ""},
		{"the JSON serialization", sign(c, platformtest.SignOptions{JSON: true}), platform.ReasonMalformedToken, ""},
		{"not a JWS", func(*testing.T) string { return "not-a-token" }, platform.ReasonMalformedToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token(t)
			series, fetches := verificationSeries(t, v.metrics), l.JWKSFetches()
			_, err := le.verify(v, verifyByID(id, token, nonce))
			checkRefusal(t, err, invalid(tc.want))
			want := map[string]float64{verifications(tc.want): 1}
			wantFetches := 0
			if tc.fetch != "" {
				want[tc.fetch], wantFetches = 1, 1
			}
			checkMoved(t, v.metrics, series, want)
			if n := l.JWKSFetches() - fetches; n != wantFetches {
				t.Errorf("%d fetches of the platform's key set, want %d", n, wantFetches)
			}
		})
	}

	// Requests refused before anything is verified or fetched.
	fetches := l.JWKSFetches()
	valid := le.sign(t, c, platformtest.SignOptions{})
	unknownID := "0190a5c0-0000-7000-8000-00000000abcd"
	notFound := verifyRefusal{code: codes.NotFound, reason: server.ReasonRegistrationNotFound}
	badRequest := func(field string) verifyRefusal {
		return verifyRefusal{code: codes.InvalidArgument, reason: server.ReasonInvalidRequest, field: field}
	}
	for _, tc := range []struct {
		name string
		req  *ltikeysv1.VerifyPlatformTokenRequest
		want verifyRefusal
	}{
		{"no token", verifyByID(id, "", nonce), badRequest("token")},
		{"a token over 64 KiB", verifyByID(id, strings.Repeat("a", platform.MaxPlatformTokenBytes+1), nonce), badRequest("token")},
		{"no nonce in the request", verifyByID(id, valid, ""), badRequest("nonce")},
		{"a nonce over 255 bytes", verifyByID(id, valid, strings.Repeat("n", 256)), badRequest("nonce")},
		{"a nonce with a control character", verifyByID(id, valid, "nonce\x00"), badRequest("nonce")},
		{"a malformed registration_id", verifyByID("not-a-uuid", valid, nonce), badRequest("registration_id")},
		{"an issuer_client without issuer", verifyByIssuerClient(&ltikeysv1.Registration{ClientId: platformClientID}, valid, nonce), badRequest("issuer_client.issuer")},
		{"an unknown registration_id", verifyByID(unknownID, valid, nonce), notFound},
		{"an unknown issuer_client", verifyByIssuerClient(&ltikeysv1.Registration{Issuer: le.reg.GetIssuer(), ClientId: "someone-else"}, valid, nonce), notFound},
		{"claims naming an unknown issuer", verifyUnnamed(le.sign(t, c.With("iss", forgedIssuer), platformtest.SignOptions{}), nonce), notFound},
		{"claims naming an unknown client", verifyUnnamed(le.sign(t, c.With("aud", forgedClient), platformtest.SignOptions{}), nonce), notFound},
		{"claims naming an issuer no registration can have", verifyUnnamed(le.sign(t, c.With("iss", forgedIssuer+"/\a"), platformtest.SignOptions{}), nonce), notFound},
		{"claims naming a client no registration can have", verifyUnnamed(le.sign(t, c.With("aud", " "), platformtest.SignOptions{}), nonce), notFound},
		{"claims naming an unknown azp", verifyUnnamed(le.sign(t, c.With("aud", []string{forgedClient, platformClientID}).With("azp", forgedClient), platformtest.SignOptions{}), nonce), notFound},
		{"claims naming no client: aud with several values, no azp", verifyUnnamed(le.sign(t, c.With("aud", []string{forgedClient, platformClientID}), platformtest.SignOptions{}), nonce), invalid(platform.ReasonAZPMissing)},
		{"claims naming no issuer", verifyUnnamed(le.sign(t, c.Without("iss"), platformtest.SignOptions{}), nonce), invalid(platform.ReasonIssuerMismatch)},
		{"claims that are not JSON", verifyUnnamed("bm90IGpzb24.bm90IGpzb24.", nonce), invalid(platform.ReasonMalformedToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series := verificationSeries(t, v.metrics)
			_, err := le.verify(v, tc.req)
			checkRefusal(t, err, tc.want)
			want := map[string]float64{}
			if tc.want.code == codes.InvalidArgument && tc.want.reason != server.ReasonInvalidRequest {
				want[verifications(tc.want.reason)] = 1
			}
			checkMoved(t, v.metrics, series, want)
		})
	}
	if n := l.JWKSFetches() - fetches; n != 0 {
		t.Errorf("refused requests fetched the platform's key set %d times", n)
	}

	// None of the refusals used the nonce up.
	resp, err := le.verify(v, verifyByID(id, valid, nonce))
	if err != nil {
		t.Fatalf("the valid launch after the refusals: %v", err)
	}
	if resp.GetDeploymentId() != l.DeploymentID {
		t.Errorf("deployment_id %q, want %q", resp.GetDeploymentId(), l.DeploymentID)
	}

	// A change of the registration's deployment ids holds for the next
	// launch; none listed allows any.
	setDeployments := func(ids ...string) {
		t.Helper()
		if _, err := v.keys.UpdateRegistration(e.as("manager"), &ltikeysv1.UpdateRegistrationRequest{
			Registration: &ltikeysv1.Registration{Id: id, DeploymentIds: ids},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"deployment_ids"}},
		}); err != nil {
			t.Fatalf("UpdateRegistration deployment_ids: %v", err)
		}
	}
	setDeployments(le.otherDeployment)
	c, nonce = le.claims()
	_, err = le.verify(v, verifyByID(id, le.sign(t, c, platformtest.SignOptions{}), nonce))
	checkRefusal(t, err, invalid(platform.ReasonDeploymentIDNotAllowed))
	setDeployments()
	c, nonce = le.claims()
	resp, err = le.verify(v, verifyByID(id, le.sign(t, c.With(platformtest.ClaimDeploymentID, forgedDeployment), platformtest.SignOptions{}), nonce))
	if err != nil {
		t.Fatalf("a deployment_id of a registration that lists none: %v", err)
	}
	if resp.GetDeploymentId() != forgedDeployment || len(resp.GetRegistration().GetDeploymentIds()) != 0 {
		t.Errorf("deployment_id %q, registration's %q; want the token's and none", resp.GetDeploymentId(), resp.GetRegistration().GetDeploymentIds())
	}
}

// TestVerifyPlatformTokenKeyRotation: the first token the platform signs
// with a new key has its kid fetched, and a flood of tokens with made-up
// kids costs the platform at most one fetch per cooldown.
func TestVerifyPlatformTokenKeyRotation(t *testing.T) {
	le := startLaunchEnv(t, storagetest.SQLiteURL(t), launchEnvOptions{})
	e, v, l := le.env, le.v, le.launcher
	id := le.reg.GetId()
	first, _, _ := le.launch(t, v)

	newKid := l.Rotate(t, nil, true)
	if newKid == first.GetKid() {
		t.Fatal("the rotation kept the kid")
	}
	series, fetches := verificationSeries(t, v.metrics), l.JWKSFetches()
	resp, _, _ := le.launch(t, v)
	if resp.GetKid() != newKid {
		t.Errorf("kid %q, want the new key's %q", resp.GetKid(), newKid)
	}
	if n := l.JWKSFetches() - fetches; n != 1 {
		t.Errorf("the new kid caused %d fetches, want 1", n)
	}
	checkMoved(t, v.metrics, series, map[string]float64{
		verifications(string(platform.OutcomeOK)):                   1,
		keySetFetches(platform.OutcomeOK, platform.FetchUnknownKID): 1,
	})

	// A cooldown later, 1,000 tokens with made-up kids, 8 at a time,
	// within one cooldown.
	e.clock.Advance(platform.DefaultCooldown)
	c, nonce := le.claims()
	valid := le.sign(t, c, platformtest.SignOptions{})
	const flood = 1000
	tokens := make([]string, flood)
	for i := range tokens {
		tokens[i] = le.withKid(t, valid, "kid-"+rand.Text())
	}
	series, fetches = verificationSeries(t, v.metrics), l.JWKSFetches()
	errs := make([]error, flood)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < flood; i += 8 {
				_, errs[i] = le.verify(v, verifyByID(id, tokens[i], nonce))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("token %d with a made-up kid: %v, want InvalidArgument", i, err)
		}
		checkRefusal(t, err, invalid(platform.ReasonKIDUnknown))
	}
	extra := l.JWKSFetches() - fetches
	if extra > 1 {
		t.Errorf("%d tokens with made-up kids caused %d fetches within one cooldown, want at most 1", flood, extra)
	}
	checkMoved(t, v.metrics, series, map[string]float64{
		verifications(platform.ReasonKIDUnknown):                    flood,
		keySetFetches(platform.OutcomeOK, platform.FetchUnknownKID): float64(extra),
	})

	// The launch they copied still verifies, from memory.
	fetches = l.JWKSFetches()
	if _, err := le.verify(v, verifyByID(id, valid, nonce)); err != nil {
		t.Errorf("the launch after the flood: %v", err)
	}
	if n := l.JWKSFetches() - fetches; n != 0 {
		t.Errorf("a known kid after the flood caused %d fetches", n)
	}
	// A cooldown after, a made-up kid may cause a fetch again.
	e.clock.Advance(platform.DefaultCooldown)
	c, nonce = le.claims()
	_, err := le.verify(v, verifyByID(id, le.withKid(t, le.sign(t, c, platformtest.SignOptions{}), "kid-"+rand.Text()), nonce))
	checkRefusal(t, err, invalid(platform.ReasonKIDUnknown))
	if n := l.JWKSFetches() - fetches; n != 1 {
		t.Errorf("a made-up kid a cooldown later caused %d fetches, want 1", n)
	}
}

// TestVerifyPlatformTokenJWKSOutage takes the platform's key set down:
// the last good set keeps verifying, stale, up to max-stale past its
// expiry, with one warning; then verification is UNAVAILABLE with a
// RetryInfo until the key set is back.
func TestVerifyPlatformTokenJWKSOutage(t *testing.T) {
	le := startLaunchEnv(t, storagetest.SQLiteURL(t), launchEnvOptions{})
	e, v, l := le.env, le.v, le.launcher
	id := le.reg.GetId()
	// Fetched at t0, without Cache-Control: fresh for DefaultFreshness.
	t0 := e.clock.Now()
	le.launch(t, v)
	l.SetOutage(true)

	// refreshFailed waits until the background refreshes that failed are
	// n more than before.
	refreshFailed := func(before float64, n float64) {
		t.Helper()
		series := keySetFetches(platform.OutcomeUnavailable, platform.FetchRefresh)
		deadline := time.Now().Add(10 * time.Second)
		for metricValue(t, v.metrics, series) < before+n {
			if time.Now().After(deadline) {
				t.Fatalf("%s stayed at %v, want %v", series, metricValue(t, v.metrics, series), before+n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	stale := func() float64 {
		return metricValue(t, v.metrics, `ltikeys_platform_jwks_age_seconds_count{stale="true"}`)
	}
	refreshes := metricValue(t, v.metrics, keySetFetches(platform.OutcomeUnavailable, platform.FetchRefresh))
	for i, tc := range []struct {
		name  string
		at    time.Duration
		stale bool
	}{
		{"past three quarters of its freshness", platform.DefaultFreshness*3/4 + time.Second, false},
		{"past its expiry", platform.DefaultFreshness + time.Minute, true},
		{"a minute before max-stale", platform.DefaultFreshness + platform.DefaultMaxStale - time.Minute, true},
	} {
		e.clock.Set(t0.Add(tc.at))
		staleBefore := stale()
		// Answered from the last good set at once; a refresh starts in the
		// background, and fails.
		if resp, _, _ := le.launch(t, v); resp.GetKid() != l.KeyID() {
			t.Errorf("%s: kid %q, want %q", tc.name, resp.GetKid(), l.KeyID())
		}
		if got := stale() - staleBefore; tc.stale && got != 1 || !tc.stale && got != 0 {
			t.Errorf("%s: %v stale keys served", tc.name, got)
		}
		refreshFailed(refreshes, float64(i+1))
	}
	if n := strings.Count(e.logs.String(), `"msg":"platform key set fetches are failing"`); n != 1 {
		t.Errorf("%d warnings of failing fetches, want 1 for the outage", n)
	}

	// Past max-stale, the set is gone: the fetch the caller waits for
	// fails, and the next lookups, within its cooldown, are told when the
	// next may be made.
	e.clock.Set(t0.Add(platform.DefaultFreshness + platform.DefaultMaxStale + time.Second))
	c, nonce := le.claims()
	token := le.sign(t, c, platformtest.SignOptions{})
	series, fetches := verificationSeries(t, v.metrics), l.JWKSFetches()
	_, err := le.verify(v, verifyByID(id, token, nonce))
	checkRefusal(t, err, verifyRefusal{code: codes.Unavailable, reason: server.ReasonPlatformKeysUnavailable, retry: server.UnavailableRetryDelay})
	if n := l.JWKSFetches() - fetches; n < 1 {
		t.Error("no fetch of the platform's key set was attempted")
	}
	fetches = l.JWKSFetches()
	e.clock.Advance(10 * time.Second)
	_, err = le.verify(v, verifyByID(id, token, nonce))
	checkRefusal(t, err, verifyRefusal{code: codes.Unavailable, reason: server.ReasonPlatformKeysUnavailable, retry: platform.DefaultCooldown - 10*time.Second})
	if n := l.JWKSFetches() - fetches; n != 0 {
		t.Errorf("%d fetches within the cooldown of a failed one", n)
	}
	checkMoved(t, v.metrics, series, map[string]float64{
		verifications(string(platform.OutcomeUnavailable)):             2,
		keySetFetches(platform.OutcomeUnavailable, platform.FetchCold): 1,
	})

	// Back, and a cooldown later, the same launch verifies: the refusals
	// did not use its nonce.
	l.SetOutage(false)
	e.clock.Advance(platform.DefaultCooldown)
	series = verificationSeries(t, v.metrics)
	if _, err := le.verify(v, verifyByID(id, token, nonce)); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	checkMoved(t, v.metrics, series, map[string]float64{
		verifications(string(platform.OutcomeOK)):             1,
		keySetFetches(platform.OutcomeOK, platform.FetchCold): 1,
	})
}

// TestVerifyPlatformTokenAccessControl: the platform.verify scope allows
// VerifyPlatformToken and nothing else, and no other scope allows it.
func TestVerifyPlatformTokenAccessControl(t *testing.T) {
	le := startLaunchEnv(t, storagetest.SQLiteURL(t), launchEnvOptions{})
	e, v, l := le.env, le.v, le.launcher
	id := le.reg.GetId()
	c, nonce := le.claims()
	req := verifyByID(id, le.sign(t, c, platformtest.SignOptions{}), nonce)

	fetches := l.JWKSFetches()
	for _, tok := range platformEnvTokens {
		if tok.name == "verifier" {
			continue
		}
		if _, err := v.keys.VerifyPlatformToken(e.as(tok.name), req); status.Code(err) != codes.PermissionDenied {
			t.Errorf("VerifyPlatformToken as %s (%v): %v, want PermissionDenied", tok.name, tok.scopes, err)
		}
	}
	if _, err := v.keys.VerifyPlatformToken(t.Context(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("VerifyPlatformToken without a token: %v, want Unauthenticated", err)
	}
	if n := l.JWKSFetches() - fetches; n != 0 {
		t.Errorf("refused callers caused %d fetches of the platform's key set", n)
	}
	// The refused calls used up nothing: the launch verifies.
	if _, err := le.verify(v, req); err != nil {
		t.Fatalf("with platform.verify: %v", err)
	}
	for _, m := range keyServiceMethods(t) {
		if fullMethod(m) == ltikeysv1.KeyService_VerifyPlatformToken_FullMethodName {
			continue
		}
		if err := invoke(e.as("verifier"), v.conn, m, dynamicpb.NewMessage(m.Input())); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s with only platform.verify: %v, want PermissionDenied", m.Name(), err)
		}
	}
	// A KeyService without a platform key cache does not verify.
	if _, err := e.keys.VerifyPlatformToken(e.as("verifier"), req); status.Code(err) != codes.Unimplemented {
		t.Errorf("VerifyPlatformToken without a platform key cache: %v, want Unimplemented", err)
	}

	// The audit names the caller and the registration of each call.
	checkScopeAudit(t, e.logs.String(), ltikeysv1.KeyService_VerifyPlatformToken_FullMethodName, "verifier", id)
}
