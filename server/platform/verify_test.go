package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

func TestVerifyTokenValidLaunch(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	claims := f.l.LaunchClaims(f.nonce)
	token, err := f.l.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	got := f.mustVerify(t, token)

	want := platform.Claims{
		Issuer:       f.l.Issuer,
		Audience:     []string{f.l.ClientID},
		Subject:      claims["sub"].(string),
		Nonce:        f.nonce,
		DeploymentID: f.l.DeploymentID,
		MessageType:  "LtiResourceLinkRequest",
		Version:      "1.3.0",
		ExpiresAt:    time.Unix(claims["exp"].(int64), 0).UTC(),
		IssuedAt:     time.Unix(claims["iat"].(int64), 0).UTC(),
		KeyID:        f.l.KeyID(),
		Algorithm:    "RS256",
	}
	if got.Issuer != want.Issuer || !slices.Equal(got.Audience, want.Audience) || got.AuthorizedParty != "" ||
		got.Subject != want.Subject || got.Nonce != want.Nonce || got.DeploymentID != want.DeploymentID ||
		got.MessageType != want.MessageType || got.Version != want.Version || got.KeyID != want.KeyID ||
		got.Algorithm != want.Algorithm || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.IssuedAt.Equal(want.IssuedAt) {
		t.Errorf("claims\n got %+v\nwant %+v", *got, want)
	}
	var payload map[string]any
	if err := json.Unmarshal(got.JSON, &payload); err != nil {
		t.Fatalf("Claims.JSON: %v", err)
	}
	if payload["email"] != "ada@example.edu" || payload[platformtest.ClaimTargetLinkURI] != "https://tool.example/launch" {
		t.Errorf("Claims.JSON is not the signed payload: %s", got.JSON)
	}
	for _, s := range []string{got.String(), strings.ReplaceAll(got.GoString(), " ", "")} {
		for _, secret := range []string{f.nonce, want.Subject, "ada@example.edu", f.l.DeploymentID} {
			if strings.Contains(s, secret) {
				t.Errorf("Claims printed %q, which holds a claim value", s)
			}
		}
	}

	if n := f.l.JWKSFetches(); n != 1 {
		t.Errorf("%d key set fetches for the first token, want 1", n)
	}
	// Warm: no fetch at all.
	for range 5 {
		f.mustVerify(t, f.launch(t, nil))
	}
	if n := f.l.JWKSFetches(); n != 1 {
		t.Errorf("%d key set fetches after six tokens, want 1", n)
	}
	if got := f.obs.reason(platform.FetchCold); got != 1 {
		t.Errorf("%d cold fetches reported, want 1", got)
	}
	if served, stale := f.obs.servedCounts(); served != 6 || stale != 0 {
		t.Errorf("%d keys served (%d stale), want 6 (0)", served, stale)
	}
}

func TestVerifyTokenAcceptsWithinTheRules(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	now := f.clock.Now()
	for _, c := range []struct {
		name string
		edit func(platformtest.Claims) platformtest.Claims
		want func(*platform.Expectations)
	}{
		{"exp just past, within the leeway", func(c platformtest.Claims) platformtest.Claims {
			return c.With("exp", now.Add(-30*time.Second).Unix())
		}, nil},
		{"iat just ahead, within the leeway", func(c platformtest.Claims) platformtest.Claims {
			return c.With("iat", now.Add(30*time.Second).Unix())
		}, nil},
		{"fractional NumericDates", func(c platformtest.Claims) platformtest.Claims {
			return c.With("exp", float64(now.Add(time.Minute).Unix())+0.5).With("iat", float64(now.Unix())-0.25)
		}, nil},
		{"nbf in the past", func(c platformtest.Claims) platformtest.Claims {
			return c.With("nbf", now.Add(-time.Minute).Unix())
		}, nil},
		{"aud an array of one", func(c platformtest.Claims) platformtest.Claims {
			return c.With("aud", []string{f.l.ClientID})
		}, nil},
		{"aud several, azp the client_id", func(c platformtest.Claims) platformtest.Claims {
			return c.With("aud", []string{"another-tool", f.l.ClientID}).With("azp", f.l.ClientID)
		}, nil},
		{"single aud, azp the client_id", func(c platformtest.Claims) platformtest.Claims {
			return c.With("azp", f.l.ClientID)
		}, nil},
		{"deployment_id among those allowed", nil, func(w *platform.Expectations) {
			w.DeploymentIDs = []string{"other", f.l.DeploymentID}
		}},
		{"a larger leeway", func(c platformtest.Claims) platformtest.Claims {
			return c.With("exp", now.Add(-4*time.Minute).Unix())
		}, func(w *platform.Expectations) { w.Leeway = 5 * time.Minute }},
		{"a deep-linking request", func(c platformtest.Claims) platformtest.Claims {
			return c.With(platformtest.ClaimMessageType, "LtiDeepLinkingRequest")
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := f.want
			if c.want != nil {
				c.want(&want)
			}
			if _, err := platform.VerifyToken(t.Context(), f.launch(t, c.edit), f.cache.Source(f.l.JWKSURL), want); err != nil {
				t.Errorf("VerifyToken: %v", err)
			}
		})
	}
}

