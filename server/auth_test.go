package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// The tokens every authEnv accepts, by name, and the scopes they carry.
var authEnvTokens = []struct {
	name   string
	scopes []server.Scope
}{
	{"admin", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformToken, server.ScopePlatformVerify}},
	{"reader", []server.Scope{server.ScopeKeysRead}},
	{"exporter", []server.Scope{server.ScopeKeysReadPrivate}},
	{"signer", []server.Scope{server.ScopeKeysSign}},
	{"manager", []server.Scope{server.ScopeKeysAdmin}},
	{"platform", []server.Scope{server.ScopePlatformToken}},
	{"verifier", []server.Scope{server.ScopePlatformVerify}},
	{"all-but-read_private", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysSign, server.ScopePlatformToken, server.ScopePlatformVerify}},
	{"all-but-sign", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopePlatformToken, server.ScopePlatformVerify}},
	{"all-but-admin", []server.Scope{server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformToken, server.ScopePlatformVerify}},
	{"all-but-read", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformToken, server.ScopePlatformVerify}},
	{"all-but-platform.token", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformVerify}},
	{"all-but-platform.verify", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformToken}},
}

// holderOf and lackerOf name, for each scope a method requires, a token
// holding exactly that scope and one holding every scope but it.
var (
	holderOf = map[server.Scope]string{
		server.ScopeKeysRead:        "reader",
		server.ScopeKeysReadPrivate: "exporter",
		server.ScopeKeysSign:        "signer",
		server.ScopeKeysAdmin:       "manager",
		server.ScopePlatformToken:   "platform",
		server.ScopePlatformVerify:  "verifier",
	}
	lackerOf = map[server.Scope]string{
		server.ScopeKeysRead:        "all-but-read",
		server.ScopeKeysReadPrivate: "all-but-read_private",
		server.ScopeKeysSign:        "all-but-sign",
		server.ScopeKeysAdmin:       "all-but-admin",
		server.ScopePlatformToken:   "all-but-platform.token",
		server.ScopePlatformVerify:  "all-but-platform.verify",
	}
)

// authEnv is a server as serve wires it, access control on, over an
// in-memory connection, on a fresh SQLite database, with every log line it
// writes captured.
type authEnv struct {
	lis    *bufconn.Listener
	store  storage.Store
	tokens map[string]string // token by name
	logs   *syncBuffer
	// keyCalls counts the calls that reached a KeyService handler.
	keyCalls *atomic.Int64
	// http is the public HTTP listener.
	http *httptest.Server
	// platform is a fake platform whose token endpoint GetPlatformAccessToken
	// reaches; it verifies assertions against the JWKS env.http serves, for
	// registrations whose client_id is platformClientID.
	platform *platformtest.Platform
	// launcher is a fake platform that signs launches, which
	// VerifyPlatformToken verifies against its key set for registrations
	// whose jwks_uri is launcher.JWKSURL.
	launcher *platformtest.Launcher
	// admin is a client holding the admin token, for setting up.
	admin ltikeysv1.KeyServiceClient
	// clientCreds secure every connection dial makes.
	clientCreds credentials.TransportCredentials
}

type authEnvConfig struct {
	// serverCreds secure the gRPC listener; nil for plaintext.
	serverCreds credentials.TransportCredentials
	// clientCreds are those of env.admin's connection; nil for plaintext.
	clientCreds credentials.TransportCredentials
	certScopes  []server.CertIdentity
	// disableKeyExport is KeyServiceConfig.DisableKeyExport.
	disableKeyExport bool
}

