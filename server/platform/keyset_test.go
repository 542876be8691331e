package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

func TestKeySetRotation(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	oldToken := f.launch(t, nil)
	f.mustVerify(t, oldToken)

	newKID := f.l.Rotate(t, launchKey(t, 1), false)
	// Right after the first fetch: a new kid is fetched for at once.
	f.clock.Add(time.Second)
	got := f.mustVerify(t, f.launch(t, nil))
	if got.KeyID != newKID {
		t.Errorf("verified with kid %q, want the new %q", got.KeyID, newKID)
	}
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d key set fetches, want 2", n)
	}
	if got := f.obs.reason(platform.FetchUnknownKID); got != 1 {
		t.Errorf("%d unknown-kid fetches reported, want 1", got)
	}
	// The old key left the set: its tokens fail, without another fetch
	// within the cooldown.
	if _, err := f.verify(t, oldToken); reasonOf(err) != platform.ReasonKIDUnknown {
		t.Errorf("a token of the dropped key: %v, want %s", err, platform.ReasonKIDUnknown)
	}
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d key set fetches, want still 2", n)
	}

	// A rotation that keeps the old key: both verify.
	f.clock.Add(platform.DefaultCooldown)
	keptKID := f.l.Rotate(t, launchKey(t, 2), true)
	if got := f.mustVerify(t, f.launch(t, nil)); got.KeyID != keptKID {
		t.Errorf("verified with kid %q, want %q", got.KeyID, keptKID)
	}
	tokenOfPrevious, err := f.l.SignWith(f.l.LaunchClaims(f.nonce), platformtest.SignOptions{Key: launchKey(t, 1), KeyID: newKID})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.mustVerify(t, tokenOfPrevious); got.KeyID != newKID {
		t.Errorf("verified with kid %q, want %q", got.KeyID, newKID)
	}
	if n := f.l.JWKSFetches(); n != 3 {
		t.Errorf("%d key set fetches, want 3", n)
	}
}

func TestKeySetUnknownKIDFlood(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	valid := f.launch(t, nil)
	f.mustVerify(t, valid)
	f.clock.Add(time.Minute)

	flood := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for range 1000 {
			token := withKeyID(t, valid, randomText(t))
			wg.Go(func() {
				_, err := f.verify(t, token)
				if reasonOf(err) != platform.ReasonKIDUnknown {
					errs <- fmt.Errorf("a random kid: %v, want %s", err, platform.ReasonKIDUnknown)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
			break
		}
	}
	flood()
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d key set fetches after 1,000 random kids, want 2 (one extra)", n)
	}
	// The set still answers for the real kid, without a fetch.
	f.mustVerify(t, valid)
	f.clock.Add(platform.DefaultCooldown - time.Second)
	flood()
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d key set fetches after another 1,000 within the cooldown, want still 2", n)
	}
	f.clock.Add(time.Second)
	flood()
	if n := f.l.JWKSFetches(); n != 3 {
		t.Errorf("%d key set fetches after a cooldown, want 3", n)
	}
}

