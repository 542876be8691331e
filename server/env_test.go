package server_test

import (
	"cmp"
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// backends lists the storage backends every server test runs against; each
// returns the URL of a fresh, empty database.
var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", storagetest.SQLiteURL},
	{"postgres", storagetest.PostgresURL},
}

// forEachBackend runs test once per storage backend.
func forEachBackend(t *testing.T, test func(t *testing.T, env *testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			test(t, newTestEnvWith(t, b.url(t), testKeyring))
		})
	}
}

// forEachBackendWith runs test once per storage backend, on a server
// started with o (its keyring, if unset, is testKeyring).
func forEachBackendWith(t *testing.T, o envOptions, test func(t *testing.T, env *testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env, _ := startEnv(t, b.url(t), o)
			test(t, env)
		})
	}
}

// testEnv is a running server, reached over an in-memory connection.
type testEnv struct {
	// url is the database's; a second testEnv on it shares its data.
	url     string
	store   storage.Store
	keyring *crypto.Keyring
	keys    ltikeysv1.KeyServiceClient
	// jwksClient calls JwksService over gRPC, on the same connection.
	jwksClient ltikeysv1.JwksServiceClient
	jwks       *server.JWKSCache
	// health is wired as serve wires it: per service, /readyz following
	// JwksService. It is evaluated on /readyz and by Run only.
	health *server.Health
	// healthClient calls grpc.health.v1 on the same connection.
	healthClient healthpb.HealthClient
	// http is the public HTTP listener.
	http *httptest.Server
}

// testKeyring is one master key shared by the tests of this package.
var testKeyring = func() *crypto.Keyring {
	mk, err := crypto.GenerateMasterKey("test-1")
	if err != nil {
		panic(err)
	}
	kr, err := crypto.NewKeyring(mk)
	if err != nil {
		panic(err)
	}
	return kr
}()

// newTestEnvWith starts a server on the database at databaseURL that seals
// and opens private keys with keyring.
func newTestEnvWith(t testing.TB, databaseURL string, keyring *crypto.Keyring) *testEnv {
	t.Helper()
	env, _ := startEnv(t, databaseURL, envOptions{keyring: keyring})
	return env
}

// envOptions varies the server startEnv runs; the zero value is the server
// every forEachBackend test gets.
type envOptions struct {
	// keyring seals and opens private keys; testKeyring if nil.
	keyring *crypto.Keyring
	store   []storage.Option
	cache   []server.JWKSCacheOption
	jwks    []server.JwksOption
	// configure, if set, adjusts the KeyService's configuration.
	configure func(*server.KeyServiceConfig)
}

// startEnv starts a server on the database at databaseURL: KeyService and
// JwksService over an in-memory gRPC connection, and the public HTTP
// handler. It returns the KeyService too, for tests that drive it directly.
// Everything stops when the test ends.
func startEnv(t testing.TB, databaseURL string, o envOptions) (*testEnv, *server.KeyService) {
	t.Helper()
	ctx := context.Background()
	keyring := cmp.Or(o.keyring, testKeyring)
	store, err := storage.Open(ctx, databaseURL, o.store...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	jwks := server.NewJWKSCache(store, o.cache...)
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatalf("jwks refresh: %v", err)
	}
	cfg := server.KeyServiceConfig{
		Store:   store,
		Keyring: keyring,
		KeyBits: 2048,
		JWKS:    jwks,
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	keys, err := server.NewKeyService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	jwksService := server.NewJwksService(jwks, o.jwks...)

	keyName, jwksName := ltikeysv1.KeyService_ServiceDesc.ServiceName, ltikeysv1.JwksService_ServiceDesc.ServiceName
	health := server.NewHealth(nil, keyName, jwksName)
	health.MarkStarted(ctx, map[string]func(context.Context) error{
		keyName:  keys.Ready,
		jwksName: server.JWKSReady(jwks, server.DefaultJWKSMaxStale, time.Now),
	})

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	ltikeysv1.RegisterKeyServiceServer(srv, keys)
	ltikeysv1.RegisterJwksServiceServer(srv, jwksService)
	health.Register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	handler, err := server.NewHTTPHandler(ctx, jwksService, func(ctx context.Context) error {
		return health.ServiceReady(ctx, jwksName)
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(handler)
	t.Cleanup(hs.Close)

	return &testEnv{
		url:          databaseURL,
		store:        store,
		keyring:      keyring,
		keys:         ltikeysv1.NewKeyServiceClient(conn),
		jwksClient:   ltikeysv1.NewJwksServiceClient(conn),
		jwks:         jwks,
		health:       health,
		healthClient: healthpb.NewHealthClient(conn),
		http:         hs,
	}, keys
}

// rotateNow returns a RotateKeyRequest whose new key signs at once
// (publish_ahead 0s), for tests that rotate to change the signing key
// rather than to schedule the change.
func rotateNow(id string) *ltikeysv1.RotateKeyRequest {
	return &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0)}
}

// validCreate returns a valid request for a registration unique to suffix.
func validCreate(suffix string) *ltikeysv1.CreateRegistrationRequest {
	return &ltikeysv1.CreateRegistrationRequest{
		Issuer:        "https://canvas.example.edu/" + suffix,
		ClientId:      "client-" + suffix,
		AuthEndpoint:  "https://canvas.example.edu/api/lti/authorize_redirect",
		JwksUri:       "https://canvas.example.edu/api/lti/security/jwks",
		TokenEndpoint: "https://canvas.example.edu/login/oauth2/token",
	}
}

// mustCreate creates a registration or fails the test.
func (e *testEnv) mustCreate(t testing.TB, suffix string) *ltikeysv1.CreateRegistrationResponse {
	t.Helper()
	resp, err := e.keys.CreateRegistration(context.Background(), validCreate(suffix))
	if err != nil {
		t.Fatalf("CreateRegistration(%s): %v", suffix, err)
	}
	return resp
}

// keyCount returns how many key rows exist, active or not.
func (e *testEnv) keyCount(t *testing.T) int {
	t.Helper()
	kids, err := e.store.KeyIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(kids)
}