func newAuthEnv(t *testing.T, cfg authEnvConfig) *authEnv {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	store, err := storage.Open(ctx, storagetest.SQLiteURL(t), storage.WithLogger(log.With("component", "storage")))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	jwksService := server.NewJwksService(jwks)
	env := &authEnv{
		lis:         bufconn.Listen(1 << 20),
		store:       store,
		tokens:      map[string]string{},
		logs:        logs,
		keyCalls:    &atomic.Int64{},
		clientCreds: cfg.clientCreds,
	}
	handler, err := server.NewHTTPHandler(ctx, jwksService, jwks.Ready)
	if err != nil {
		t.Fatal(err)
	}
	env.http = httptest.NewUnstartedServer(handler)
	env.http.Config.DisableGeneralOptionsHandler = true // as serve sets it
	env.http.Start()
	t.Cleanup(env.http.Close)
	env.platform = platformtest.New(t, platformtest.Options{ClientID: platformClientID, JWKSURL: env.http.URL + server.JWKSPath})
	env.launcher = platformtest.NewLauncher(t, platformtest.LauncherOptions{ClientID: platformClientID, CA: env.platform.CA})

	keys, err := server.NewKeyService(server.KeyServiceConfig{
		Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: jwks, Log: log.With("component", "keys"),
		DisableKeyExport: cfg.disableKeyExport,
		PlatformTokens:   newPlatformTokens(t, env.platform.CA.Pool, platform.HTTPOptions{}, platform.TokenClientOptions{Logger: log.With("component", "platform")}),
		PlatformKeys:     newPlatformKeys(t, env.platform.CA.Pool, platform.KeySetOptions{Logger: log.With("component", "platform")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []server.Token
	for _, tok := range authEnvTokens {
		secret, err := server.GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		env.tokens[tok.name] = secret
		tokens = append(tokens, server.Token{Name: tok.name, Scopes: tok.scopes, Hash: server.HashToken(secret)})
	}
	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: tokens, CertScopes: cfg.certScopes, Log: log.With("component", "audit")})
	if err != nil {
		t.Fatal(err)
	}

	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor(), countKeyServiceCalls(env.keyCalls)),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor()),
		grpc.InTapHandle(auth.TapHandle()),
	}
	if cfg.serverCreds != nil {
		opts = append(opts, grpc.Creds(cfg.serverCreds))
	}
	srv := grpc.NewServer(opts...)
	services := server.EarlyRefusals(srv)
	ltikeysv1.RegisterKeyServiceServer(services, keys)
	ltikeysv1.RegisterJwksServiceServer(services, jwksService)
	go srv.Serve(env.lis)
	t.Cleanup(srv.Stop)

	env.admin = ltikeysv1.NewKeyServiceClient(env.dial(t, env.clientCreds, env.tokens["admin"]))
	return env
}

// countKeyServiceCalls is a spy on KeyService: it counts every call that
// reaches one of its handlers, whichever way it came in.
func countKeyServiceCalls(n *atomic.Int64) grpc.UnaryServerInterceptor {
	prefix := "/" + ltikeysv1.KeyService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, prefix) {
			n.Add(1)
		}
		return handler(ctx, req)
	}
}

// dial connects to env's gRPC listener with creds (nil for plaintext),
// sending token, if not empty, as a bearer token on every call.
func (e *authEnv) dial(t *testing.T, creds credentials.TransportCredentials, token string) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds),
	}
	if token != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), method, req, reply, cc, opts...)
		}))
	}
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var uniqueSuffix atomic.Int64

// create makes a registration through the admin client.
func (e *authEnv) create(t *testing.T) *ltikeysv1.CreateRegistrationResponse {
	t.Helper()
	resp, err := e.admin.CreateRegistration(context.Background(), validCreate(fmt.Sprint("auth-", uniqueSuffix.Add(1))))
	if err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}
	return resp
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// keyServiceMethods returns the methods of KeyService as the compiled API
// describes them, so new methods are covered without editing the tests.
func keyServiceMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	svc := ltikeysv1.File_ltikeys_v1_key_service_proto.Services().ByName("KeyService")
	if svc == nil {
		t.Fatal("KeyService not found in the compiled API")
	}
	var methods []protoreflect.MethodDescriptor
	for i := range svc.Methods().Len() {
		methods = append(methods, svc.Methods().Get(i))
	}
	if len(methods) < 4 {
		t.Fatalf("KeyService has %d methods, want at least 4", len(methods))
	}
	return methods
}