func TestKeySetOutage(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	f.l.SetJWKSAnswer(platformtest.JWKSAnswer{CacheControl: "max-age=600"})
	expires := f.clock.Now().Add(10 * time.Minute)
	f.mustVerify(t, f.launch(t, nil))
	f.obs.drain()

	f.l.SetOutage(true)
	// Past its expiry: the caller waits for a fetch, which fails, and the
	// last good set answers.
	f.clock.Add(11 * time.Minute)
	f.mustVerify(t, f.launch(t, nil))
	if out := f.obs.waitFetch(t); out != platform.OutcomeUnavailable {
		t.Errorf("fetch outcome %s, want %s", out, platform.OutcomeUnavailable)
	}
	if _, stale := f.obs.servedCounts(); stale != 1 {
		t.Errorf("%d stale keys served, want 1", stale)
	}
	fetches := f.l.JWKSFetches()

	// Within the cooldown: served stale at once, no fetch.
	for range 20 {
		f.mustVerify(t, f.launch(t, nil))
	}
	if n := f.l.JWKSFetches(); n != fetches {
		t.Errorf("%d fetches within the cooldown of a failure, want %d", n, fetches)
	}
	// After it: one retry in the background, the caller served stale.
	f.clock.Add(platform.DefaultCooldown)
	f.mustVerify(t, f.launch(t, nil))
	if out := f.obs.waitFetch(t); out != platform.OutcomeUnavailable {
		t.Errorf("retry outcome %s, want %s", out, platform.OutcomeUnavailable)
	}
	if got := f.obs.reason(platform.FetchRefresh); got != 1 {
		t.Errorf("%d background fetches, want 1", got)
	}
	// An unknown kid during the outage: the platform may have it, so the
	// answer is unavailable, not a verification failure.
	f.clock.Add(platform.DefaultCooldown)
	unknown := withKeyID(t, f.launch(t, nil), "kid-the-cache-never-saw")
	_, err := f.verify(t, unknown)
	if !errors.Is(err, platform.ErrUnavailable) || errors.Is(err, platform.ErrInvalidToken) {
		t.Errorf("an unknown kid during an outage: %v, want an unavailable error", err)
	}
	f.obs.waitFetch(t)

	// Up to MaxStale past the expiry it still serves.
	f.clock.Add(expires.Add(platform.DefaultMaxStale - time.Second).Sub(f.clock.Now()))
	f.mustVerify(t, f.launch(t, nil))
	f.obs.waitFetch(t)
	if w := f.warnings(); w != 1 {
		t.Errorf("%d warnings logged in one failure episode, want 1:\n%s", w, f.logs.String())
	}

	// Past MaxStale: nothing to serve.
	f.clock.Add(time.Second)
	_, err = f.verify(t, f.launch(t, nil))
	var ue *platform.UnavailableError
	if !errors.As(err, &ue) || errors.Is(err, platform.ErrInvalidToken) {
		t.Fatalf("past MaxStale: %v, want an *UnavailableError", err)
	}
	// That was within the cooldown of the last attempt, a second before:
	// no fetch, and a RetryAfter until the next may be made.
	if ue.RetryAfter != platform.DefaultCooldown-time.Second {
		t.Errorf("RetryAfter %v, want %v", ue.RetryAfter, platform.DefaultCooldown-time.Second)
	}
	fetches = f.l.JWKSFetches()
	f.clock.Add(10 * time.Second)
	_, err = f.verify(t, f.launch(t, nil))
	if !errors.As(err, &ue) || ue.RetryAfter != platform.DefaultCooldown-11*time.Second {
		t.Errorf("within the cooldown: %v (RetryAfter %v), want unavailable with RetryAfter %v", err, ue.RetryAfter, platform.DefaultCooldown-11*time.Second)
	}
	if n := f.l.JWKSFetches(); n != fetches {
		t.Errorf("%d fetches within the cooldown, want %d", n, fetches)
	}

	// The platform comes back: after the cooldown, all is well, and a new
	// outage is a new episode, with its own warning.
	f.l.SetOutage(false)
	f.clock.Add(platform.DefaultCooldown)
	f.mustVerify(t, f.launch(t, nil))
	f.l.SetOutage(true)
	f.clock.Add(11 * time.Minute)
	f.mustVerify(t, f.launch(t, nil))
	if w := f.warnings(); w != 2 {
		t.Errorf("%d warnings after two failure episodes, want 2:\n%s", w, f.logs.String())
	}
	checkNoSecrets(t, []string{f.nonce, f.l.DeploymentID, f.l.Issuer, f.l.ClientID}, f.logs.String())
}

func TestKeySetFreshness(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer platformtest.JWKSAnswer
		want   time.Duration
	}{
		{"max-age 10 s is read as 5 min", platformtest.JWKSAnswer{CacheControl: "max-age=10"}, 5 * time.Minute},
		{"max-age 7 days is read as 24 h", platformtest.JWKSAnswer{CacheControl: "public, max-age=604800"}, 24 * time.Hour},
		{"no Cache-Control is 1 h", platformtest.JWKSAnswer{}, time.Hour},
		{"max-age 2 h", platformtest.JWKSAnswer{CacheControl: "max-age=7200, must-revalidate"}, 2 * time.Hour},
		{"max-age less Age", platformtest.JWKSAnswer{CacheControl: "max-age=3600", Header: http.Header{"Age": {"1200"}}}, 40 * time.Minute},
		{"no-store is 5 min", platformtest.JWKSAnswer{CacheControl: "no-store"}, 5 * time.Minute},
		{"a malformed max-age is ignored", platformtest.JWKSAnswer{CacheControl: "max-age=soon"}, time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newLaunchFixture(t, launchOptions{})
			f.l.SetJWKSAnswer(c.answer)
			start := f.clock.Now()
			f.mustVerify(t, f.launch(t, nil))
			f.obs.waitFetch(t)

			// Three quarters into its freshness, a use refreshes it in the
			// background; not before.
			refreshAt := start.Add(c.want * 3 / 4)
			f.clock.Add(refreshAt.Sub(f.clock.Now()) - time.Second)
			f.mustVerify(t, f.launch(t, nil))
			if n := f.l.JWKSFetches(); n != 1 {
				t.Fatalf("%d fetches a second before the refresh point, want 1", n)
			}
			// The refresh fails, so the set's expiry shows: served fresh
			// until it, stale after.
			f.l.SetOutage(true)
			f.clock.Add(2 * time.Second)
			f.mustVerify(t, f.launch(t, nil))
			// (The HTTP client may try a dropped connection twice.)
			if out := f.obs.waitFetch(t); out != platform.OutcomeUnavailable || f.l.JWKSFetches() < 2 {
				t.Fatalf("no background refresh at the refresh point (outcome %s, %d fetches)", out, f.l.JWKSFetches())
			}
			f.clock.Add(start.Add(c.want).Sub(f.clock.Now()) - time.Second)
			f.mustVerify(t, f.launch(t, nil))
			if _, stale := f.obs.servedCounts(); stale != 0 {
				t.Errorf("served stale a second before %v", c.want)
			}
			f.clock.Add(2 * time.Second)
			f.mustVerify(t, f.launch(t, nil))
			if _, stale := f.obs.servedCounts(); stale != 1 {
				t.Errorf("not served stale a second after %v", c.want)
			}
		})
	}
}