func TestVerifyTokenRejects(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	now := f.clock.Now()
	// must is for signing, which does not fail; t.Errorf marks the whole
	// test failed from any subtest.
	must := func(s string, err error) string {
		if err != nil {
			t.Errorf("signing: %v", err)
		}
		return s
	}
	claim := func(name string, v any) func(*testing.T) string {
		return func(t *testing.T) string {
			return f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.With(name, v) })
		}
	}
	without := func(name string) func(*testing.T) string {
		return func(t *testing.T) string {
			return f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.Without(name) })
		}
	}
	valid := func() platformtest.Claims { return f.l.LaunchClaims(f.nonce) }
	unpublished := launchKey(t, 1)

	cases := []struct {
		name   string
		token  func(*testing.T) string
		want   func(*platform.Expectations)
		reason string
	}{
		{"empty", func(*testing.T) string { return "" }, nil, platform.ReasonMalformedToken},
		{"not a JWS", func(*testing.T) string { return "not.a.jws" }, nil, platform.ReasonMalformedToken},
		{"two parts", func(t *testing.T) string { tok := f.launch(t, nil); return tok[:strings.LastIndexByte(tok, '.')] }, nil, platform.ReasonMalformedToken},
		{"JSON serialization", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{JSON: true}))
		}, nil, platform.ReasonMalformedToken},
		{"crit header", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{Header: map[string]any{"exp": 1, "crit": []string{"exp"}}}))
		}, nil, platform.ReasonMalformedToken},
		{"larger than 64 KiB", func(t *testing.T) string {
			return f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.With("padding", strings.Repeat("x", 64<<10)) })
		}, nil, platform.ReasonMalformedToken},
		{"payload not a JSON object", func(t *testing.T) string {
			return must(f.l.SignWith(nil, platformtest.SignOptions{}))
		}, nil, platform.ReasonMalformedToken},
		{"alg none", func(t *testing.T) string { return must(f.l.SignAlgNone(valid())) }, nil, platform.ReasonAlgNotAllowed},
		{"HS256 with the public modulus as secret", func(t *testing.T) string {
			return must(f.l.SignHS256WithModulus(valid()))
		}, nil, platform.ReasonAlgNotAllowed},
		{"ES256", func(t *testing.T) string {
			tok := f.launch(t, nil)
			return replaceHeader(t, tok, "alg", "ES256")
		}, nil, platform.ReasonAlgNotAllowed},
		{"PS256 with a key published for RS256", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{Algorithm: jose.PS256}))
		}, nil, platform.ReasonAlgNotAllowed},
		{"no kid", func(t *testing.T) string { return must(f.l.SignWith(valid(), platformtest.SignOptions{NoKeyID: true})) }, nil, platform.ReasonKIDMissing},
		{"kid not in the set", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{KeyID: "no-such-kid"}))
		}, nil, platform.ReasonKIDUnknown},
		{"signed by another key under the published kid", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{Key: unpublished}))
		}, nil, platform.ReasonBadSignature},
		{"jku naming another key set is not honoured", func(t *testing.T) string {
			return must(f.l.SignWith(valid(), platformtest.SignOptions{Key: unpublished, Header: map[string]any{"jku": "https://attacker.example/jwks"}}))
		}, nil, platform.ReasonBadSignature},
		{"payload changed after signing", func(t *testing.T) string {
			tok := f.launch(t, nil)
			other := f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.With("sub", "admin") })
			p, o := strings.Split(tok, "."), strings.Split(other, ".")
			return p[0] + "." + o[1] + "." + p[2]
		}, nil, platform.ReasonBadSignature},
		{"iss another", claim("iss", "https://other-lms.example"), nil, platform.ReasonIssuerMismatch},
		{"iss with a trailing slash", claim("iss", f.l.Issuer+"/"), nil, platform.ReasonIssuerMismatch},
		{"iss missing", without("iss"), nil, platform.ReasonIssuerMismatch},
		{"iss not a string", claim("iss", 7), nil, platform.ReasonIssuerMismatch},
		{"aud another", claim("aud", "another-tool"), nil, platform.ReasonAudienceMismatch},
		{"aud an array without the client_id", claim("aud", []string{"a", "b"}), nil, platform.ReasonAudienceMismatch},
		{"aud missing", without("aud"), nil, platform.ReasonAudienceMismatch},
		{"aud empty array", claim("aud", []string{}), nil, platform.ReasonAudienceMismatch},
		{"aud a number", claim("aud", 3), nil, platform.ReasonAudienceMismatch},
		{"aud several, no azp", func(t *testing.T) string {
			return claim("aud", []string{f.l.ClientID, "another-tool"})(t)
		}, nil, platform.ReasonAZPMissing},
		{"aud several, azp another", func(t *testing.T) string {
			return f.launch(t, func(c platformtest.Claims) platformtest.Claims {
				return c.With("aud", []string{f.l.ClientID, "another-tool"}).With("azp", "another-tool")
			})
		}, nil, platform.ReasonAZPMismatch},
		{"single aud, azp another", claim("azp", "another-tool"), nil, platform.ReasonAZPMismatch},
		{"azp not a string", claim("azp", true), nil, platform.ReasonAZPMismatch},
		{"exp missing", without("exp"), nil, platform.ReasonExpMissing},
		{"exp a string", claim("exp", "2030-01-02T03:09:05Z"), nil, platform.ReasonExpMissing},
		{"exp negative", claim("exp", -1), nil, platform.ReasonExpMissing},
		{"exp past, beyond the leeway", claim("exp", now.Add(-61*time.Second).Unix()), nil, platform.ReasonExpired},
		{"exp past, beyond a smaller leeway", claim("exp", now.Add(-11*time.Second).Unix()),
			func(w *platform.Expectations) { w.Leeway = 10 * time.Second }, platform.ReasonExpired},
		{"iat missing", without("iat"), nil, platform.ReasonIATMissing},
		{"iat null", claim("iat", nil), nil, platform.ReasonIATMissing},
		{"iat in the future", claim("iat", now.Add(2*time.Minute).Unix()), nil, platform.ReasonIssuedInFuture},
		{"nbf in the future", claim("nbf", now.Add(2*time.Minute).Unix()), nil, platform.ReasonNotYetValid},
		{"nonce another", claim("nonce", "another-nonce"), nil, platform.ReasonNonceMismatch},
		{"nonce a prefix", claim("nonce", f.nonce[:len(f.nonce)-1]), nil, platform.ReasonNonceMismatch},
		{"nonce missing", without("nonce"), nil, platform.ReasonNonceMismatch},
		{"deployment_id missing", without(platformtest.ClaimDeploymentID), nil, platform.ReasonDeploymentIDMissing},
		{"deployment_id empty", claim(platformtest.ClaimDeploymentID, ""), nil, platform.ReasonDeploymentIDMissing},
		{"deployment_id a number", claim(platformtest.ClaimDeploymentID, 1), nil, platform.ReasonDeploymentIDMissing},
		{"deployment_id not allowed", func(t *testing.T) string { return f.launch(t, nil) },
			func(w *platform.Expectations) { w.DeploymentIDs = []string{"deployment-other"} }, platform.ReasonDeploymentIDNotAllowed},
		{"message_type missing", without(platformtest.ClaimMessageType), nil, platform.ReasonMessageTypeMissing},
		{"message_type empty", claim(platformtest.ClaimMessageType, ""), nil, platform.ReasonMessageTypeMissing},
		{"version missing", without(platformtest.ClaimVersion), nil, platform.ReasonVersionMissing},
		{"version an object", claim(platformtest.ClaimVersion, map[string]any{}), nil, platform.ReasonVersionMissing},
	}

	var secrets, texts []string
	secrets = append(secrets, f.nonce, f.l.DeploymentID, f.l.Issuer, f.l.ClientID, "ada@example.edu", "Ada Lovelace")
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := c.token(t)
			if len(token) > 48 {
				secrets = append(secrets, token)
			}
			want := f.want
			if c.want != nil {
				c.want(&want)
			}
			claims, err := platform.VerifyToken(t.Context(), token, f.cache.Source(f.l.JWKSURL), want)
			if err == nil {
				t.Fatalf("VerifyToken accepted it: %v", claims)
			}
			if got := reasonOf(err); got != c.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, c.reason)
			}
			if !errors.Is(err, platform.ErrInvalidToken) || errors.Is(err, platform.ErrUnavailable) {
				t.Errorf("%v: want an error matching ErrInvalidToken only", err)
			}
			covered[c.reason] = true
			texts = append(texts, describe(err)...)
		})
	}
	for _, r := range platform.Reasons {
		if !covered[r] {
			t.Errorf("no case fails with %s", r)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(platform.Reasons)))) != len(platform.Reasons) {
		t.Errorf("the reasons are not distinct: %q", platform.Reasons)
	}
	// The unknown kid caused one refetch; nothing else fetched.
	if n := f.l.JWKSFetches(); n != 2 {
		t.Errorf("%d key set fetches, want 2 (the first, and one for the unknown kid)", n)
	}
	checkNoSecrets(t, secrets, append(texts, f.logs.String())...)
}