func fullMethod(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// invoke calls m on conn with req, whether m is unary or streaming, and
// returns the error of the call.
func invoke(ctx context.Context, conn *grpc.ClientConn, m protoreflect.MethodDescriptor, req proto.Message) error {
	resp := dynamicpb.NewMessage(m.Output())
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return conn.Invoke(ctx, fullMethod(m), req, resp)
	}
	desc := &grpc.StreamDesc{ClientStreams: m.IsStreamingClient(), ServerStreams: m.IsStreamingServer()}
	stream, err := conn.NewStream(ctx, desc, fullMethod(m))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return stream.RecvMsg(resp)
}

// withAuthorization returns ctx carrying the given authorization metadata
// values.
func withAuthorization(ctx context.Context, values ...string) context.Context {
	for _, v := range values {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

// TestEveryMethodHasAScope fails for any method of the API, in any service
// of the package, that is neither public nor in the access-control table: a
// new RPC cannot ship unguarded.
func TestEveryMethodHasAScope(t *testing.T) {
	var services int
	protoregistry.GlobalFiles.RangeFilesByPackage("ltikeys.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			services++
			for j := range svc.Methods().Len() {
				full := fullMethod(svc.Methods().Get(j))
				_, scoped := server.RequiredScope(full)
				public := server.IsPublicMethod(full)
				switch {
				case public && scoped:
					t.Errorf("%s is both public and scoped: decide which", full)
				case !public && !scoped:
					t.Errorf("%s has no entry in the access-control table (methodScopes in server/auth.go, or publicMethods if it is public): every caller is refused until it has one", full)
				}
			}
		}
		return true
	})
	if services < 2 {
		t.Fatalf("found %d services in package ltikeys.v1, want KeyService and JwksService", services)
	}
	for _, m := range keyServiceMethods(t) {
		if server.IsPublicMethod(fullMethod(m)) {
			t.Errorf("%s is public: KeyService hands out key material", fullMethod(m))
		}
	}
	if !server.IsPublicMethod(ltikeysv1.JwksService_GetJwks_FullMethodName) {
		t.Errorf("GetJwks is not public")
	}
}