func TestKeySetBackgroundRefresh(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	oldKID := f.l.KeyID()
	f.mustVerify(t, f.launch(t, nil))
	f.obs.drain()
	newKID := f.l.Rotate(t, launchKey(t, 1), true)
	// Tokens of the first key, which the cached set has.
	oldToken := func() string {
		tok, err := f.l.SignWith(f.l.LaunchClaims(f.nonce), platformtest.SignOptions{Key: launchKey(t, 0), KeyID: oldKID})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// Past the refresh point the set still answers at once while its
	// refresh, held by the platform, is in flight.
	hold := make(chan struct{})
	arrived := make(chan struct{}, 10)
	f.l.SetJWKSAnswer(platformtest.JWKSAnswer{Hold: hold, Arrived: arrived})
	f.clock.Add(46 * time.Minute)
	token := oldToken()
	f.mustVerify(t, token)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh began")
	}
	for range 10 {
		f.mustVerify(t, token)
	}
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d fetches with a refresh in flight, want 2", n)
	}
	close(hold)
	if out := f.obs.waitFetch(t); out != platform.OutcomeOK {
		t.Fatalf("refresh outcome %s", out)
	}
	if got := f.obs.reason(platform.FetchRefresh); got != 1 {
		t.Errorf("%d refreshes reported, want 1", got)
	}

	// The refreshed set holds the new key and is fresh past the first
	// set's expiry: no fetch, nothing stale.
	f.clock.Add(20 * time.Minute)
	if got := f.mustVerify(t, f.launch(t, nil)); got.KeyID != newKID {
		t.Errorf("kid %q, want %q", got.KeyID, newKID)
	}
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	if _, stale := f.obs.servedCounts(); stale != 0 {
		t.Errorf("%d stale keys served, want 0", stale)
	}
}

func TestKeySetConcurrentColdFetch(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	hold := make(chan struct{})
	f.l.SetJWKSAnswer(platformtest.JWKSAnswer{Hold: hold})
	token := f.launch(t, nil)

	const callers = 50
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := f.verify(t, token)
			errs <- err
		}()
	}
	waitFor(t, func() bool { return platform.Waiting(f.cache, f.l.JWKSURL) == callers })
	close(hold)
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("VerifyToken: %v", err)
		}
	}
	if n := f.l.JWKSFetches(); n != 1 {
		t.Errorf("%d fetches for %d concurrent cold callers, want 1", n, callers)
	}
}

func TestKeySetCallerGivesUp(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	hold := make(chan struct{})
	f.l.SetJWKSAnswer(platformtest.JWKSAnswer{Hold: hold})
	token := f.launch(t, nil)

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := platform.VerifyToken(ctx, token, f.cache.Source(f.l.JWKSURL), f.want)
		first <- err
	}()
	second := make(chan error, 1)
	go func() {
		_, err := f.verify(t, token)
		second <- err
	}()
	waitFor(t, func() bool { return platform.Waiting(f.cache, f.l.JWKSURL) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up: %v, want context.Canceled", err)
	}
	close(hold)
	if err := <-second; err != nil {
		t.Errorf("the caller that waited: %v", err)
	}
}