// TestVerifyTokenKeyConfusion checks that the HS256 token of the attack
// is a real one: an HMAC verifier keyed with the modulus accepts it.
func TestVerifyTokenKeyConfusion(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	token, err := f.l.SignHS256WithModulus(f.l.LaunchClaims(f.nonce))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(f.l.PublicKey().N.Bytes()); err != nil {
		t.Fatalf("the attack token does not verify as HS256 with the modulus: %v", err)
	}
	_, err = f.verify(t, token)
	if got := reasonOf(err); got != platform.ReasonAlgNotAllowed {
		t.Errorf("reason %q (%v), want %s", got, err, platform.ReasonAlgNotAllowed)
	}
	if n := f.l.JWKSFetches(); n != 0 {
		t.Errorf("%d key set fetches for a token refused by its alg, want 0", n)
	}
}

// TestVerifyTokenKeyAlg checks the rule of the key's alg member with keys
// given directly.
func TestVerifyTokenKeyAlg(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	key := func(alg jwa.SignatureAlgorithm) jwk.Key {
		k, err := jwk.FromRaw(f.l.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if alg != "" {
			if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	for _, c := range []struct {
		name    string
		keyAlg  jwa.SignatureAlgorithm
		alg     jose.SignatureAlgorithm
		wantErr string
	}{
		{"no alg member, RS256", "", jose.RS256, ""},
		{"no alg member, PS256", "", jose.PS256, platform.ReasonAlgNotAllowed},
		{"no alg member, RS512", "", jose.RS512, platform.ReasonAlgNotAllowed},
		{"PS256 key, PS256", jwa.PS256, jose.PS256, ""},
		{"RS512 key, RS512", jwa.RS512, jose.RS512, ""},
		{"PS256 key, RS256", jwa.PS256, jose.RS256, platform.ReasonAlgNotAllowed},
		{"RS256 key, RS384", jwa.RS256, jose.RS384, platform.ReasonAlgNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := key(c.keyAlg)
			var asked string
			src := platform.KeySourceFunc(func(_ context.Context, kid string) (jwk.Key, error) {
				asked = kid
				return k, nil
			})
			token, err := f.l.SignWith(f.l.LaunchClaims(f.nonce), platformtest.SignOptions{Algorithm: c.alg})
			if err != nil {
				t.Fatal(err)
			}
			claims, err := platform.VerifyToken(t.Context(), token, src, f.want)
			if got := reasonOf(err); got != c.wantErr || (c.wantErr == "" && err != nil) {
				t.Fatalf("VerifyToken: %v, want reason %q", err, c.wantErr)
			}
			if asked != f.l.KeyID() {
				t.Errorf("the key source was asked for kid %q, want the header's %q", asked, f.l.KeyID())
			}
			if err == nil && claims.Algorithm != string(c.alg) {
				t.Errorf("Algorithm %q, want %q", claims.Algorithm, c.alg)
			}
		})
	}

	t.Run("not an RSA key", func(t *testing.T) {
		k, err := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		src := platform.KeySourceFunc(func(context.Context, string) (jwk.Key, error) { return k, nil })
		_, err = platform.VerifyToken(t.Context(), f.launch(t, nil), src, f.want)
		if got := reasonOf(err); got != platform.ReasonAlgNotAllowed {
			t.Errorf("reason %q (%v), want %s", got, err, platform.ReasonAlgNotAllowed)
		}
	})
}

func TestVerifyTokenKeySourceErrors(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	token := f.launch(t, nil)
	unavailable := &platform.UnavailableError{Reason: "the jwks_uri answered 503 Service Unavailable", StatusCode: 503}
	for _, c := range []struct {
		name string
		err  error
		is   error
	}{
		{"unavailable", unavailable, platform.ErrUnavailable},
		{"refused", platform.ErrRefused, platform.ErrRefused},
		{"the caller's context", context.Canceled, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := platform.KeySourceFunc(func(context.Context, string) (jwk.Key, error) { return nil, c.err })
			_, err := platform.VerifyToken(t.Context(), token, src, f.want)
			if !errors.Is(err, c.is) || errors.Is(err, platform.ErrInvalidToken) {
				t.Errorf("VerifyToken: %v; want the key source's error, not a verification error", err)
			}
		})
	}
	t.Run("unknown kid", func(t *testing.T) {
		src := platform.KeySourceFunc(func(context.Context, string) (jwk.Key, error) {
			return nil, platform.ErrUnknownKey
		})
		_, err := platform.VerifyToken(t.Context(), token, src, f.want)
		if got := reasonOf(err); got != platform.ReasonKIDUnknown {
			t.Errorf("reason %q (%v), want %s", got, err, platform.ReasonKIDUnknown)
		}
	})
}

func TestVerifyTokenExpectations(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	token := f.launch(t, nil)
	for name, edit := range map[string]func(*platform.Expectations){
		"no issuer":       func(w *platform.Expectations) { w.Issuer = "" },
		"no client_id":    func(w *platform.Expectations) { w.ClientID = "" },
		"no nonce":        func(w *platform.Expectations) { w.Nonce = "" },
		"negative leeway": func(w *platform.Expectations) { w.Leeway = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			want := f.want
			edit(&want)
			_, err := platform.VerifyToken(t.Context(), token, f.cache.Source(f.l.JWKSURL), want)
			if err == nil || errors.Is(err, platform.ErrInvalidToken) {
				t.Errorf("VerifyToken: %v; want the caller's error", err)
			}
		})
	}
	if n := f.l.JWKSFetches(); n != 0 {
		t.Errorf("%d key set fetches, want none", n)
	}
}