// TestKeyServiceAccessControl calls every KeyService method with missing,
// wrong and malformed credentials, with a token lacking the method's scope,
// and with one holding it.
func TestKeyServiceAccessControl(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	conn := env.dial(t, nil, "")
	wrong, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}

	// A valid request for each method, made against the current store. A
	// new method needs one here.
	validRequests := map[protoreflect.Name]func(t *testing.T) proto.Message{
		"CreateRegistration": func(*testing.T) proto.Message {
			return validCreate(fmt.Sprint("acl-", uniqueSuffix.Add(1)))
		},
		"GetToolKey": func(t *testing.T) proto.Message {
			return &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: env.create(t).GetRegistration().GetId()}}
		},
		"SignJwt": func(t *testing.T) proto.Message {
			return &ltikeysv1.SignJwtRequest{
				Lookup:     &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: env.create(t).GetRegistration().GetId()},
				ClaimsJson: `{"sub":"user-1"}`,
			}
		},
		"CreateClientAssertion": func(t *testing.T) proto.Message {
			return &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: env.create(t).GetRegistration().GetId()}}
		},
		"RotateKey": func(t *testing.T) proto.Message {
			return &ltikeysv1.RotateKeyRequest{RegistrationId: env.create(t).GetRegistration().GetId()}
		},
		"RetireKey": func(t *testing.T) proto.Message {
			created := env.create(t)
			if _, err := env.admin.RotateKey(context.Background(), rotateNow(created.GetRegistration().GetId())); err != nil {
				t.Fatal(err)
			}
			return &ltikeysv1.RetireKeyRequest{Kid: created.GetKey().GetKid()}
		},
		"GetRegistration": func(t *testing.T) proto.Message {
			return &ltikeysv1.GetRegistrationRequest{Id: env.create(t).GetRegistration().GetId()}
		},
		"ListRegistrations": func(*testing.T) proto.Message {
			return &ltikeysv1.ListRegistrationsRequest{PageSize: 2}
		},
		"UpdateRegistration": func(t *testing.T) proto.Message {
			return &ltikeysv1.UpdateRegistrationRequest{
				Registration: &ltikeysv1.Registration{Id: env.create(t).GetRegistration().GetId(), JwksUri: "https://platform.example/new-jwks"},
				UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"jwks_uri"}},
			}
		},
		"DeleteRegistration": func(t *testing.T) proto.Message {
			return &ltikeysv1.DeleteRegistrationRequest{Id: env.create(t).GetRegistration().GetId()}
		},
		"ListKeys": func(*testing.T) proto.Message {
			return &ltikeysv1.ListKeysRequest{State: ltikeysv1.KeyState_KEY_STATE_CURRENT}
		},
		"GetPlatformAccessToken": func(t *testing.T) proto.Message {
			req := validCreate(fmt.Sprint("acl-", uniqueSuffix.Add(1)))
			req.ClientId, req.TokenEndpoint = platformClientID, env.platform.TokenURL
			created, err := env.admin.CreateRegistration(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			return &ltikeysv1.GetPlatformAccessTokenRequest{
				Lookup: &ltikeysv1.GetPlatformAccessTokenRequest_RegistrationId{RegistrationId: created.GetRegistration().GetId()},
				Scopes: []string{scopeScore},
			}
		},
		"VerifyPlatformToken": func(t *testing.T) proto.Message {
			req := validCreate(fmt.Sprint("acl-", uniqueSuffix.Add(1)))
			req.JwksUri = env.launcher.JWKSURL
			created, err := env.admin.CreateRegistration(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			nonce := "nonce-" + rand.Text()
			token, err := env.launcher.Sign(env.launcher.LaunchClaims(nonce).With("iss", req.Issuer).With("aud", req.ClientId))
			if err != nil {
				t.Fatal(err)
			}
			return verifyByID(created.GetRegistration().GetId(), token, nonce)
		},
	}

	for _, m := range keyServiceMethods(t) {
		t.Run(string(m.Name()), func(t *testing.T) {
			scope, ok := server.RequiredScope(fullMethod(m))
			if !ok {
				t.Fatalf("%s has no scope", fullMethod(m))
			}
			holder, lacker := env.tokens[holderOf[scope]], env.tokens[lackerOf[scope]]
			refused := []struct {
				name          string
				authorization []string
				want          codes.Code
			}{
				{"no token", nil, codes.Unauthenticated},
				{"wrong token", []string{"Bearer " + wrong}, codes.Unauthenticated},
				{"token without scheme", []string{holder}, codes.Unauthenticated},
				{"other scheme", []string{"Basic " + holder}, codes.Unauthenticated},
				{"empty bearer", []string{"Bearer "}, codes.Unauthenticated},
				{"hash instead of token", []string{"Bearer " + server.HashToken(holder)}, codes.Unauthenticated},
				{"token with a suffix", []string{"Bearer " + holder + "x"}, codes.Unauthenticated},
				{"two tokens", []string{"Bearer " + holder, "Bearer " + wrong}, codes.Unauthenticated},
				{"token lacking " + string(scope), []string{"Bearer " + lacker}, codes.PermissionDenied},
			}
			before := env.keyCalls.Load()
			messages := map[string]bool{}
			for _, tt := range refused {
				// An empty request: refusal must not depend on the request.
				err := invoke(withAuthorization(context.Background(), tt.authorization...), conn, m, dynamicpb.NewMessage(m.Input()))
				if got := status.Code(err); got != tt.want {
					t.Errorf("%s: code = %v (%v), want %v", tt.name, got, err, tt.want)
				}
				if tt.want == codes.Unauthenticated {
					messages[status.Convert(err).Message()] = true
				}
			}
			if len(messages) != 1 {
				t.Errorf("UNAUTHENTICATED messages differ between causes: %v", messages)
			}
			if after := env.keyCalls.Load(); after != before {
				t.Errorf("%d refused calls reached the KeyService handler", after-before)
			}

			ctx := withAuthorization(context.Background(), "Bearer "+holder)
			if err := invoke(ctx, conn, m, dynamicpb.NewMessage(m.Input())); status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
				t.Errorf("empty request with scope %s: %v, want a validation error, not an access error", scope, err)
			}
			valid, ok := validRequests[m.Name()]
			if !ok {
				t.Fatalf("no valid request for %s in validRequests: add one so its access control is tested end to end", m.Name())
			}
			if err := invoke(ctx, conn, m, valid(t)); err != nil {
				t.Errorf("valid request with scope %s: %v", scope, err)
			}
			// The scheme is case-insensitive (RFC 9110).
			ctx = withAuthorization(context.Background(), "bearer "+env.tokens["admin"])
			if err := invoke(ctx, conn, m, valid(t)); err != nil {
				t.Errorf("valid request with the admin token and a lowercase scheme: %v", err)
			}
		})
	}
}

