package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// The tokens here are verified with go-jose, a JOSE implementation
// independent of the one that signs (jwx), against the JWKS as the public
// HTTP listener serves it to platforms.

// verified is a token that verified against the JWKS.
type verified struct {
	// header is the protected header, member by member, as sent.
	header map[string]json.RawMessage
	// payload is the signed payload, byte for byte.
	payload []byte
	claims  map[string]any
}

// verifyWithJWKS verifies token against the JWKS served at jwksURL now,
// accepting RS256 only, and returns what it carries; the error says why it
// does not verify.
func verifyWithJWKS(t *testing.T, jwksURL, token string) (*verified, error) {
	t.Helper()
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%d signatures", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Protected.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return nil, fmt.Errorf("the JWKS has %d keys with kid %q", len(keys), kid)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	v := &verified{payload: payload}
	rawHeader, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(rawHeader, &v.header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(payload, &v.claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return v, nil
}

// mustVerify is verifyWithJWKS failing the test when the token does not
// verify. It also checks the header is exactly alg RS256, typ JWT and kid.
func mustVerify(t *testing.T, jwksURL, token, kid string) *verified {
	t.Helper()
	v, err := verifyWithJWKS(t, jwksURL, token)
	if err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	want := map[string]string{"alg": `"RS256"`, "typ": `"JWT"`, "kid": fmt.Sprintf("%q", kid)}
	if len(v.header) != len(want) {
		t.Errorf("header has %d members, want exactly alg, typ and kid: %s", len(v.header), headerText(v.header))
	}
	for name, value := range want {
		if got := string(v.header[name]); got != value {
			t.Errorf("header %s = %s, want %s", name, got, value)
		}
	}
	return v
}

func headerText(h map[string]json.RawMessage) string {
	b, _ := json.Marshal(h)
	return string(b)
}

func (e *testEnv) jwksURL() string { return e.http.URL + "/.well-known/jwks.json" }

func byRegistration(id string) *ltikeysv1.SignJwtRequest {
	return &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}}
}

func assertionFor(id string) *ltikeysv1.CreateClientAssertionRequest {
	return &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: id}}
}

// headerLikeClaims names every header parameter that could change how a
// token is verified; sent as claims they must stay claims.
const headerLikeClaims = `{
  "iss": "tool",
  "alg": "none", "kid": "attacker", "typ": "evil",
  "jku": "https://attacker.example/jwks", "jwk": {"kty": "oct", "k": "AAAA"},
  "x5u": "https://attacker.example/cert", "x5c": ["MIIB"], "crit": ["exp"],
  "header": {"alg": "none"}, "protected": "eyJhbGciOiJub25lIn0"
}`

// TestSignedTokensVerifyAgainstJWKS signs with both methods, verifies the
// tokens independently against the served JWKS before and after a
// rotation, and checks they stop verifying once their key is retired.
func TestSignedTokensVerifyAgainstJWKS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "sign")
		id, firstKid := created.GetRegistration().GetId(), created.GetKey().GetKid()

		sign := func(t *testing.T) (jwt, assertion string, kid string) {
			t.Helper()
			req := byRegistration(id)
			req.ClaimsJson = headerLikeClaims
			req.ExpiresIn = durationpb.New(time.Minute)
			before := time.Now().Unix()
			signed, err := env.keys.SignJwt(ctx, req)
			if err != nil {
				t.Fatalf("SignJwt: %v", err)
			}
			after := time.Now().Unix()
			v := mustVerify(t, env.jwksURL(), signed.GetJwt(), signed.GetKid())

			// The payload is the claims as given, compacted, with iat and exp.
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(headerLikeClaims)); err != nil {
				t.Fatal(err)
			}
			iat, _ := v.claims["iat"].(float64)
			exp, _ := v.claims["exp"].(float64)
			want.Truncate(want.Len() - 1)
			fmt.Fprintf(&want, `,"iat":%d,"exp":%d}`, int64(iat), int64(exp))
			if !bytes.Equal(v.payload, want.Bytes()) {
				t.Errorf("payload = %s\nwant      %s", v.payload, want.Bytes())
			}
			if int64(iat) < before || int64(iat) > after || exp-iat != 60 {
				t.Errorf("iat %v, exp %v: want iat in [%d, %d] and exp = iat + 60", iat, exp, before, after)
			}
			for _, name := range []string{"alg", "kid", "typ", "jku", "jwk", "x5u", "x5c", "crit", "header", "protected"} {
				if _, ok := v.claims[name]; !ok {
					t.Errorf("claim %q missing from the payload", name)
				}
			}

			asserted, err := env.keys.CreateClientAssertion(ctx, assertionFor(id))
			if err != nil {
				t.Fatalf("CreateClientAssertion: %v", err)
			}
			mustVerify(t, env.jwksURL(), asserted.GetClientAssertion(), asserted.GetKid())
			if signed.GetKid() != asserted.GetKid() {
				t.Errorf("SignJwt signed with %s, CreateClientAssertion with %s", signed.GetKid(), asserted.GetKid())
			}
			return signed.GetJwt(), asserted.GetClientAssertion(), signed.GetKid()
		}

		oldJWT, oldAssertion, kid := sign(t)
		if kid != firstKid {
			t.Fatalf("signed with %s, want the registration's key %s", kid, firstKid)
		}

		rotated, err := env.keys.RotateKey(ctx, rotateNow(id))
		if err != nil {
			t.Fatal(err)
		}
		newJWT, newAssertion, kid := sign(t)
		if kid != rotated.GetNewKey().GetKid() {
			t.Fatalf("after rotation, signed with %s, want the new key %s", kid, rotated.GetNewKey().GetKid())
		}
		for _, token := range []string{oldJWT, oldAssertion} {
			mustVerify(t, env.jwksURL(), token, firstKid) // the previous key stays published
		}

		if _, err := env.keys.RetireKey(ctx, &ltikeysv1.RetireKeyRequest{Kid: firstKid}); err != nil {
			t.Fatal(err)
		}
		for name, token := range map[string]string{"JWT": oldJWT, "client assertion": oldAssertion} {
			if _, err := verifyWithJWKS(t, env.jwksURL(), token); err == nil {
				t.Errorf("%s signed with the retired key still verifies", name)
			}
		}
		for _, token := range []string{newJWT, newAssertion} {
			mustVerify(t, env.jwksURL(), token, kid)
		}
	})
}

