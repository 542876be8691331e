package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// mixedCase returns id with every other hex letter in upper case.
func mixedCase(id string) string {
	b := []byte(id)
	letter := 0
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			if letter%2 == 0 {
				b[i] = c - 'a' + 'A'
			}
			letter++
		}
	}
	return string(b)
}

// TestRegistrationJWKSIdInAnyCase fetches a registration's JWK Set by its
// id in lower, upper and mixed case, over HTTP (from memory and through
// the gateway) and over gRPC: each gets the same document under the same
// ETag, which a conditional request in another case matches.
func TestRegistrationJWKSIdInAnyCase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		id := env.mustCreate(t, "case").GetRegistration().GetId()
		if id != strings.ToLower(id) {
			t.Fatalf("registration id %q is not in lower case", id)
		}
		if strings.ToUpper(id) == id {
			t.Fatalf("registration id %q has no hex letter to change the case of", id)
		}
		svc := server.NewJwksService(env.jwks)
		viaGateway, err := server.NewHTTPHandler(ctx, struct{ ltikeysv1.JwksServiceServer }{svc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		handlers := map[string]http.Handler{"public listener": env.http.Config.Handler, "gateway": viaGateway}
		get := func(h http.Handler, id, inm string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodGet, "/registrations/"+id+"/jwks.json", nil)
			if inm != "" {
				req.Header.Set("If-None-Match", inm)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}

		lower := get(env.http.Config.Handler, id, "")
		if lower.Code != http.StatusOK || !kids(t, lower.Body.Bytes())[env.mustKid(t, id)] {
			t.Fatalf("GET with the lower-case id = %d: %s", lower.Code, lower.Body)
		}
		etag := lower.Header().Get("ETag")
		for name, h := range handlers {
			for _, variant := range []string{id, strings.ToUpper(id), mixedCase(id)} {
				got := get(h, variant, "")
				if got.Code != http.StatusOK || !bytes.Equal(got.Body.Bytes(), lower.Body.Bytes()) || got.Header().Get("ETag") != etag {
					t.Errorf("%s: GET /registrations/%s/jwks.json = %d, ETag %q, %d bytes; want 200, ETag %q and the lower-case id's %d bytes",
						name, variant, got.Code, got.Header().Get("ETag"), got.Body.Len(), etag, lower.Body.Len())
				}
				if got := get(h, variant, etag); got.Code != http.StatusNotModified {
					t.Errorf("%s: GET /registrations/%s/jwks.json with the lower-case id's ETag = %d, want 304", name, variant, got.Code)
				}
			}
		}

		for _, variant := range []string{strings.ToUpper(id), mixedCase(id)} {
			var header metadata.MD
			body, err := env.jwksClient.GetRegistrationJwks(ctx, &ltikeysv1.GetRegistrationJwksRequest{RegistrationId: variant}, grpc.Header(&header))
			if err != nil {
				t.Fatalf("GetRegistrationJwks(%s): %v", variant, err)
			}
			if !bytes.Equal(body.GetData(), lower.Body.Bytes()) || !equalValues(header.Get("http-etag"), etag) {
				t.Errorf("GetRegistrationJwks(%s): http-etag %v, %d bytes; want %q and the HTTP document", variant, header.Get("http-etag"), len(body.GetData()), etag)
			}
		}
		// Another registration's id is still unknown in any case.
		other := strings.ToUpper("0190a5c0-0000-7000-8000-0000000000ff")
		if got := get(env.http.Config.Handler, other, ""); got.Code != http.StatusNotFound {
			t.Errorf("GET an unknown upper-case id = %d, want 404", got.Code)
		}
		if _, err := env.jwksClient.GetRegistrationJwks(ctx, &ltikeysv1.GetRegistrationJwksRequest{RegistrationId: other}); status.Code(err) != codes.NotFound {
			t.Errorf("GetRegistrationJwks of an unknown upper-case id: %v, want NotFound", err)
		}
	})
}

func equalValues(values []string, want string) bool {
	return len(values) == 1 && values[0] == want
}

// mustKid returns the kid registration id signs with now.
func (e *testEnv) mustKid(t *testing.T, id string) string {
	t.Helper()
	got, err := e.keys.GetRegistration(context.Background(), &ltikeysv1.GetRegistrationRequest{Id: id})
	if err != nil {
		t.Fatalf("GetRegistration(%s): %v", id, err)
	}
	return got.GetRegistration().GetKid()
}