func TestJwksServiceIsPublic(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	env.create(t)
	jwks := ltikeysv1.NewJwksServiceClient(env.dial(t, nil, ""))
	for name, ctx := range map[string]context.Context{
		"no token":    context.Background(),
		"wrong token": withAuthorization(context.Background(), "Bearer ltk_wrong"),
	} {
		body, err := jwks.GetJwks(ctx, &ltikeysv1.GetJwksRequest{})
		if err != nil {
			t.Errorf("%s: GetJwks: %v", name, err)
			continue
		}
		if !bytes.Contains(body.GetData(), []byte(`"keys"`)) {
			t.Errorf("%s: GetJwks returned %q", name, body.GetData())
		}
	}
}

// TestUnlistedMethodsAreRefused calls the interceptors directly with
// methods that have no entry in the access-control table: even the admin
// token is refused and the handler never runs.
func TestUnlistedMethodsAreRefused(t *testing.T) {
	token, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: []server.Token{{
		Name: "admin", Scopes: []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead}, Hash: server.HashToken(token),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	authenticated := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	for _, method := range []string{
		"/ltikeys.v1.KeyService/DeleteEverything",
		"/ltikeys.v1.JwksService/GetPrivateJwks",
		"/ltikeys.v1.AdminService/Anything",
		"/other.v1.Service/Method",
		"ltikeys.v1.KeyService/GetToolKey",
		"",
	} {
		for name, ctx := range map[string]context.Context{"admin token": authenticated, "no token": context.Background()} {
			want := codes.PermissionDenied
			if name == "no token" {
				want = codes.Unauthenticated
			}
			called := false
			_, err := auth.UnaryInterceptor()(ctx, &ltikeysv1.GetToolKeyRequest{}, &grpc.UnaryServerInfo{FullMethod: method},
				func(context.Context, any) (any, error) { called = true; return nil, nil })
			if got := status.Code(err); got != want || called {
				t.Errorf("unary %q, %s: code %v, handler called %v; want %v and not called", method, name, got, called, want)
			}
			called = false
			err = auth.StreamInterceptor()(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true},
				func(any, grpc.ServerStream) error { called = true; return nil })
			if got := status.Code(err); got != want || called {
				t.Errorf("stream %q, %s: code %v, handler called %v; want %v and not called", method, name, got, called, want)
			}
		}
	}
}