func TestParseUnverified(t *testing.T) {
	f := newLaunchFixture(t, launchOptions{})
	token := f.launch(t, func(c platformtest.Claims) platformtest.Claims {
		return c.With("aud", []string{f.l.ClientID, "another-tool"}).With("azp", f.l.ClientID)
	})
	got, err := platform.ParseUnverified(token)
	if err != nil {
		t.Fatal(err)
	}
	if got.Issuer != f.l.Issuer || !slices.Equal(got.Audience, []string{f.l.ClientID, "another-tool"}) || got.AuthorizedParty != f.l.ClientID {
		t.Errorf("ParseUnverified = %+v", *got)
	}
	if n := f.l.JWKSFetches(); n != 0 {
		t.Errorf("ParseUnverified fetched the key set %d times", n)
	}

	// A forged signature does not matter to it: it does not verify.
	forged := token[:strings.LastIndexByte(token, '.')+1] + "c2lnbmF0dXJl"
	if got, err := platform.ParseUnverified(forged); err != nil || got.Issuer != f.l.Issuer {
		t.Errorf("ParseUnverified(forged) = %+v, %v", got, err)
	}
	single, err := platform.ParseUnverified(f.launch(t, nil))
	if err != nil || !slices.Equal(single.Audience, []string{f.l.ClientID}) || single.AuthorizedParty != "" {
		t.Errorf("ParseUnverified(single aud) = %+v, %v", single, err)
	}

	for name, tok := range map[string]string{
		"not a JWS":     "abc",
		"aud a number":  f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.With("aud", 5) }),
		"iss an object": f.launch(t, func(c platformtest.Claims) platformtest.Claims { return c.With("iss", map[string]any{}) }),
		"too large":     strings.Repeat("a", platform.MaxPlatformTokenBytes+1),
	} {
		if _, err := platform.ParseUnverified(tok); reasonOf(err) != platform.ReasonMalformedToken {
			t.Errorf("ParseUnverified(%s): %v, want %s", name, err, platform.ReasonMalformedToken)
		}
	}
}