// TestSignJwtRefusals sends every kind of bad request: each gets its status
// code, a reason, and no token.
func TestSignJwtRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		id := env.mustCreate(t, "refusals").GetRegistration().GetId()
		pad := func(n int) string { return `{"pad":"` + strings.Repeat("a", n-len(`{"pad":""}`)) + `"}` }

		for _, tt := range []struct {
			name      string
			claims    string
			expiresIn *durationpb.Duration
			lookup    func(*ltikeysv1.SignJwtRequest)
			want      codes.Code
			reason    string // in the message
		}{
			{name: "array", claims: `[{"sub":"a"}]`, want: codes.InvalidArgument, reason: "must be a JSON object, got an array"},
			{name: "string", claims: `"claims"`, want: codes.InvalidArgument, reason: "got a string"},
			{name: "number", claims: `42`, want: codes.InvalidArgument, reason: "got a number"},
			{name: "boolean", claims: `true`, want: codes.InvalidArgument, reason: "got a boolean"},
			{name: "null", claims: `null`, want: codes.InvalidArgument, reason: "got null"},
			{name: "invalid JSON", claims: `{"sub":}`, want: codes.InvalidArgument, reason: "not valid JSON"},
			{name: "truncated JSON", claims: `{"sub":"a"`, want: codes.InvalidArgument, reason: "not valid JSON"},
			{name: "two values", claims: `{"sub":"a"} {"sub":"b"}`, want: codes.InvalidArgument, reason: "not valid JSON"},
			{name: "empty", claims: ``, want: codes.InvalidArgument, reason: "claims_json: required"},
			{name: "blank", claims: " \n", want: codes.InvalidArgument, reason: "claims_json: required"},
			{name: "oversized", claims: pad(server.MaxClaimsJSON + 1), want: codes.InvalidArgument, reason: "at most 65536 bytes"},
			{name: "duplicate member", claims: `{"sub":"a","sub":"b"}`, want: codes.InvalidArgument, reason: "more than once"},
			{name: "duplicate member, escaped", claims: `{"aud":"a","\u0061ud":"b"}`, want: codes.InvalidArgument, reason: "more than once"},
			{name: "exp with expires_in", claims: `{"exp":1}`, expiresIn: durationpb.New(time.Minute), want: codes.InvalidArgument, reason: `"exp"`},
			{name: "iat with expires_in", claims: `{"iat":1}`, expiresIn: durationpb.New(time.Minute), want: codes.InvalidArgument, reason: `"iat"`},
			{name: "zero expires_in", claims: `{}`, expiresIn: durationpb.New(0), want: codes.InvalidArgument, reason: "expires_in: must be positive"},
			{name: "negative expires_in", claims: `{}`, expiresIn: durationpb.New(-time.Minute), want: codes.InvalidArgument, reason: "must be positive"},
			{name: "too-large expires_in", claims: `{}`, expiresIn: durationpb.New(server.DefaultMaxTokenLifetime + time.Second), want: codes.InvalidArgument, reason: "at most 24h"},
			{name: "fractional expires_in", claims: `{}`, expiresIn: durationpb.New(1500 * time.Millisecond), want: codes.InvalidArgument, reason: "whole seconds"},
			{name: "invalid expires_in", claims: `{}`, expiresIn: &durationpb.Duration{Seconds: 1, Nanos: -1}, want: codes.InvalidArgument, reason: "not a valid duration"},
			{name: "no lookup", claims: `{}`, lookup: func(r *ltikeysv1.SignJwtRequest) { r.Lookup = nil }, want: codes.InvalidArgument, reason: "lookup"},
			{name: "malformed registration id", claims: `{}`, lookup: func(r *ltikeysv1.SignJwtRequest) {
				r.Lookup = &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: "not-a-uuid"}
			}, want: codes.InvalidArgument, reason: "registration_id"},
			{name: "incomplete issuer_client", claims: `{}`, lookup: func(r *ltikeysv1.SignJwtRequest) {
				r.Lookup = &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: "https://canvas.example.edu/refusals"}}
			}, want: codes.InvalidArgument, reason: "issuer_client.client_id"},
			{name: "unknown registration", claims: `{}`, lookup: func(r *ltikeysv1.SignJwtRequest) {
				r.Lookup = &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: uuid.NewString()}
			}, want: codes.NotFound, reason: "not found"},
			{name: "unknown issuer and client", claims: `{}`, lookup: func(r *ltikeysv1.SignJwtRequest) {
				r.Lookup = &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: "https://canvas.example.edu/refusals", ClientId: "nobody"}}
			}, want: codes.NotFound, reason: "no registration"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				req := byRegistration(id)
				req.ClaimsJson, req.ExpiresIn = tt.claims, tt.expiresIn
				if tt.lookup != nil {
					tt.lookup(req)
				}
				resp, err := env.keys.SignJwt(ctx, req)
				if got := status.Code(err); got != tt.want {
					t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.reason) {
					t.Errorf("message %q does not say %q", msg, tt.reason)
				}
				if resp.GetJwt() != "" {
					t.Errorf("a token was returned with the error")
				}
			})
		}

		// The limits themselves are accepted.
		req := byRegistration(id)
		req.ClaimsJson, req.ExpiresIn = pad(server.MaxClaimsJSON), durationpb.New(server.DefaultMaxTokenLifetime)
		if signed, err := env.keys.SignJwt(ctx, req); err != nil {
			t.Errorf("claims of exactly %d bytes, expires_in %s: %v", server.MaxClaimsJSON, server.DefaultMaxTokenLifetime, err)
		} else {
			mustVerify(t, env.jwksURL(), signed.GetJwt(), signed.GetKid())
		}
		req.ClaimsJson, req.ExpiresIn = `{}`, nil
		if signed, err := env.keys.SignJwt(ctx, req); err != nil {
			t.Errorf("empty object: %v", err)
		} else if v := mustVerify(t, env.jwksURL(), signed.GetJwt(), signed.GetKid()); len(v.claims) != 2 || v.claims["exp"] == nil || v.claims["iat"] == nil {
			t.Errorf("empty object signed as %s, want only the iat and exp the service adds", v.payload)
		}
	})
}

