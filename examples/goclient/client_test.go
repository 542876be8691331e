package goclient_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/examples/goclient"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// ltikeys is a server running in the test process, as serve wires it:
// KeyService behind token authentication on a loopback gRPC listener, and
// the public HTTP listener with the JWK Sets.
type ltikeys struct {
	grpcAddr string
	// tokens are the accepted API tokens by name: "admin" (keys.admin) and
	// "launcher" (keys.sign).
	tokens map[string]string
}

// startServer starts ltikeys on an embedded database of its own. It stops
// when the test ends.
func startServer(t *testing.T) *ltikeys {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, storagetest.SQLiteURL(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	mk, err := crypto.GenerateMasterKey("example-1")
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := crypto.NewKeyring(mk)
	if err != nil {
		t.Fatal(err)
	}
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatalf("load the JWKS: %v", err)
	}

	// The HTTP listener first: its URL is the public URL the registrations'
	// tool_jwks_url is built on.
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{
		Store:     store,
		Keyring:   keyring,
		KeyBits:   2048,
		JWKS:      jwks,
		PublicURL: "http://" + httpLis.Addr().String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	jwksService := server.NewJwksService(jwks)
	handler, err := server.NewHTTPHandler(ctx, jwksService, jwks.Ready)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(httpLis)
	t.Cleanup(func() { hs.Close() })

	s := &ltikeys{tokens: map[string]string{}}
	var tokens []server.Token
	for name, scope := range map[string]server.Scope{"admin": server.ScopeKeysAdmin, "launcher": server.ScopeKeysSign} {
		secret, err := server.GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[name] = secret
		tokens = append(tokens, server.Token{Name: name, Scopes: []server.Scope{scope}, Hash: server.HashToken(secret)})
	}
	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor()),
		grpc.InTapHandle(auth.TapHandle()),
	)
	services := server.EarlyRefusals(srv)
	ltikeysv1.RegisterKeyServiceServer(services, keys)
	ltikeysv1.RegisterJwksServiceServer(services, jwksService)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(grpcLis)
	t.Cleanup(srv.Stop)
	s.grpcAddr = grpcLis.Addr().String()
	return s
}

// keyService dials s with goclient.Dial, over plaintext loopback, sending
// token.
func (s *ltikeys) keyService(t *testing.T, token string) ltikeysv1.KeyServiceClient {
	t.Helper()
	conn, err := goclient.Dial(s.grpcAddr, token, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return ltikeysv1.NewKeyServiceClient(conn)
}

// TestSignDeepLinkingResponse follows a tool's service: an admin registers
// a platform, the launcher (keys.sign only) signs a deep-linking response
// through ltikeys, and the platform verifies the JWT against the key set
// at the registration's tool_jwks_url.
func TestSignDeepLinkingResponse(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	created, err := s.keyService(t, s.tokens["admin"]).CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
		Issuer:        "https://canvas.instructure.com",
		ClientId:      "10000000000001",
		AuthEndpoint:  "https://sso.canvaslms.com/api/lti/authorize_redirect",
		JwksUri:       "https://sso.canvaslms.com/api/lti/security/jwks",
		TokenEndpoint: "https://sso.canvaslms.com/login/oauth2/token",
	})
	if err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}
	reg := created.GetRegistration()

	launcher := s.keyService(t, s.tokens["launcher"])
	claims := map[string]any{
		"iss":   reg.GetClientId(),
		"aud":   reg.GetIssuer(),
		"nonce": "4f3c0e2a-7b1d-4c55-9a7e-2d8f6b1c9e30",
		"https://purl.imsglobal.org/spec/lti/claim/deployment_id": "1:deployment",
		"https://purl.imsglobal.org/spec/lti/claim/message_type":  "LtiDeepLinkingResponse",
		"https://purl.imsglobal.org/spec/lti/claim/version":       "1.3.0",
		"https://purl.imsglobal.org/spec/lti-dl/claim/content_items": []any{
			map[string]any{"type": "ltiResourceLink", "title": "Quiz 3", "url": "https://tool.example.edu/launch/quiz-3"},
		},
	}
	token, err := goclient.SignDeepLinkingResponse(ctx, launcher, reg.GetIssuer(), reg.GetClientId(), claims)
	if err != nil {
		t.Fatalf("SignDeepLinkingResponse: %v", err)
	}

	// The platform's side: fetch the tool's key set, verify, read the claims.
	if reg.GetToolJwksUrl() == "" {
		t.Fatal("the registration has no tool_jwks_url")
	}
	resp, err := http.Get(reg.GetToolJwksUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", reg.GetToolJwksUrl(), resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode the JWKS: %v", err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse the JWT: %v", err)
	}
	kid := jws.Signatures[0].Protected.KeyID
	if kid != reg.GetKid() {
		t.Errorf("the JWT's kid is %q, want the registration's current key %q", kid, reg.GetKid())
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("the registration's JWKS has %d keys of kid %q, want 1", len(keys), kid)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("the JWT does not verify against the registration's JWKS: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"iss", "aud", "nonce", "https://purl.imsglobal.org/spec/lti/claim/message_type"} {
		if got[name] != claims[name] {
			t.Errorf("claim %s = %v, want %v", name, got[name], claims[name])
		}
	}
	iat, _ := got["iat"].(float64)
	exp, _ := got["exp"].(float64)
	if exp-iat != 300 {
		t.Errorf("exp - iat = %v s, want 300 (five minutes)", exp-iat)
	}
}

// TestDialCredentials: each call carries the token given to Dial, and the
// server authorizes it by that token's scopes.
func TestDialCredentials(t *testing.T) {
	s := startServer(t)
	for i, tc := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"unknown token", "ltk_not-a-token", codes.Unauthenticated},
		{"keys.sign only", s.tokens["launcher"], codes.PermissionDenied},
		{"keys.admin", s.tokens["admin"], codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.keyService(t, tc.token).CreateRegistration(context.Background(), &ltikeysv1.CreateRegistrationRequest{
				Issuer:        "https://moodle.example.edu",
				ClientId:      fmt.Sprint("client-", i),
				AuthEndpoint:  "https://moodle.example.edu/mod/lti/auth.php",
				JwksUri:       "https://moodle.example.edu/mod/lti/certs.php",
				TokenEndpoint: "https://moodle.example.edu/mod/lti/token.php",
			})
			if code := status.Code(err); code != tc.want {
				t.Errorf("CreateRegistration = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDialRefusesPlaintextBeyondLoopback: without a TLS configuration Dial
// connects only to loopback, so a token never leaves the machine in clear
// text.
func TestDialRefusesPlaintextBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"keys.internal:50051", "10.0.0.7:50051", "0.0.0.0:50051", "localhost.example.com:50051", "127.0.0.1"} {
		if conn, err := goclient.Dial(addr, "ltk_token", nil); err == nil {
			conn.Close()
			t.Errorf("Dial(%q) without TLS succeeded, want an error", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:50051", "localhost:50051", "[::1]:50051"} {
		conn, err := goclient.Dial(addr, "ltk_token", nil)
		if err != nil {
			t.Errorf("Dial(%q) without TLS: %v, want a connection", addr, err)
			continue
		}
		conn.Close()
	}
	conn, err := goclient.Dial("keys.internal:50051", "ltk_token", &tls.Config{})
	if err != nil {
		t.Fatalf("Dial with TLS: %v", err)
	}
	conn.Close()
}