// TestKeyServiceIdsInAnyCase drives every KeyService method that takes a
// registration id with the id in upper case: each finds the registration
// the lower-case id names, and answers with the id in lower case. A key a
// rotation by the upper-case id made opens and signs: it is bound to the
// registration's stored id.
func TestKeyServiceIdsInAnyCase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "case-keys")
		id := created.GetRegistration().GetId()
		upper := strings.ToUpper(id)
		kid := created.GetKey().GetKid()

		got, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: upper})
		if err != nil || got.GetRegistration().GetId() != id {
			t.Fatalf("GetRegistration(%s) = %v, %v; want registration %s", upper, got, err, id)
		}
		key, err := env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: upper}})
		if err != nil || key.GetKid() != kid || key.GetRegistration().GetId() != id {
			t.Fatalf("GetToolKey(%s) = kid %q of %q, %v; want %s of %s", upper, key.GetKid(), key.GetRegistration().GetId(), err, kid, id)
		}
		signed, err := env.keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: mixedCase(id)}, ClaimsJson: `{"sub":"case"}`})
		if err != nil || signed.GetKid() != kid {
			t.Fatalf("SignJwt(%s) = kid %q, %v; want %s", mixedCase(id), signed.GetKid(), err, kid)
		}
		assertion, err := env.keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: upper}})
		if err != nil || assertion.GetKid() != kid {
			t.Fatalf("CreateClientAssertion(%s) = kid %q, %v; want %s", upper, assertion.GetKid(), err, kid)
		}
		updated, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{Registration: &ltikeysv1.Registration{
			Id: upper, AuthEndpoint: "https://canvas.example.edu/api/lti/authorize", JwksUri: created.GetRegistration().GetJwksUri(), TokenEndpoint: created.GetRegistration().GetTokenEndpoint(),
		}})
		if err != nil || updated.GetRegistration().GetId() != id || updated.GetRegistration().GetAuthEndpoint() != "https://canvas.example.edu/api/lti/authorize" {
			t.Fatalf("UpdateRegistration(%s) = %v, %v", upper, updated, err)
		}

		rotated, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: upper, PublishAhead: durationpb.New(0)})
		if err != nil || rotated.GetRegistration().GetId() != id || rotated.GetNewKey().GetRegistrationId() != id {
			t.Fatalf("RotateKey(%s) = %v, %v; want registration %s", upper, rotated, err, id)
		}
		newKid := rotated.GetNewKey().GetKid()
		signed, err = env.keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}, ClaimsJson: `{"sub":"case"}`})
		if err != nil || signed.GetKid() != newKid {
			t.Fatalf("SignJwt after RotateKey(%s) = kid %q, %v; want the new key %s", upper, signed.GetKid(), err, newKid)
		}

		// ListKeys: the same keys, and page tokens that work with the id
		// in either case.
		page, err := env.keys.ListKeys(ctx, &ltikeysv1.ListKeysRequest{RegistrationId: upper, PageSize: 1})
		if err != nil || len(page.GetKeys()) != 1 || page.GetKeys()[0].GetKid() != kid || page.GetNextPageToken() == "" {
			t.Fatalf("ListKeys(%s) first page = %v, %v; want %s and a next page", upper, page, err, kid)
		}
		next, err := env.keys.ListKeys(ctx, &ltikeysv1.ListKeysRequest{RegistrationId: id, PageSize: 1, PageToken: page.GetNextPageToken()})
		if err != nil || len(next.GetKeys()) != 1 || next.GetKeys()[0].GetKid() != newKid {
			t.Fatalf("ListKeys(%s) second page = %v, %v; want %s", id, next, err, newKid)
		}

		deleted, err := env.keys.DeleteRegistration(ctx, &ltikeysv1.DeleteRegistrationRequest{Id: upper})
		if err != nil || len(deleted.GetRetiredKeys()) != 2 {
			t.Fatalf("DeleteRegistration(%s) = %v, %v; want its 2 keys retired", upper, deleted, err)
		}
		if _, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Errorf("GetRegistration(%s) after DeleteRegistration(%s): %v, want NotFound", id, upper, err)
		}
	})
}