// TestCreateClientAssertion checks the claims of client assertions, the
// bounds of expires_in, and a registration without a token endpoint.
func TestCreateClientAssertion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "assert")
		reg := created.GetRegistration()

		check := func(t *testing.T, resp *ltikeysv1.CreateClientAssertionResponse, aud string, lifetime time.Duration) map[string]any {
			t.Helper()
			claims := mustVerify(t, env.jwksURL(), resp.GetClientAssertion(), reg.GetKid()).claims
			if len(claims) != 6 {
				t.Errorf("claims %v: want exactly iss, sub, aud, iat, exp, jti", claims)
			}
			if claims["iss"] != reg.GetClientId() || claims["sub"] != reg.GetClientId() || claims["aud"] != aud {
				t.Errorf("iss %v, sub %v, aud %v: want client_id %s twice and %s", claims["iss"], claims["sub"], claims["aud"], reg.GetClientId(), aud)
			}
			iat, _ := claims["iat"].(float64)
			exp, _ := claims["exp"].(float64)
			if now := float64(time.Now().Unix()); iat > now || iat < now-60 || exp-iat != lifetime.Seconds() {
				t.Errorf("iat %v, exp %v: want iat now and exp = iat + %v", iat, exp, lifetime)
			}
			if got := resp.GetExpireTime().AsTime(); !got.Equal(time.Unix(int64(exp), 0)) {
				t.Errorf("expire_time %v, exp %v", got, exp)
			}
			jti, _ := claims["jti"].(string)
			if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) != 16 {
				t.Errorf("jti %q: want 128 bits in base64url", jti)
			}
			return claims
		}

		first, err := env.keys.CreateClientAssertion(ctx, assertionFor(reg.GetId()))
		if err != nil {
			t.Fatal(err)
		}
		jti1 := check(t, first, reg.GetTokenEndpoint(), server.DefaultAssertionLifetime)["jti"]

		byIssuer := &ltikeysv1.CreateClientAssertionRequest{
			Lookup:    &ltikeysv1.CreateClientAssertionRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: reg.GetIssuer(), ClientId: reg.GetClientId()}},
			Audience:  "https://auth.platform.example/",
			ExpiresIn: durationpb.New(server.MaxAssertionLifetime),
		}
		second, err := env.keys.CreateClientAssertion(ctx, byIssuer)
		if err != nil {
			t.Fatal(err)
		}
		if jti2 := check(t, second, "https://auth.platform.example/", server.MaxAssertionLifetime)["jti"]; jti2 == jti1 {
			t.Errorf("two assertions share jti %v", jti1)
		}

		for _, tt := range []struct {
			name string
			edit func(*ltikeysv1.CreateClientAssertionRequest)
			want codes.Code
		}{
			{"expires_in over an hour", func(r *ltikeysv1.CreateClientAssertionRequest) {
				r.ExpiresIn = durationpb.New(server.MaxAssertionLifetime + time.Second)
			}, codes.InvalidArgument},
			{"zero expires_in", func(r *ltikeysv1.CreateClientAssertionRequest) { r.ExpiresIn = durationpb.New(0) }, codes.InvalidArgument},
			{"audience with a control character", func(r *ltikeysv1.CreateClientAssertionRequest) { r.Audience = "https://a.example/\n" }, codes.InvalidArgument},
			{"overlong audience", func(r *ltikeysv1.CreateClientAssertionRequest) { r.Audience = strings.Repeat("a", 2049) }, codes.InvalidArgument},
			{"no lookup", func(r *ltikeysv1.CreateClientAssertionRequest) { r.Lookup = nil }, codes.InvalidArgument},
			{"unknown registration", func(r *ltikeysv1.CreateClientAssertionRequest) {
				r.Lookup = &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: uuid.NewString()}
			}, codes.NotFound},
		} {
			req := assertionFor(reg.GetId())
			tt.edit(req)
			resp, err := env.keys.CreateClientAssertion(ctx, req)
			if got := status.Code(err); got != tt.want || resp.GetClientAssertion() != "" {
				t.Errorf("%s: code %v (%v), token returned %v; want %v and none", tt.name, got, err, resp.GetClientAssertion() != "", tt.want)
			}
		}

		// CreateRegistration requires a token endpoint, so a registration
		// without one can only come from the store directly (an older row,
		// another writer).
		bare := storeRegistrationWithoutTokenEndpoint(t, env)
		resp, err := env.keys.CreateClientAssertion(ctx, assertionFor(bare.ID))
		if status.Code(err) != codes.FailedPrecondition || resp.GetClientAssertion() != "" {
			t.Errorf("registration without a token endpoint: %v, want FAILED_PRECONDITION and no token", err)
		}
		withAudience := assertionFor(bare.ID)
		withAudience.Audience = "https://platform.example/token"
		if _, err := env.keys.CreateClientAssertion(ctx, withAudience); err != nil {
			t.Errorf("registration without a token endpoint, with an audience: %v", err)
		}
	})
}

