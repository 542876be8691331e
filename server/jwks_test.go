package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// privateMembers are the JWK members that carry RSA private key material.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// assertPublicOnly fails unless jwkJSON is a public RSA JWK with exactly the
// members ltikeys publishes.
func assertPublicOnly(t *testing.T, jwkJSON []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(jwkJSON, &m); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{"alg", "e", "kid", "kty", "n", "use"}; !slices.Equal(got, want) {
		t.Errorf("JWK members = %v, want %v", got, want)
	}
	for _, p := range privateMembers {
		if _, ok := m[p]; ok {
			t.Errorf("JWK has private member %q", p)
		}
	}
}

// fetchJWKS GETs the public JWKS and checks the response is a well-formed,
// public-only key set.
func fetchJWKS(t *testing.T, env *testEnv) []map[string]any {
	t.Helper()
	resp, err := http.Get(env.http.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks: %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v: %s", err, body)
	}
	keys := make([]map[string]any, len(set.Keys))
	for i, raw := range set.Keys {
		assertPublicOnly(t, raw)
		if err := json.Unmarshal(raw, &keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// publishedKids returns the kids in the served JWKS.
func publishedKids(t *testing.T, env *testEnv) map[string]bool {
	t.Helper()
	kids := map[string]bool{}
	for _, k := range fetchJWKS(t, env) {
		kid, _ := k["kid"].(string)
		if kids[kid] {
			t.Errorf("kid %q published twice", kid)
		}
		kids[kid] = true
	}
	return kids
}

func TestJWKSServesExactlyActivePublicKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		if keys := fetchJWKS(t, env); len(keys) != 0 {
			t.Errorf("empty store serves %d keys", len(keys))
		}
		a := env.mustCreate(t, "a")
		b := env.mustCreate(t, "b")
		rotated, err := env.keys.RotateKey(context.Background(), rotateNow(a.GetRegistration().GetId()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.keys.RetireKey(context.Background(), &ltikeysv1.RetireKeyRequest{Kid: a.GetKey().GetKid()}); err != nil {
			t.Fatal(err)
		}

		keys := fetchJWKS(t, env)
		var got []string
		for _, k := range keys {
			got = append(got, k["kid"].(string))
			if k["alg"] != "RS256" || k["use"] != "sig" || k["kty"] != "RSA" {
				t.Errorf("key %v: want RSA, RS256, sig", k)
			}
		}
		// Newest first: a's rotated key, then b's key.
		want := []string{rotated.GetNewKey().GetKid(), b.GetKey().GetKid()}
		if !slices.Equal(got, want) {
			t.Errorf("JWKS kids = %v, want %v (newest first, retired key absent)", got, want)
		}
	})
}

func TestPublicHTTPListenerServesNothingElse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.mustCreate(t, "routes")
		for _, tt := range []struct {
			method, path string
			want         int
		}{
			{http.MethodGet, "/healthz", http.StatusOK},
			{http.MethodGet, "/", http.StatusNotFound},
			{http.MethodGet, "/ltikeys.v1.KeyService/GetToolKey", http.StatusNotFound},
			{http.MethodPost, "/ltikeys.v1.KeyService/GetToolKey", http.StatusNotFound},
			{http.MethodPost, "/.well-known/jwks.json", http.StatusMethodNotAllowed},
			{http.MethodDelete, "/.well-known/jwks.json", http.StatusMethodNotAllowed},
			{http.MethodGet, "/.well-known/jwks.json/extra", http.StatusNotFound},
		} {
			req, err := http.NewRequest(tt.method, env.http.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		}
	})
}

// TestSignedTokenVerifiesAgainstJWKS is the end-to-end check of what ltikeys
// is for: a JWT signed with GetToolKey's private key verifies against the
// served JWKS, before and after a rotation.
func TestSignedTokenVerifiesAgainstJWKS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		created := env.mustCreate(t, "e2e")
		id := created.GetRegistration().GetId()

		before := signWithToolKey(t, env, id)
		verify(t, env, before)

		if _, err := env.keys.RotateKey(context.Background(), rotateNow(id)); err != nil {
			t.Fatal(err)
		}
		after := signWithToolKey(t, env, id)
		verify(t, env, after)
		// A token signed before the rotation still verifies during the overlap.
		verify(t, env, before)
	})
}

func signWithToolKey(t *testing.T, env *testEnv, registrationID string) []byte {
	t.Helper()
	resp, err := env.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: registrationID},
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey([]byte(resp.GetPrivateJwk()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewBuilder().
		Issuer(resp.GetRegistration().GetClientId()).
		Audience([]string{resp.GetRegistration().GetIssuer()}).
		IssuedAt(time.Now()).
		Expiration(time.Now().Add(5 * time.Minute)).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256, key))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func verify(t *testing.T, env *testEnv, token []byte) {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), env.http.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(token, jwt.WithKeySet(set), jwt.WithValidate(true)); err != nil {
		t.Errorf("token does not verify against the served JWKS: %v", err)
	}
}
