package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

func TestCreateRegistrationValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		tests := []struct {
			name   string
			modify func(*ltikeysv1.CreateRegistrationRequest)
			field  string
		}{
			{"missing issuer", func(r *ltikeysv1.CreateRegistrationRequest) { r.Issuer = "" }, "issuer"},
			{"blank issuer", func(r *ltikeysv1.CreateRegistrationRequest) { r.Issuer = "   " }, "issuer"},
			{"missing client_id", func(r *ltikeysv1.CreateRegistrationRequest) { r.ClientId = "" }, "client_id"},
			{"client_id too long", func(r *ltikeysv1.CreateRegistrationRequest) { r.ClientId = strings.Repeat("c", 256) }, "client_id"},
			{"client_id with newline", func(r *ltikeysv1.CreateRegistrationRequest) { r.ClientId = "a\nb" }, "client_id"},
			{"missing auth_endpoint", func(r *ltikeysv1.CreateRegistrationRequest) { r.AuthEndpoint = "" }, "auth_endpoint"},
			{"relative auth_endpoint", func(r *ltikeysv1.CreateRegistrationRequest) { r.AuthEndpoint = "/authorize" }, "auth_endpoint"},
			{"http jwks_uri", func(r *ltikeysv1.CreateRegistrationRequest) { r.JwksUri = "http://platform.example.com/jwks" }, "jwks_uri"},
			{"ftp token_endpoint", func(r *ltikeysv1.CreateRegistrationRequest) { r.TokenEndpoint = "ftp://platform.example.com/token" }, "token_endpoint"},
			{"token_endpoint with credentials", func(r *ltikeysv1.CreateRegistrationRequest) {
				r.TokenEndpoint = "https://u:p@platform.example.com/token"
			}, "token_endpoint"},
			{"missing token_endpoint", func(r *ltikeysv1.CreateRegistrationRequest) { r.TokenEndpoint = "" }, "token_endpoint"},
			{"http to a lookalike host", func(r *ltikeysv1.CreateRegistrationRequest) { r.JwksUri = "http://localhost.example.com/jwks" }, "jwks_uri"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := validCreate("validation")
				tt.modify(req)
				before := env.keyCount(t)
				_, err := env.keys.CreateRegistration(context.Background(), req)
				if got := status.Code(err); got != codes.InvalidArgument {
					t.Fatalf("code = %v (%v), want InvalidArgument", got, err)
				}
				if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, tt.field+":") {
					t.Errorf("message %q does not name field %q", msg, tt.field)
				}
				if after := env.keyCount(t); after != before {
					t.Errorf("keys: %d before, %d after a refused create", before, after)
				}
			})
		}
	})
}

func TestCreateRegistrationAllowsLoopbackHTTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for i, host := range []string{"localhost:8000", "127.0.0.1", "[::1]:9000"} {
			req := validCreate(fmt.Sprint("loopback", i))
			req.AuthEndpoint = "http://" + host + "/auth"
			req.JwksUri = "http://" + host + "/jwks"
			req.TokenEndpoint = "http://" + host + "/token"
			if _, err := env.keys.CreateRegistration(context.Background(), req); err != nil {
				t.Errorf("http on %s: %v", host, err)
			}
		}
	})
}

func TestCreateRegistrationDuplicate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		first := env.mustCreate(t, "dup")
		before := env.keyCount(t)
		req := validCreate("dup")
		req.AuthEndpoint = "https://other.example.com/auth"
		_, err := env.keys.CreateRegistration(context.Background(), req)
		if got := status.Code(err); got != codes.AlreadyExists {
			t.Fatalf("code = %v (%v), want AlreadyExists", got, err)
		}
		if after := env.keyCount(t); after != before {
			t.Errorf("a refused duplicate left a key behind: %d keys before, %d after", before, after)
		}
		got, err := env.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{
			Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: first.GetRegistration().GetId()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetRegistration().GetAuthEndpoint() != first.GetRegistration().GetAuthEndpoint() {
			t.Errorf("the duplicate changed the existing registration")
		}
	})
}

func TestCreateRegistrationResponse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		req := validCreate("resp")
		resp := env.mustCreate(t, "resp")
		reg, key := resp.GetRegistration(), resp.GetKey()
		if reg.GetId() == "" || reg.GetIssuer() != req.Issuer || reg.GetClientId() != req.ClientId ||
			reg.GetAuthEndpoint() != req.AuthEndpoint || reg.GetJwksUri() != req.JwksUri || reg.GetTokenEndpoint() != req.TokenEndpoint {
			t.Errorf("registration = %v, want the request's fields and an id", reg)
		}
		if reg.GetKid() != key.GetKid() || key.GetKid() == "" {
			t.Errorf("registration kid %q, key kid %q: want equal and set", reg.GetKid(), key.GetKid())
		}
		if key.GetAlg() != "RS256" || !key.GetActive() || key.GetRegistrationId() != reg.GetId() {
			t.Errorf("key = %v, want active RS256 of the registration", key)
		}
		if !reg.GetCreateTime().IsValid() || reg.GetCreateTime().AsTime().IsZero() || key.GetUpdateTime().AsTime().IsZero() {
			t.Errorf("timestamps not set: %v %v", reg.GetCreateTime(), key.GetUpdateTime())
		}
		assertPublicOnly(t, []byte(key.GetPublicJwk()))
	})
}

func TestGetToolKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		created := env.mustCreate(t, "get")
		id := created.GetRegistration().GetId()
		byID := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
		byPair := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
			Issuer: created.GetRegistration().GetIssuer(), ClientId: created.GetRegistration().GetClientId(),
		}}}
		for name, req := range map[string]*ltikeysv1.GetToolKeyRequest{"by id": byID, "by issuer and client_id": byPair} {
			t.Run(name, func(t *testing.T) {
				resp, err := env.keys.GetToolKey(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.GetKid() != created.GetKey().GetKid() || resp.GetRegistration().GetId() != id {
					t.Errorf("got kid %q of %q, want %q of %q", resp.GetKid(), resp.GetRegistration().GetId(), created.GetKey().GetKid(), id)
				}
				var jwk map[string]any
				if err := json.Unmarshal([]byte(resp.GetPrivateJwk()), &jwk); err != nil {
					t.Fatalf("private_jwk is not JSON: %v", err)
				}
				for member, want := range map[string]any{"kid": resp.GetKid(), "alg": "RS256", "use": "sig", "kty": "RSA"} {
					if jwk[member] != want {
						t.Errorf("private_jwk %s = %v, want %v", member, jwk[member], want)
					}
				}
				if _, ok := jwk["d"]; !ok {
					t.Errorf("private_jwk has no private exponent")
				}
			})
		}

		errorCases := []struct {
			name string
			req  *ltikeysv1.GetToolKeyRequest
			code codes.Code
		}{
			{"no lookup", &ltikeysv1.GetToolKeyRequest{}, codes.InvalidArgument},
			{"empty id", &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{}}, codes.InvalidArgument},
			{"malformed id", &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: "42"}}, codes.InvalidArgument},
			{"unknown id", &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: "0190a5c0-0000-7000-8000-000000000000"}}, codes.NotFound},
			{"pair without client_id", &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: "https://x"}}}, codes.InvalidArgument},
			{"unknown pair", &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
				Issuer: created.GetRegistration().GetIssuer(), ClientId: "someone-else"}}}, codes.NotFound},
		}
		for _, tt := range errorCases {
			t.Run(tt.name, func(t *testing.T) {
				_, err := env.keys.GetToolKey(context.Background(), tt.req)
				if got := status.Code(err); got != tt.code {
					t.Errorf("code = %v (%v), want %v", got, err, tt.code)
				}
			})
		}
	})
}

func TestRotateKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		created := env.mustCreate(t, "rotate")
		id := created.GetRegistration().GetId()
		resp, err := env.keys.RotateKey(context.Background(), rotateNow(id))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetPreviousKey().GetKid() != created.GetKey().GetKid() {
			t.Errorf("previous kid = %q, want %q", resp.GetPreviousKey().GetKid(), created.GetKey().GetKid())
		}
		newKid := resp.GetNewKey().GetKid()
		if newKid == "" || newKid == created.GetKey().GetKid() || resp.GetRegistration().GetKid() != newKid {
			t.Errorf("new kid %q, registration kid %q: want a fresh kid the registration points at", newKid, resp.GetRegistration().GetKid())
		}
		if !resp.GetPreviousKey().GetActive() || !resp.GetNewKey().GetActive() {
			t.Errorf("both keys must stay published: previous active=%v new active=%v", resp.GetPreviousKey().GetActive(), resp.GetNewKey().GetActive())
		}
		got, err := env.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetKid() != newKid {
			t.Errorf("GetToolKey after rotate returned kid %q, want %q", got.GetKid(), newKid)
		}
		if kids := publishedKids(t, env); !kids[newKid] || !kids[created.GetKey().GetKid()] {
			t.Errorf("JWKS %v lacks the new or the previous key", kids)
		}

		for _, tt := range []struct {
			name string
			id   string
			code codes.Code
		}{
			{"empty id", "", codes.InvalidArgument},
			{"malformed id", "not-a-uuid", codes.InvalidArgument},
			{"unknown id", "0190a5c0-0000-7000-8000-000000000000", codes.NotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := env.keyCount(t)
				_, err := env.keys.RotateKey(context.Background(), &ltikeysv1.RotateKeyRequest{RegistrationId: tt.id})
				if got := status.Code(err); got != tt.code {
					t.Errorf("code = %v (%v), want %v", got, err, tt.code)
				}
				if after := env.keyCount(t); after != before {
					t.Errorf("a failed rotate changed the key count from %d to %d", before, after)
				}
			})
		}
	})
}

func TestRetireKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		created := env.mustCreate(t, "retire")
		oldKid := created.GetKey().GetKid()
		rotated, err := env.keys.RotateKey(context.Background(), rotateNow(created.GetRegistration().GetId()))
		if err != nil {
			t.Fatal(err)
		}
		newKid := rotated.GetNewKey().GetKid()

		_, err = env.keys.RetireKey(context.Background(), &ltikeysv1.RetireKeyRequest{Kid: newKid})
		if got := status.Code(err); got != codes.FailedPrecondition {
			t.Errorf("retiring the current key: code = %v (%v), want FailedPrecondition", got, err)
		}
		if !publishedKids(t, env)[newKid] {
			t.Errorf("a refused retire unpublished the current key")
		}

		for attempt := 1; attempt <= 2; attempt++ {
			resp, err := env.keys.RetireKey(context.Background(), &ltikeysv1.RetireKeyRequest{Kid: oldKid})
			if err != nil {
				t.Fatalf("retire attempt %d: %v", attempt, err)
			}
			if resp.GetKey().GetKid() != oldKid || resp.GetKey().GetActive() {
				t.Errorf("retire attempt %d returned %v, want %q inactive", attempt, resp.GetKey(), oldKid)
			}
		}
		kids := publishedKids(t, env)
		if kids[oldKid] || !kids[newKid] {
			t.Errorf("JWKS after retire = %v, want %q without %q", kids, newKid, oldKid)
		}

		for _, tt := range []struct {
			name string
			kid  string
			code codes.Code
		}{
			{"empty kid", "", codes.InvalidArgument},
			{"unknown kid", "no-such-kid", codes.NotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := env.keys.RetireKey(context.Background(), &ltikeysv1.RetireKeyRequest{Kid: tt.kid})
				if got := status.Code(err); got != tt.code {
					t.Errorf("code = %v (%v), want %v", got, err, tt.code)
				}
			})
		}
	})
}

// TestConcurrentRotations runs 20 rotations of one registration at once:
// all succeed, each publishes its key, and the registration ends on one of
// them.
func TestConcurrentRotations(t *testing.T) {
	const n = 20
	// Room for the first key and every new one, which rotations without
	// a retirement window all keep published.
	forEachBackendWith(t, envOptions{configure: func(c *server.KeyServiceConfig) { c.MaxPublishedKeys = n + 1 }}, func(t *testing.T, env *testEnv) {
		created := env.mustCreate(t, "concurrent")
		id := created.GetRegistration().GetId()
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			newKids = map[string]bool{}
			errs    []error
		)
		for range n {
			wg.Go(func() {
				resp, err := env.keys.RotateKey(context.Background(), rotateNow(id))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				newKids[resp.GetNewKey().GetKid()] = true
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d of %d rotations failed; first: %v", len(errs), n, errs[0])
		}
		if len(newKids) != n {
			t.Fatalf("%d distinct new keys, want %d", len(newKids), n)
		}
		got, err := env.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
		if err != nil {
			t.Fatal(err)
		}
		if !newKids[got.GetKid()] {
			t.Errorf("registration points at %q, not one of the new keys", got.GetKid())
		}
		published := publishedKids(t, env)
		if len(published) != n+1 || !published[created.GetKey().GetKid()] {
			t.Errorf("JWKS has %d keys, want all %d (the first and the %d new)", len(published), n+1, n)
		}
		for kid := range newKids {
			if !published[kid] {
				t.Errorf("new key %q is not published", kid)
			}
		}
	})
}

// TestRotateKeyPublishedKeyCap rotates past --max-published-keys: the
// rotation is FAILED_PRECONDITION, says how to make room, and changes
// nothing; retiring a previous key makes room again.
func TestRotateKeyPublishedKeyCap(t *testing.T) {
	const max = 3
	forEachBackendWith(t, envOptions{configure: func(c *server.KeyServiceConfig) { c.MaxPublishedKeys = max }}, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "cap")
		id := created.GetRegistration().GetId()
		rotate := func() (*ltikeysv1.RotateKeyResponse, error) {
			// The new key signs at once and a year's overlap keeps every
			// previous key published: each rotation adds one.
			return env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0), RetirePreviousAfter: durationpb.New(365 * 24 * time.Hour)})
		}
		for i := 1; i < max; i++ {
			if _, err := rotate(); err != nil {
				t.Fatalf("rotation %d within the cap: %v", i, err)
			}
		}
		keysBefore, publishedBefore := env.keyCount(t), publishedKids(t, env)
		_, err := rotate()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("rotation past the cap: %v, want FAILED_PRECONDITION", err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "more than 3 keys") || !strings.Contains(msg, "ltikeys key retire") {
			t.Errorf("message does not say the cap and how to retire: %q", msg)
		}
		if got := env.keyCount(t); got != keysBefore {
			t.Errorf("refused rotation left %d key rows, had %d", got, keysBefore)
		}
		if got := publishedKids(t, env); len(got) != len(publishedBefore) {
			t.Errorf("refused rotation changed the JWKS: %d keys, had %d", len(got), len(publishedBefore))
		}
		if _, err := env.keys.RetireKey(ctx, &ltikeysv1.RetireKeyRequest{Kid: created.GetKey().GetKid()}); err != nil {
			t.Fatalf("RetireKey: %v", err)
		}
		if _, err := rotate(); err != nil {
			t.Errorf("rotation after retiring a previous key: %v", err)
		}
	})
}