// storeRegistrationWithoutTokenEndpoint writes a registration with an empty
// token endpoint, and its key, straight to env's store.
func storeRegistrationWithoutTokenEndpoint(t *testing.T, env *testEnv) storage.Registration {
	t.Helper()
	pair, err := crypto.GenerateKeyPair(2048)
	if err != nil {
		t.Fatal(err)
	}
	reg := storage.Registration{
		ID: uuid.NewString(), Issuer: "https://legacy.example", ClientID: "legacy",
		AuthEndpoint: "https://legacy.example/auth", JWKSURI: "https://legacy.example/jwks",
	}
	sealed, err := env.keyring.Seal(pair.PrivateJWK, pair.KID, reg.ID)
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err = env.store.CreateRegistration(context.Background(), reg, storage.Key{
		KID: pair.KID, Alg: pair.Alg, RegistrationID: reg.ID, PublicJWK: pair.PublicJWK, PrivateJWK: sealed, Active: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestSignWithInjectedClock calls the handlers directly with a fixed clock:
// iat and exp are exact.
func TestSignWithInjectedClock(t *testing.T) {
	env := newTestEnvWith(t, backends[0].url(t), testKeyring)
	id := env.mustCreate(t, "clock").GetRegistration().GetId()
	now := time.Date(2026, 11, 26, 10, 0, 0, 999_000_000, time.UTC)
	svc, err := server.NewKeyService(server.KeyServiceConfig{
		Store: env.store, Keyring: testKeyring, KeyBits: 2048, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	req := byRegistration(id)
	req.ClaimsJson, req.ExpiresIn = `{"nonce":"n"}`, durationpb.New(90*time.Second)
	signed, err := svc.SignJwt(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(mustVerify(t, env.jwksURL(), signed.GetJwt(), signed.GetKid()).payload),
		fmt.Sprintf(`{"nonce":"n","iat":%d,"exp":%d}`, now.Unix(), now.Unix()+90); got != want {
		t.Errorf("payload %s, want %s", got, want)
	}
	asserted, err := svc.CreateClientAssertion(context.Background(), assertionFor(id))
	if err != nil {
		t.Fatal(err)
	}
	claims := mustVerify(t, env.jwksURL(), asserted.GetClientAssertion(), asserted.GetKid()).claims
	if claims["iat"] != float64(now.Unix()) || claims["exp"] != float64(now.Unix()+300) {
		t.Errorf("iat %v, exp %v; want %d and %d", claims["iat"], claims["exp"], now.Unix(), now.Unix()+300)
	}
	if got, want := asserted.GetExpireTime().AsTime(), now.Truncate(time.Second).Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("expire_time %v, want %v", got, want)
	}
}

// fixedClockEnv starts a server on SQLite whose clock stands still at now,
// configured further by configure if it is not nil. It returns the
// KeyService too, for calls gRPC cannot carry.
func fixedClockEnv(t *testing.T, now time.Time, configure func(*server.KeyServiceConfig)) (*testEnv, *server.KeyService) {
	t.Helper()
	return startEnv(t, backends[0].url(t), envOptions{configure: func(cfg *server.KeyServiceConfig) {
		cfg.Now = func() time.Time { return now }
		if configure != nil {
			configure(cfg)
		}
	}})
}

// nestedClaims returns a claims object of depth nested objects.
func nestedClaims(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

// TestSignJwtClaims sends claims sets over gRPC to a service whose clock
// stands still: each is refused with INVALID_ARGUMENT naming claims_json
// and the reason, or signed as given (with exp and iat added if it has no
// exp) and verified against the JWKS.
func TestSignJwtClaims(t *testing.T) {
	// Mid-second, so a bound of whole seconds from now is never exact.
	now := time.Now().Truncate(time.Second).Add(400 * time.Millisecond)
	env, direct := fixedClockEnv(t, now, nil)
	id := env.mustCreate(t, "claims").GetRegistration().GetId()
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	maxLifetime := server.DefaultMaxTokenLifetime
	exp := `,"exp":` + at(time.Hour) + `}`

	for _, tt := range []struct {
		name      string
		claims    string
		expiresIn *durationpb.Duration
		reason    string // in the message; empty: signed
		// direct calls the handler in process: proto3 refuses to carry a
		// string that is not UTF-8 over gRPC, but the handler must not rely
		// on its transport.
		direct bool
	}{
		{name: "the issue's client assertion", claims: `{"exp":99999999999,"sub":"client","aud":"https://token"}`, reason: `claims_json: claim "exp" must be at most 24h0m0s from now`},
		{name: "exp a second inside the bound", claims: `{"sub":"u","exp":` + at(maxLifetime-time.Second) + `}`},
		{name: "exp at the bound's second", claims: `{"exp":` + at(maxLifetime) + `}`},
		{name: "exp a second outside the bound", claims: `{"exp":` + at(maxLifetime+time.Second) + `}`, reason: `claim "exp" must be at most 24h0m0s from now`},
		{name: "exp in a minute", claims: `{"exp":` + at(time.Minute) + `}`},
		{name: "exp fractional", claims: `{"exp":` + at(time.Minute) + `.25}`},
		{name: "exp with an exponent", claims: `{"exp":` + at(time.Minute)[:1] + "." + at(time.Minute)[1:] + `e9}`},
		{name: "exp in the past", claims: `{"exp":` + at(-time.Second) + `}`, reason: `claim "exp" must be in the future`},
		{name: "exp this second, already past", claims: `{"exp":` + at(0) + `}`, reason: `claim "exp" must be in the future`},
		{name: "exp zero", claims: `{"exp":0}`, reason: `claim "exp" must be in the future`},
		{name: "exp negative", claims: `{"exp":-1}`, reason: `claim "exp" must not be negative`},
		{name: "exp as a string", claims: `{"exp":"` + at(time.Minute) + `"}`, reason: `claim "exp" must be a NumericDate (a JSON number of seconds since the epoch), got a string`},
		{name: "exp as null", claims: `{"exp":null}`, reason: `claim "exp" must be a NumericDate`},
		{name: "exp 1e400", claims: `{"exp":1e400}`, reason: "number at $.exp is beyond the range of IEEE 754 double precision"},
		{name: "exp 2^53", claims: `{"exp":9007199254740992}`, reason: `claim "exp" must be at most`},
		{name: "exp with an escaped name", claims: `{"\u0065xp":99999999999}`, reason: `claim "exp" must be at most`},
		{name: "exp nested is data", claims: `{"x":{"exp":99999999999,"iat":"x"}}`},
		{name: "nbf within the skew", claims: `{"nbf":` + at(server.MaxClockSkew) + exp},
		{name: "nbf past the skew", claims: `{"nbf":` + at(server.MaxClockSkew+time.Second) + exp, reason: `claim "nbf" must not be more than 1m0s in the future`},
		{name: "nbf long ago", claims: `{"nbf":1` + exp},
		{name: "nbf after exp", claims: `{"nbf":` + at(30*time.Second) + `,"exp":` + at(20*time.Second) + `}`, reason: `claim "nbf" must be before exp`},
		{name: "nbf as a string", claims: `{"nbf":"now"` + exp, reason: `claim "nbf" must be a NumericDate`},
		{name: "nbf past the skew with expires_in", claims: `{"nbf":` + at(time.Hour) + `}`, expiresIn: durationpb.New(2 * time.Hour), reason: `claim "nbf" must not be more than`},
		{name: "nbf within the skew with expires_in", claims: `{"nbf":` + at(time.Second) + `}`, expiresIn: durationpb.New(time.Minute)},
		{name: "iat within the skew", claims: `{"iat":` + at(server.MaxClockSkew) + exp},
		{name: "iat past the skew", claims: `{"iat":` + at(2*time.Minute) + exp, reason: `claim "iat" must not be more than 1m0s in the future`},
		{name: "iat past the skew, without exp", claims: `{"iat":` + at(2*time.Minute) + `}`, reason: `claim "iat" must not be more than`},
		{name: "iat far ahead", claims: `{"iat":99999999999` + exp, reason: `claim "iat" must not be more than`},
		{name: "iat as a boolean", claims: `{"iat":true` + exp, reason: `claim "iat" must be a NumericDate (a JSON number of seconds since the epoch), got a boolean`},
		{name: "exp with expires_in", claims: `{"exp":` + at(time.Minute) + `}`, expiresIn: durationpb.New(time.Minute), reason: `claims_json: must not contain "exp" when expires_in is set`},
		{name: "escaped exp with expires_in", claims: `{"\u0065xp":1}`, expiresIn: durationpb.New(time.Minute), reason: `must not contain "exp"`},
		{name: "expires_in past the bound", claims: `{}`, expiresIn: durationpb.New(maxLifetime + time.Second), reason: "expires_in: must be at most 24h0m0s"},

		{name: "duplicate at depth 1", claims: `{"sub":"a","aud":"x","sub":"b"}`, reason: "claims_json: member $.sub appears more than once"},
		{name: "duplicate at depth 2", claims: `{"https://purl.imsglobal.org/spec/lti/claim/context":{"id":"a","id":"b"}}`, reason: `member $["https://purl.imsglobal.org/spec/lti/clai…"].id appears more than once`},
		{name: "duplicate at depth 3", claims: `{"items":[{"lineItem":{"scoreMaximum":100,"scoreMaximum":1}}]}`, reason: "member $.items[0].lineItem.scoreMaximum appears more than once"},
		{name: "duplicate exp at depth 1", claims: `{"exp":` + at(time.Minute) + `,"exp":99999999999}`, reason: "member $.exp appears more than once"},
		{name: "same names in sibling objects", claims: `{"a":{"id":1},"b":{"id":1},"c":[{"id":1},{"id":1}]}`},

		{name: "lone high surrogate", claims: `{"name":"\ud800"}`, reason: `claims_json: string at $.name has an unpaired UTF-16 surrogate \ud800`},
		{name: "lone low surrogate", claims: `{"name":"\udc00"}`, reason: `unpaired UTF-16 surrogate \udc00`},
		{name: "high surrogate then text", claims: `{"name":"\ud800x"}`, reason: `unpaired UTF-16 surrogate \ud800`},
		{name: "lone surrogate in a name", claims: `{"\ud800":1}`, reason: `member name in $ has an unpaired UTF-16 surrogate`},
		{name: "surrogate pair", claims: `{"name":"\ud83d\ude00"}`},
		{name: "invalid UTF-8", claims: "{\"name\":\"caf\xe9\"}", direct: true, reason: "claims_json: string at $.name is not valid UTF-8"},
		{name: "invalid UTF-8 in a name", claims: "{\"\xff\":1}", direct: true, reason: "claims_json: member name in $ is not valid UTF-8"},
		{name: "valid UTF-8", claims: `{"name":"café 😀"}`},
		{name: "noncharacter", claims: `{"name":"\uffff"}`, reason: "noncharacter U+FFFF"},

		{name: "depth limit", claims: nestedClaims(64)},
		{name: "one past the depth limit", claims: nestedClaims(65), reason: "claims_json: nests arrays and objects more than 64 deep"},
		{name: "1e400", claims: `{"score":1e400}`, reason: "claims_json: number at $.score is beyond the range of IEEE 754 double precision"},
		{name: "big integer", claims: `{"id":123456789012345678901234567890}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := byRegistration(id)
			req.ClaimsJson, req.ExpiresIn = tt.claims, tt.expiresIn
			sign := env.keys.SignJwt
			if tt.direct {
				sign = func(ctx context.Context, req *ltikeysv1.SignJwtRequest, _ ...grpc.CallOption) (*ltikeysv1.SignJwtResponse, error) {
					return direct.SignJwt(ctx, req)
				}
			}
			resp, err := sign(context.Background(), req)
			if tt.direct {
				if resp, err := env.keys.SignJwt(context.Background(), req); err == nil || resp.GetJwt() != "" {
					t.Errorf("over gRPC: %v, want an error and no token", err)
				}
			}
			if tt.reason != "" {
				if status.Code(err) != codes.InvalidArgument || resp.GetJwt() != "" {
					t.Fatalf("SignJwt = %v, want INVALID_ARGUMENT and no token", err)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.reason) {
					t.Errorf("message %q does not say %q", msg, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignJwt: %v", err)
			}
			v := mustVerify(t, env.jwksURL(), resp.GetJwt(), resp.GetKid())
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(tt.claims)); err != nil {
				t.Fatal(err)
			}
			if got := string(v.payload); !strings.HasPrefix(got, strings.TrimSuffix(want.String(), "}")) {
				t.Errorf("payload %s does not start with the claims %s", got, want.String())
			}
			// Every signed token expires, within the bound.
			var times struct{ Exp json.Number }
			if err := json.Unmarshal(v.payload, &times); err != nil {
				t.Fatal(err)
			}
			exp, err := times.Exp.Float64()
			if nowSeconds := float64(now.UnixNano()) / 1e9; err != nil || exp <= nowSeconds || exp > nowSeconds+maxLifetime.Seconds() {
				t.Errorf("signed exp %q, want one in (%v, %v]", times.Exp, nowSeconds, nowSeconds+maxLifetime.Seconds())
			}
		})
	}
}

// TestSignJwtDefaultLifetime: claims without exp and without expires_in
// are signed with iat now and exp DefaultJWTLifetime later, unless they
// hold an iat, which is kept; exp is then still now plus the lifetime.
func TestSignJwtDefaultLifetime(t *testing.T) {
	now := time.Now().Truncate(time.Second).Add(900 * time.Millisecond)
	env, _ := fixedClockEnv(t, now, nil)
	id := env.mustCreate(t, "default").GetRegistration().GetId()
	lifetime := int64(server.DefaultJWTLifetime / time.Second)
	for _, tt := range []struct {
		claims, payload string
	}{
		{`{"nonce":"abc"}`, fmt.Sprintf(`{"nonce":"abc","iat":%d,"exp":%d}`, now.Unix(), now.Unix()+lifetime)},
		{`{ }`, fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Unix()+lifetime)},
		{`{"iat":1700000000, "nbf":1700000000}`, fmt.Sprintf(`{"iat":1700000000,"nbf":1700000000,"exp":%d}`, now.Unix()+lifetime)},
	} {
		req := byRegistration(id)
		req.ClaimsJson = tt.claims
		resp, err := env.keys.SignJwt(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", tt.claims, err)
		}
		v := mustVerify(t, env.jwksURL(), resp.GetJwt(), resp.GetKid())
		if string(v.payload) != tt.payload {
			t.Errorf("%s signed as %s, want %s", tt.claims, v.payload, tt.payload)
		}
		// An independent parse of the signed payload.
		var times struct{ Iat, Exp *int64 }
		if err := json.Unmarshal(v.payload, &times); err != nil || times.Iat == nil || times.Exp == nil {
			t.Fatalf("payload %s: iat and exp? %v", v.payload, err)
		}
		if *times.Exp != now.Unix()+lifetime || *times.Exp-*times.Iat < lifetime {
			t.Errorf("iat %d, exp %d: want exp %d, at least %d after iat", *times.Iat, *times.Exp, now.Unix()+lifetime, lifetime)
		}
	}
}

// TestMaxTokenLifetime runs the service with a 2-minute maximum token
// lifetime: it bounds expires_in, a caller's exp, SignJwt's default
// lifetime and client assertions, default and requested.
func TestMaxTokenLifetime(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	const maxLifetime = 2 * time.Minute
	env, _ := fixedClockEnv(t, now, func(cfg *server.KeyServiceConfig) { cfg.MaxTokenLifetime = maxLifetime })
	id := env.mustCreate(t, "max-lifetime").GetRegistration().GetId()
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	ctx := context.Background()

	for _, tt := range []struct {
		name      string
		claims    string
		expiresIn *durationpb.Duration
		reason    string
	}{
		{name: "expires_in at the bound", claims: `{}`, expiresIn: durationpb.New(maxLifetime)},
		{name: "expires_in past the bound", claims: `{}`, expiresIn: durationpb.New(maxLifetime + time.Second), reason: "expires_in: must be at most 2m0s"},
		{name: "exp at the bound", claims: `{"exp":` + at(maxLifetime) + `}`},
		{name: "exp past the bound", claims: `{"exp":` + at(maxLifetime+time.Second) + `}`, reason: `claim "exp" must be at most 2m0s from now`},
	} {
		req := byRegistration(id)
		req.ClaimsJson, req.ExpiresIn = tt.claims, tt.expiresIn
		_, err := env.keys.SignJwt(ctx, req)
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.reason != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.reason)):
			t.Errorf("%s: %v, want INVALID_ARGUMENT saying %q", tt.name, err, tt.reason)
		}
	}

	req := byRegistration(id)
	req.ClaimsJson = `{}`
	signed, err := env.keys.SignJwt(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(mustVerify(t, env.jwksURL(), signed.GetJwt(), signed.GetKid()).payload),
		fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Add(maxLifetime).Unix()); got != want {
		t.Errorf("without exp, signed %s, want %s", got, want)
	}

	asserted, err := env.keys.CreateClientAssertion(ctx, assertionFor(id))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := asserted.GetExpireTime().AsTime(), now.Add(maxLifetime); !got.Equal(want) {
		t.Errorf("client assertion expires %v, want %v", got, want)
	}
	long := assertionFor(id)
	long.ExpiresIn = durationpb.New(maxLifetime + time.Second)
	if _, err := env.keys.CreateClientAssertion(ctx, long); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "at most 2m0s") {
		t.Errorf("client assertion past the bound: %v, want INVALID_ARGUMENT saying at most 2m0s", err)
	}

	for _, bad := range []time.Duration{-time.Second, 1500 * time.Millisecond} {
		if _, err := server.NewKeyService(server.KeyServiceConfig{Store: env.store, Keyring: testKeyring, KeyBits: 2048, MaxTokenLifetime: bad}); err == nil {
			t.Errorf("NewKeyService with MaxTokenLifetime %s succeeded", bad)
		}
	}
}

// TestDisableKeyExport runs the service with key export disabled: every
// caller, admin included, gets PERMISSION_DENIED from GetToolKey, while
// signing still works.
func TestDisableKeyExport(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{disableKeyExport: true})
	id := env.create(t).GetRegistration().GetId()
	getKey := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
	for name, token := range env.tokens {
		keys := ltikeysv1.NewKeyServiceClient(env.dial(t, nil, token))
		resp, err := keys.GetToolKey(context.Background(), getKey)
		if status.Code(err) != codes.PermissionDenied || resp.GetPrivateJwk() != "" {
			t.Errorf("%s: GetToolKey = %v, want PERMISSION_DENIED and no key", name, err)
		}
	}
	signer := ltikeysv1.NewKeyServiceClient(env.dial(t, nil, env.tokens["signer"]))
	if _, err := signer.CreateClientAssertion(context.Background(), assertionFor(id)); err != nil {
		t.Errorf("CreateClientAssertion with key export disabled: %v", err)
	}
}

// TestSignScopes: keys.sign allows signing and not GetToolKey; keys.read
// and keys.read_private do not allow signing.
func TestSignScopes(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	id := env.create(t).GetRegistration().GetId()
	getKey := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
	sign := byRegistration(id)
	sign.ClaimsJson = `{}`
	for _, tt := range []struct {
		token          string
		getKey, signed codes.Code
	}{
		{"signer", codes.PermissionDenied, codes.OK},
		{"reader", codes.PermissionDenied, codes.PermissionDenied},
		{"exporter", codes.OK, codes.PermissionDenied},
		{"admin", codes.OK, codes.OK},
	} {
		keys := ltikeysv1.NewKeyServiceClient(env.dial(t, nil, env.tokens[tt.token]))
		if _, err := keys.GetToolKey(context.Background(), getKey); status.Code(err) != tt.getKey {
			t.Errorf("%s: GetToolKey = %v, want %v", tt.token, err, tt.getKey)
		}
		if _, err := keys.SignJwt(context.Background(), sign); status.Code(err) != tt.signed {
			t.Errorf("%s: SignJwt = %v, want %v", tt.token, err, tt.signed)
		}
		if _, err := keys.CreateClientAssertion(context.Background(), assertionFor(id)); status.Code(err) != tt.signed {
			t.Errorf("%s: CreateClientAssertion = %v, want %v", tt.token, err, tt.signed)
		}
	}
}

// TestSignOnlyCallerGetsAnAccessToken is the LTI Advantage token request
// (1EdTech Security Framework 4.1) made by a caller holding only keys.sign,
// through the authenticating interceptor: it gets a client assertion from
// ltikeys and presents it to a platform's token endpoint, which verifies it
// against ltikeys' JWKS as a real platform would, and issues an access
// token. The caller never receives key material.
func TestSignOnlyCallerGetsAnAccessToken(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	jwksURL := env.http.URL + "/.well-known/jwks.json"

	// The platform: a token endpoint that checks client assertions the way
	// the Security Framework asks, refusing a replayed jti.
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	const clientID = "tool-client-1"
	platform := httptest.NewServer(nil)
	defer platform.Close()
	tokenURL := platform.URL + "/token"
	platform.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(format string, args ...any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": fmt.Sprintf(format, args...)})
		}
		if r.Method != http.MethodPost || r.URL.Path != "/token" || r.ParseForm() != nil {
			fail("bad request")
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			fail("grant_type or client_assertion_type")
			return
		}
		v, err := verifyWithJWKS(t, jwksURL, r.PostForm.Get("client_assertion"))
		if err != nil {
			fail("assertion: %v", err)
			return
		}
		c := v.claims
		exp, _ := c["exp"].(float64)
		jti, _ := c["jti"].(string)
		mu.Lock()
		replay := seen[jti]
		seen[jti] = true
		mu.Unlock()
		switch {
		case c["iss"] != clientID || c["sub"] != clientID:
			fail("iss/sub %v/%v", c["iss"], c["sub"])
		case c["aud"] != tokenURL:
			fail("aud %v", c["aud"])
		case exp <= float64(time.Now().Unix()):
			fail("expired")
		case jti == "" || replay:
			fail("jti missing or replayed")
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"access_token": "platform-token-1", "token_type": "bearer", "expires_in": 3600, "scope": r.PostForm.Get("scope"),
			})
		}
	})

	// The admin registers the platform; the launcher service holds only a
	// keys.sign token.
	create := validCreate("advantage")
	create.ClientId, create.TokenEndpoint = clientID, tokenURL
	if _, err := env.admin.CreateRegistration(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	signer := ltikeysv1.NewKeyServiceClient(env.dial(t, nil, env.tokens["signer"]))
	lookup := &ltikeysv1.IssuerClient{Issuer: create.GetIssuer(), ClientId: clientID}

	if resp, err := signer.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: lookup}}); status.Code(err) != codes.PermissionDenied || resp != nil {
		t.Fatalf("GetToolKey with keys.sign only = %v, want PERMISSION_DENIED", err)
	}
	resp, err := signer.CreateClientAssertion(context.Background(), &ltikeysv1.CreateClientAssertionRequest{
		Lookup: &ltikeysv1.CreateClientAssertionRequest_IssuerClient{IssuerClient: lookup},
	})
	if err != nil {
		t.Fatalf("CreateClientAssertion with keys.sign only: %v", err)
	}
	assertNoKeyMaterial(t, resp)

	requestToken := func() (int, map[string]any) {
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {resp.GetClientAssertion()},
			"scope":                 {"https://purl.imsglobal.org/spec/lti-ags/scope/score"},
		}
		r, err := http.PostForm(tokenURL, form)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("token endpoint answered %s", b)
		}
		return r.StatusCode, body
	}
	if code, body := requestToken(); code != http.StatusOK || body["access_token"] != "platform-token-1" {
		t.Fatalf("token request: %d %v", code, body)
	}
	if code, _ := requestToken(); code != http.StatusBadRequest {
		t.Errorf("replayed assertion: %d, want 400", code)
	}

	// The audit log names the signer; nothing in the log is key material.
	var found bool
	for _, line := range auditLines(t, env.logs.String()) {
		if line["caller"] == "signer" && line["method"] == ltikeysv1.KeyService_CreateClientAssertion_FullMethodName {
			found = line["code"] == "OK" && line["kid"] == resp.GetKid()
		}
	}
	if !found {
		t.Errorf("no audit line for the signer's CreateClientAssertion with its kid")
	}
	if strings.Contains(env.logs.String(), `"d":`) || strings.Contains(env.logs.String(), "private_jwk") {
		t.Errorf("the log holds key material")
	}
}

// assertNoKeyMaterial fails if a response carries anything but the
// assertion, its kid and expiry, or if the token holds private parameters.
func assertNoKeyMaterial(t *testing.T, resp *ltikeysv1.CreateClientAssertionResponse) {
	t.Helper()
	allowed := map[protoreflect.Name]bool{"client_assertion": true, "kid": true, "expire_time": true}
	proto.Message(resp).ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !allowed[fd.Name()] {
			t.Errorf("response carries field %s", fd.Name())
		}
		return true
	})
	parts := strings.Split(resp.GetClientAssertion(), ".")
	if len(parts) != 3 {
		t.Fatalf("client assertion has %d parts", len(parts))
	}
	for _, part := range parts[:2] {
		b, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			t.Fatal(err)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(b, &members); err != nil {
			t.Fatal(err)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "jwk", "n"} {
			if _, ok := members[private]; ok {
				t.Errorf("the assertion carries %q", private)
			}
		}
	}
}