func TestKeySetFetchFailures(t *testing.T) {
	rsaKey := func(kid string, edit func(map[string]any)) map[string]any {
		var m map[string]any
		b, err := json.Marshal(jose.JSONWebKey{Key: &launchKey(t, 0).PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		return m
	}
	set := func(keys ...map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"keys": keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var many []map[string]any
	for i := range platform.DefaultMaxKeys + 1 {
		many = append(many, rsaKey(fmt.Sprintf("k%d", i), nil))
	}
	for _, c := range []struct {
		name    string
		answer  platformtest.JWKSAnswer
		outage  bool
		outcome platform.Outcome
		is      error
	}{
		{"500", platformtest.JWKSAnswer{Status: http.StatusInternalServerError}, false, platform.OutcomeUnavailable, nil},
		{"404", platformtest.JWKSAnswer{Status: http.StatusNotFound}, false, platform.OutcomeUnavailable, nil},
		{"slow", platformtest.JWKSAnswer{Delay: time.Minute}, false, platform.OutcomeUnavailable, nil},
		{"outage", platformtest.JWKSAnswer{}, true, platform.OutcomeUnavailable, nil},
		{"not JSON", platformtest.JWKSAnswer{Body: []byte("<html>")}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"a JSON array", platformtest.JWKSAnswer{Body: []byte("[]")}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"no keys member", platformtest.JWKSAnswer{Body: []byte(`{"key":[]}`)}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"keys twice", platformtest.JWKSAnswer{Body: []byte(`{"keys":[],"keys":[]}`)}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"no usable key", platformtest.JWKSAnswer{Body: set(
			rsaKey("enc", func(m map[string]any) { m["use"] = "enc" }),
			rsaKey("", func(m map[string]any) { delete(m, "kid") }),
			map[string]any{"kty": "oct", "kid": "hmac", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
		)}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"too many keys", platformtest.JWKSAnswer{Body: set(many...)}, false, platform.OutcomeMalformed, platform.ErrMalformed},
		{"too large", platformtest.JWKSAnswer{Body: []byte(`{"keys":[],"x":"` + strings.Repeat("x", 64<<10) + `"}`)}, false, platform.OutcomeMalformed, platform.ErrResponseTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newLaunchFixture(t, launchOptions{http: platform.HTTPOptions{Timeout: 200 * time.Millisecond}})
			f.l.SetJWKSAnswer(c.answer)
			f.l.SetOutage(c.outage)
			_, err := f.verify(t, f.launch(t, nil))
			if !errors.Is(err, platform.ErrUnavailable) || errors.Is(err, platform.ErrInvalidToken) {
				t.Fatalf("VerifyToken: %v, want an unavailable error", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v does not match %v", err, c.is)
			}
			if got := f.obs.outcome(c.outcome); got != 1 {
				t.Errorf("%d fetches of outcome %s reported, want 1", got, c.outcome)
			}
			if w := f.warnings(); w != 1 {
				t.Errorf("%d warnings, want 1", w)
			}
			// Within the cooldown the error is remembered; after it the
			// next caller tries again, and succeeds once the platform
			// is well.
			f.clock.Add(time.Second)
			if _, err := f.verify(t, f.launch(t, nil)); !errors.Is(err, platform.ErrUnavailable) {
				t.Errorf("within the cooldown: %v", err)
			}
			if n := f.l.JWKSFetches(); n != 1 {
				t.Errorf("%d fetches within the cooldown, want 1", n)
			}
			f.l.SetJWKSAnswer(platformtest.JWKSAnswer{})
			f.l.SetOutage(false)
			f.clock.Add(platform.DefaultCooldown)
			f.mustVerify(t, f.launch(t, nil))
			if n := f.l.JWKSFetches(); n != 2 {
				t.Errorf("%d fetches, want 2", n)
			}
			checkNoSecrets(t, []string{f.nonce, f.l.DeploymentID, f.l.Issuer}, append(describe(err), f.logs.String())...)
		})
	}
}

func TestKeySetStrictParsing(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	good := f.l.KeySet().Keys[0]
	entry := func(k jose.JSONWebKey, edit func(map[string]any)) map[string]any {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		return m
	}
	private := launchKey(t, 1)
	keys := []map[string]any{
		entry(good, nil),
		entry(good, func(m map[string]any) { m["kid"] = "enc"; m["use"] = "enc" }),
		entry(good, func(m map[string]any) { m["kid"] = "ops-sign-only"; m["key_ops"] = []string{"sign"} }),
		entry(good, func(m map[string]any) { m["kid"] = "ops-verify"; m["key_ops"] = []string{"verify"} }),
		entry(good, func(m map[string]any) { m["kid"] = "alg-es256"; m["alg"] = "ES256" }),
		entry(good, func(m map[string]any) { m["kid"] = "alg-hs256"; m["alg"] = "HS256" }),
		entry(good, func(m map[string]any) { m["kid"] = "dup" }),
		entry(good, func(m map[string]any) { m["kid"] = "dup" }),
		entry(good, func(m map[string]any) { m["kid"] = "short"; m["n"] = m["n"].(string)[:170] }),
		entry(jose.JSONWebKey{Key: private, KeyID: "private", Algorithm: "RS256", Use: "sig"}, nil),
		{"kty": "oct", "kid": "hmac", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
		{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
		{"kty": "RSA", "kid": "garbage", "n": 5},
	}
	body, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	f.l.SetJWKSAnswer(platformtest.JWKSAnswer{Body: body})
	for _, c := range []struct {
		kid    string
		usable bool
	}{
		{good.KeyID, true},
		{"ops-verify", true},
		{"enc", false},
		{"ops-sign-only", false},
		{"alg-es256", false},
		{"alg-hs256", false},
		{"dup", false},
		{"short", false},
		{"private", false},
		{"hmac", false},
		{"ec", false},
		{"garbage", false},
	} {
		f.clock.Add(platform.DefaultCooldown) // each unknown kid may refetch
		_, err := f.cache.Key(t.Context(), f.l.JWKSURL, c.kid)
		switch {
		case c.usable && err != nil:
			t.Errorf("kid %s: %v, want the key", c.kid, err)
		case !c.usable && !errors.Is(err, platform.ErrUnknownKey):
			t.Errorf("kid %s: %v, want ErrUnknownKey", c.kid, err)
		}
	}
}

func TestKeySetRefused(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{http: platform.HTTPOptions{
		Resolver: platformtest.Resolver{"lms.internal": {netip.MustParseAddr("10.0.0.7")}},
	}})
	for _, uri := range []string{
		"http://lms.example/jwks",
		"ftp://lms.example/jwks",
		"https://user:pass@lms.example/jwks",
		"https://lms.internal/jwks",
		"::not a url",
	} {
		_, err := f.cache.Key(t.Context(), uri, "kid-1")
		if !errors.Is(err, platform.ErrRefused) || errors.Is(err, platform.ErrUnavailable) {
			t.Errorf("Key(%q): %v, want an error matching ErrRefused only", uri, err)
		}
	}
	if got := f.obs.outcome(platform.OutcomeRefused); got != 1 {
		t.Errorf("%d refused fetches reported, want 1 (the private address)", got)
	}
}

func TestKeySetEviction(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{cache: platform.KeySetOptions{MaxKeySets: 2}})
	kid := f.l.KeyID()
	uris := []string{f.l.JWKSURL + "?r=1", f.l.JWKSURL + "?r=2", f.l.JWKSURL + "?r=3"}
	for i, uri := range uris {
		f.clock.Add(time.Second)
		if _, err := f.cache.Key(t.Context(), uri, kid); err != nil {
			t.Fatal(err)
		}
		if n := f.l.JWKSFetches(); n != i+1 {
			t.Fatalf("%d fetches, want %d", n, i+1)
		}
	}
	// The second and third are cached; the first, used least recently,
	// was forgotten.
	for _, uri := range uris[1:] {
		if _, err := f.cache.Key(t.Context(), uri, kid); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.l.JWKSFetches(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
	if _, err := f.cache.Key(t.Context(), uris[0], kid); err != nil {
		t.Fatal(err)
	}
	if n := f.l.JWKSFetches(); n != 4 {
		t.Errorf("%d fetches, want 4: the first URI fetched again", n)
	}
}

func TestNewKeySetCacheOptions(t *testing.T) {
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]platform.KeySetOptions{
		"no client":          {},
		"negative cooldown":  {HTTPClient: hc, Cooldown: -time.Second},
		"negative max stale": {HTTPClient: hc, MaxStale: -time.Second},
		"default below min":  {HTTPClient: hc, MinFreshness: 2 * time.Hour},
		"default above max":  {HTTPClient: hc, MaxFreshness: time.Minute, MinFreshness: time.Second},
		"negative max keys":  {HTTPClient: hc, MaxKeys: -1},
	} {
		if _, err := platform.NewKeySetCache(o); err == nil {
			t.Errorf("%s: NewKeySetCache accepted it", name)
		}
	}
	if _, err := platform.NewKeySetCache(platform.KeySetOptions{HTTPClient: hc}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// waitFor waits until cond holds, failing the test after a while.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}