// TestStreamInterceptor checks streams: public ones pass without
// credentials, others are authenticated, and the handler sees the caller.
func TestStreamInterceptor(t *testing.T) {
	token, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens: []server.Token{{Name: "exporter", Scopes: []server.Scope{server.ScopeKeysReadPrivate}, Hash: server.HashToken(token)}},
		Log:    slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	interceptor := auth.StreamInterceptor()

	called := false
	err = interceptor(nil, &fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch", IsServerStream: true},
		func(any, grpc.ServerStream) error { called = true; return nil })
	if err != nil || !called {
		t.Errorf("public stream without credentials: err %v, handler called %v", err, called)
	}

	// The interceptor does not care that GetToolKey is unary: it stands for
	// a streaming method with the same scope.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	stream := &fakeStream{ctx: ctx, recv: &ltikeysv1.RotateKeyRequest{RegistrationId: "0190a5c0-0000-7000-8000-000000000001"}}
	var caller server.Caller
	err = interceptor(nil, stream, &grpc.StreamServerInfo{FullMethod: ltikeysv1.KeyService_GetToolKey_FullMethodName, IsServerStream: true},
		func(_ any, ss grpc.ServerStream) error {
			caller, _ = server.CallerFromContext(ss.Context())
			var req ltikeysv1.RotateKeyRequest
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			return ss.SendMsg(&ltikeysv1.GetToolKeyResponse{Kid: "kid-1", PrivateJwk: `{"d":"secret"}`})
		})
	if err != nil {
		t.Fatalf("authenticated stream: %v", err)
	}
	if caller.Name != "exporter" || !caller.Has(server.ScopeKeysReadPrivate) {
		t.Errorf("handler saw caller %+v, want exporter with keys.read_private", caller)
	}
	lines := auditLines(t, logs.String())
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1:\n%s", len(lines), logs)
	}
	want := map[string]string{"method": ltikeysv1.KeyService_GetToolKey_FullMethodName, "caller": "exporter",
		"registration_id": "0190a5c0-0000-7000-8000-000000000001", "kid": "kid-1", "code": "OK"}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("audit %s = %v, want %q", k, lines[0][k], v)
		}
	}
	if strings.Contains(logs.String(), "secret") || strings.Contains(logs.String(), token) {
		t.Errorf("the audit log holds a secret:\n%s", logs)
	}
}

// fakeStream is a server stream that holds at most one message to receive.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	recv proto.Message
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) RecvMsg(m any) error {
	if f.recv == nil {
		return fmt.Errorf("no message")
	}
	proto.Merge(m.(proto.Message), f.recv)
	f.recv = nil
	return nil
}

func (f *fakeStream) SendMsg(any) error { return nil }

func TestParseTokens(t *testing.T) {
	hash := server.HashToken("ltk_example")
	text := "# comment\n\n  ci:keys.read:" + hash + "  \nops:keys.admin, keys.read,keys.admin:" + strings.ToUpper(server.HashToken("other")) + "\n"
	tokens, err := server.ParseTokens([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 {
		t.Fatalf("got %d tokens, want 2", len(tokens))
	}
	if tokens[0].Name != "ci" || tokens[0].Hash != hash || len(tokens[0].Scopes) != 1 || tokens[0].Scopes[0] != server.ScopeKeysRead {
		t.Errorf("first token = %+v", tokens[0])
	}
	if got := tokens[1]; got.Name != "ops" || got.Hash != server.HashToken("other") || len(got.Scopes) != 2 {
		t.Errorf("second token = %+v, want lowercase hash and scopes without duplicates", got)
	}
	if again, err := server.ParseTokens([]byte(tokens[1].Line())); err != nil || again[0].Line() != tokens[1].Line() {
		t.Errorf("Line does not round-trip: %q: %v", tokens[1].Line(), err)
	}

	for _, bad := range []string{
		"ci:keys.read",                // no hash
		"ci:" + hash,                  // no scopes
		"ci:keys.read:ltk_example",    // the token itself
		"ci:keys.read:" + hash[:63],   // short hash
		"ci:keys.read:" + hash + "00", // long hash
		"ci:keys.write:" + hash,       // unknown scope
		"ci::" + hash,                 // empty scope
		":keys.read:" + hash,          // empty name
		"c i:keys.read:" + hash,       // bad name
		"ci:keys.read:" + hash + "\nci:keys.read:" + server.HashToken("x"), // duplicate name
		"a:keys.read:" + hash + "\nb:keys.read:" + hash,                    // duplicate hash
	} {
		if _, err := server.ParseTokens([]byte(bad)); err == nil {
			t.Errorf("ParseTokens(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "ltk_example") {
			t.Errorf("ParseTokens(%q) error repeats the token: %v", bad, err)
		}
	}
}

func TestParseCertScopes(t *testing.T) {
	ids, err := server.ParseCertScopes([]byte("# comment\nuri:spiffe://example.org/ns/tool:keys.read\ndns:Tool.Example.ORG:keys.admin,keys.read\ncn:ops:keys.admin\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"uri:spiffe://example.org/ns/tool", "dns:tool.example.org", "cn:ops"}
	if len(ids) != len(want) {
		t.Fatalf("got %d identities, want %d", len(ids), len(want))
	}
	for i, id := range ids {
		if id.Identity != want[i] {
			t.Errorf("identity %d = %q, want %q", i, id.Identity, want[i])
		}
	}
	for _, bad := range []string{
		"spiffe://example.org/tool:keys.read", // untyped
		"email:a@example.org:keys.read",       // unknown type
		"cn::keys.read",                       // empty value
		"cn:ops",                              // no scopes
		"cn:ops:keys.all",                     // unknown scope
		"cn:ops:keys.read\ncn:ops:keys.admin", // duplicate
	} {
		if _, err := server.ParseCertScopes([]byte(bad)); err == nil {
			t.Errorf("ParseCertScopes(%q) succeeded", bad)
		}
	}
}

func TestGenerateAndHashToken(t *testing.T) {
	if got, want := server.HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashToken(abc) = %s, want %s", got, want)
	}
	a, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := server.GenerateToken()
	if !strings.HasPrefix(a, server.TokenPrefix) || len(a) != len(server.TokenPrefix)+43 || a == b {
		t.Errorf("GenerateToken = %q, %q: want distinct %s-prefixed 32-byte base64url tokens", a, b, server.TokenPrefix)
	}
}

func TestNewAuthenticatorRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]server.AuthConfig{
		"token hash":        {Tokens: []server.Token{{Name: "a", Scopes: []server.Scope{server.ScopeKeysRead}, Hash: "ltk_x"}}},
		"token scope":       {Tokens: []server.Token{{Name: "a", Scopes: []server.Scope{"keys.all"}, Hash: server.HashToken("x")}}},
		"certificate scope": {CertScopes: []server.CertIdentity{{Identity: "cn:a", Scopes: []server.Scope{"keys.all"}}}},
	} {
		if _, err := server.NewAuthenticator(cfg); err == nil {
			t.Errorf("%s: NewAuthenticator accepted a bad configuration", name)
		}
	}
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial atomic.Int64

// issue returns a leaf certificate signed by ca, for a server or a client.
func (ca *testCA) issue(t *testing.T, server bool, cn string, dnsNames []string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// clientTLS returns client credentials trusting serverCA that present cert,
// if not nil, whatever CAs the server says it accepts.
func clientTLS(serverCA *testCA, cert *tls.Certificate) credentials.TransportCredentials {
	cfg := &tls.Config{RootCAs: serverCA.pool, ServerName: "ltikeys.test", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return credentials.NewTLS(cfg)
}

// TestMutualTLS runs the gRPC listener with client certificates required:
// certificates from another CA, or none, are refused before any call; a
// mapped identity gets its scopes; a token still works over mTLS.
func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "ltikeys test CA")
	otherCA := newTestCA(t, "another CA")
	serverCert := ca.issue(t, true, "ltikeys.test", []string{"ltikeys.test"})
	serverCreds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	const readerURI = "spiffe://ltikeys.test/reader"
	var (
		reader   = ca.issue(t, false, "reader", nil, readerURI)
		admin    = ca.issue(t, false, "ops", []string{"Admin.LTIKeys.test"})
		stranger = ca.issue(t, false, "stranger", []string{"stranger.ltikeys.test"})
		forged   = otherCA.issue(t, false, "ops", []string{"admin.ltikeys.test"}, readerURI)
	)
	certScopes, err := server.ParseCertScopes([]byte("uri:" + readerURI + ":keys.read_private\ndns:admin.ltikeys.test:keys.admin\ncn:ops:keys.read_private\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := newAuthEnv(t, authEnvConfig{serverCreds: serverCreds, clientCreds: clientTLS(ca, &stranger), certScopes: certScopes})
	created := env.create(t) // the stranger's certificate with the admin token
	getKey := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: created.GetRegistration().GetId()}}

	call := func(creds credentials.TransportCredentials, token string, create bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys := ltikeysv1.NewKeyServiceClient(env.dial(t, creds, token))
		if create {
			_, err := keys.CreateRegistration(ctx, validCreate(fmt.Sprint("mtls-", uniqueSuffix.Add(1))))
			return err
		}
		_, err := keys.GetToolKey(ctx, getKey)
		return err
	}

	t.Run("refused at the handshake", func(t *testing.T) {
		before := env.keyCalls.Load()
		for name, creds := range map[string]credentials.TransportCredentials{
			"no certificate":            clientTLS(ca, nil),
			"certificate of another CA": clientTLS(ca, &forged),
		} {
			for _, token := range []string{"", env.tokens["admin"]} {
				if err := call(creds, token, false); status.Code(err) != codes.Unavailable {
					t.Errorf("%s (token %v): GetToolKey = %v, want UNAVAILABLE (handshake refused)", name, token != "", err)
				}
			}
		}
		if err := call(nil, env.tokens["admin"], false); status.Code(err) != codes.Unavailable {
			t.Errorf("plaintext client: GetToolKey = %v, want UNAVAILABLE", err)
		}
		if after := env.keyCalls.Load(); after != before {
			t.Errorf("%d refused connections reached KeyService", after-before)
		}
	})

	for _, tt := range []struct {
		name       string
		cert       tls.Certificate
		token      string
		get, write codes.Code
	}{
		{"URI SAN mapped to keys.read_private", reader, "", codes.OK, codes.PermissionDenied},
		{"DNS SAN and CN mapped to keys.admin and keys.read_private", admin, "", codes.OK, codes.OK},
		{"unmapped certificate", stranger, "", codes.Unauthenticated, codes.Unauthenticated},
		{"unmapped certificate with an exporter token", stranger, env.tokens["exporter"], codes.OK, codes.PermissionDenied},
		{"mapped certificate with a wrong token", admin, "ltk_wrong", codes.Unauthenticated, codes.Unauthenticated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			creds := clientTLS(ca, &tt.cert)
			if err := call(creds, tt.token, false); status.Code(err) != tt.get {
				t.Errorf("GetToolKey = %v, want %v", err, tt.get)
			}
			if err := call(creds, tt.token, true); status.Code(err) != tt.write {
				t.Errorf("CreateRegistration = %v, want %v", err, tt.write)
			}
		})
	}

	callers := map[string]bool{}
	for _, line := range auditLines(t, env.logs.String()) {
		callers[fmt.Sprint(line["caller"])] = true
	}
	for _, want := range []string{"uri:" + readerURI, "dns:admin.ltikeys.test", "exporter", "admin"} {
		if !callers[want] {
			t.Errorf("no audit line names caller %q; callers: %v", want, callers)
		}
	}
}
