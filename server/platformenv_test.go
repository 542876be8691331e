package server_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
)

// platformClientID is the client_id of the registrations the fake
// platforms of these tests know the tool by.
const platformClientID = "tool-client"

// The LTI Advantage scopes the tests ask for.
const (
	scopeLineItem   = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
	scopeResult     = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
	scopeScore      = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
	scopeMembership = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
)

// platformEnvTokens are the bearer tokens a platformEnv accepts, by name,
// and the scopes they carry.
var platformEnvTokens = []struct {
	name   string
	scopes []server.Scope
}{
	{"platform", []server.Scope{server.ScopePlatformToken}},
	{"verifier", []server.Scope{server.ScopePlatformVerify}},
	{"reader", []server.Scope{server.ScopeKeysRead}},
	{"exporter", []server.Scope{server.ScopeKeysReadPrivate}},
	{"signer", []server.Scope{server.ScopeKeysSign}},
	{"manager", []server.Scope{server.ScopeKeysAdmin}},
	{"all-but-platform", []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign}},
}

// platformEnv is ltikeys serving GetPlatformAccessToken as serve wires
// it (request log, metrics, access control and audit), over an in-memory
// connection, with a fake platform whose token endpoint verifies every
// client assertion against ltikeys' own public JWKS, fetched over HTTP
// from the registration's tool_jwks_url.
//
// Everything reads one settable clock: the store, the JWKS cache, the
// KeyService (iat and exp of assertions), the token client (expiries) and
// the fake platform (the exp it checks). Every line logged, at debug
// level, by the KeyService, the token client and the audit goes to logs;
// every error a call returns is kept. When the test ends, neither may
// hold an access token the fake issued or an assertion it received, and
// no metric label may hold a registration id or a URL.
type platformEnv struct {
	clock    *conformance.Clock
	platform *platformtest.Platform
	// reg is the registration whose token_endpoint is platform's.
	reg *ltikeysv1.Registration
	// node is the first ltikeys process, which serves the JWKS the
	// platform fetches.
	*node

	logs   *syncBuffer
	log    *slog.Logger
	errs   *errorLog
	tokens []server.Token
	// secrets are the bearer tokens of tokens, by name.
	secrets map[string]string
}

// node is one ltikeys process of a platformEnv: its store, JWKS cache,
// public HTTP listener, metrics and KeyService, and a client of it.
type node struct {
	store   storage.Store
	jwks    *server.JWKSCache
	service *server.KeyService
	metrics *server.Metrics
	// misses receives a value, if it has room, at each miss of the token
	// cache, for tests that wait for callers to be waiting on an exchange.
	misses chan struct{}
	// http is the public HTTP listener; jwksFetches counts the requests
	// for a registration's JWK Set it served.
	http        *httptest.Server
	jwksFetches *atomic.Int64
	// keys is a KeyService client; calls name their caller with as.
	keys ltikeysv1.KeyServiceClient
	conn *grpc.ClientConn
	// platformKeys, if set before the node serves, is its KeyService's
	// platform key cache (VerifyPlatformToken).
	platformKeys *platform.KeySetCache
}

// platformEnvOptions varies a platformEnv; the zero value is a fake
// platform on https://127.0.0.1 that ltikeys reaches with the default
// HTTP options.
type platformEnvOptions struct {
	// host is the fake platform's host (platformtest.Options.Host).
	host string
	// http configures the first node's HTTP client; its RootCAs is the
	// fake platform's CA.
	http platform.HTTPOptions
}

// startPlatformEnv starts ltikeys on the database at databaseURL, a
// registration, and a fake platform for it. The registration has to
// exist before the platform, which is pointed at its JWK Set, and the
// platform before the token client, which trusts its CA: a KeyService
// without a token client creates the registration, and the one that
// serves takes over from there, setting the token_endpoint to the
// platform's.
func startPlatformEnv(t *testing.T, databaseURL string, o platformEnvOptions) *platformEnv {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	e := &platformEnv{
		clock:   conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		logs:    logs,
		log:     slog.New(server.ContextLogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		errs:    &errorLog{},
		secrets: map[string]string{},
	}
	for _, tok := range platformEnvTokens {
		secret, err := server.GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		e.secrets[tok.name] = secret
		e.tokens = append(e.tokens, server.Token{Name: tok.name, Scopes: tok.scopes, Hash: server.HashToken(secret)})
	}
	// Registered first, so it runs last, once every server has stopped.
	t.Cleanup(func() { e.checkNothingLeaked(t) })

	n := e.openNode(t, databaseURL)
	setup, err := server.NewKeyService(e.keyServiceConfig(n, nil))
	if err != nil {
		t.Fatal(err)
	}
	created, err := setup.CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
		Issuer:        "https://lms.example/" + fmt.Sprint(uniqueSuffix.Add(1)),
		ClientId:      platformClientID,
		AuthEndpoint:  "https://lms.example/auth",
		JwksUri:       "https://lms.example/jwks",
		TokenEndpoint: "https://lms.example/token",
	})
	if err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}
	jwksURL := created.GetRegistration().GetToolJwksUrl()
	if want := n.http.URL + "/registrations/" + created.GetRegistration().GetId() + "/jwks.json"; jwksURL != want {
		t.Fatalf("tool_jwks_url %q, want %q", jwksURL, want)
	}
	e.platform = platformtest.New(t, platformtest.Options{
		ClientID: platformClientID,
		JWKSURL:  jwksURL,
		Host:     o.host,
		Now:      e.clock.Now,
	})
	e.serve(t, n, o.http)
	e.node = n

	updated, err := e.keys.UpdateRegistration(e.as("manager"), &ltikeysv1.UpdateRegistrationRequest{
		Registration: &ltikeysv1.Registration{Id: created.GetRegistration().GetId(), TokenEndpoint: e.platform.TokenURL},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"token_endpoint"}},
	})
	if err != nil {
		t.Fatalf("UpdateRegistration to the fake platform's token endpoint %s: %v", e.platform.TokenURL, err)
	}
	e.reg = updated.GetRegistration()
	return e
}

// openNode opens a store on databaseURL with opts, loads a JWKS cache
// from it and serves it on a public HTTP listener, all on e's clock.
func (e *platformEnv) openNode(t *testing.T, databaseURL string, opts ...storage.Option) *node {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, databaseURL, append([]storage.Option{storage.WithClock(e.clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	jwks := server.NewJWKSCache(store, server.WithCacheClock(e.clock.Now))
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatalf("jwks refresh: %v", err)
	}
	handler, err := server.NewHTTPHandler(ctx, server.NewJwksService(jwks), jwks.Ready)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{store: store, jwks: jwks, metrics: server.NewMetrics(), misses: make(chan struct{}, 1000), jwksFetches: &atomic.Int64{}}
	n.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/registrations/") {
			n.jwksFetches.Add(1)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(n.http.Close)
	return n
}

// keyServiceConfig is the configuration of n's KeyService, with tokens
// as its token client and n's platform key cache.
func (e *platformEnv) keyServiceConfig(n *node, tokens *platform.TokenClient) server.KeyServiceConfig {
	return server.KeyServiceConfig{
		Store:          n.store,
		Keyring:        testKeyring,
		KeyBits:        2048,
		JWKS:           n.jwks,
		Log:            e.log.With("component", "keys"),
		Now:            e.clock.Now,
		Metrics:        n.metrics,
		PublicURL:      n.http.URL,
		PlatformTokens: tokens,
		PlatformKeys:   n.platformKeys,
	}
}

// serve gives n a KeyService whose token client reaches e's platform
// with httpOpts, serves it over an in-memory connection as serve does,
// and connects n.keys to it.
func (e *platformEnv) serve(t *testing.T, n *node, httpOpts platform.HTTPOptions) {
	t.Helper()
	ctx := context.Background()
	tokens := newPlatformTokens(t, e.platform.CA.Pool, httpOpts, platform.TokenClientOptions{
		Now:      e.clock.Now,
		Observer: missSignal{Metrics: n.metrics, misses: n.misses},
		Logger:   e.log.With("component", "platform"),
	})
	service, err := server.NewKeyService(e.keyServiceConfig(n, tokens))
	if err != nil {
		t.Fatal(err)
	}
	n.service = service

	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: e.tokens, Log: e.log.With("component", "audit")})
	if err != nil {
		t.Fatal(err)
	}
	keyName := ltikeysv1.KeyService_ServiceDesc.ServiceName
	health := server.NewHealth(nil, keyName)
	authOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor()),
		grpc.InTapHandle(auth.TapHandle()),
	}
	srv := grpc.NewServer(server.ServerOptions(e.log.With("component", "grpc"), n.metrics, health, 0, authOpts)...)
	ltikeysv1.RegisterKeyServiceServer(server.EarlyRefusals(srv), service)
	health.MarkStarted(ctx, map[string]func(context.Context) error{keyName: service.Ready})
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(e.errs.record),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.conn, n.keys = conn, ltikeysv1.NewKeyServiceClient(conn)
}

// replica starts another ltikeys process on e's database: a store,
// JWKS cache and KeyService of its own, whose token client reaches e's
// platform with httpOpts.
func (e *platformEnv) replica(t *testing.T, databaseURL string, httpOpts platform.HTTPOptions) *node {
	t.Helper()
	n := e.openNode(t, databaseURL)
	e.serve(t, n, httpOpts)
	return n
}

// sibling is another KeyService in e's first process, on its store and
// JWKS cache, whose token client reaches e's platform with httpOpts.
func (e *platformEnv) sibling(t *testing.T, httpOpts platform.HTTPOptions) *node {
	t.Helper()
	n := *e.node
	n.metrics, n.misses = server.NewMetrics(), make(chan struct{}, 1000)
	e.serve(t, &n, httpOpts)
	return &n
}

// newPlatformTokens returns a token client whose HTTP client, built from
// httpOpts, trusts the certificates of roots, and only them.
func newPlatformTokens(t testing.TB, roots *x509.CertPool, httpOpts platform.HTTPOptions, opts platform.TokenClientOptions) *platform.TokenClient {
	t.Helper()
	httpOpts.RootCAs = roots
	httpOpts.Version = "test"
	// A proxy in the environment would take the requests elsewhere.
	httpOpts.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	hc, err := platform.NewHTTPClient(httpOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	opts.HTTPClient = hc
	tokens, err := platform.NewTokenClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// as returns a context whose calls carry the bearer token named name.
func (e *platformEnv) as(name string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.secrets[name])
}

// byID asks for a token for the registration id with scopes.
func byID(id string, scopes ...string) *ltikeysv1.GetPlatformAccessTokenRequest {
	return &ltikeysv1.GetPlatformAccessTokenRequest{
		Lookup: &ltikeysv1.GetPlatformAccessTokenRequest_RegistrationId{RegistrationId: id},
		Scopes: scopes,
	}
}

// token calls GetPlatformAccessToken on n as the "platform" caller, for
// e's registration, and fails the test on an error.
func (e *platformEnv) token(t *testing.T, n *node, scopes ...string) *ltikeysv1.GetPlatformAccessTokenResponse {
	t.Helper()
	resp, err := n.keys.GetPlatformAccessToken(e.as("platform"), byID(e.reg.GetId(), scopes...))
	if err != nil {
		t.Fatalf("GetPlatformAccessToken(%q): %v", scopes, err)
	}
	return resp
}

// lastRequest returns the last request the fake platform received,
// failing the test unless it verified and was issued a token.
func (e *platformEnv) lastRequest(t *testing.T) platformtest.Request {
	t.Helper()
	reqs := e.platform.Requests()
	if len(reqs) == 0 {
		t.Fatal("the platform received no request")
	}
	r := reqs[len(reqs)-1]
	if r.Rejected != "" || r.AccessToken == "" {
		t.Fatalf("the platform refused the last request: %s", r.Rejected)
	}
	return r
}

// missSignal is the token client's Observer: the node's metrics, and a
// signal on misses at each miss.
type missSignal struct {
	*server.Metrics
	misses chan struct{}
}

func (o missSignal) CacheLookup(cache string, hit bool) {
	o.Metrics.CacheLookup(cache, hit)
	if !hit {
		select {
		case o.misses <- struct{}{}:
		default:
		}
	}
}

// errorLog keeps every error the calls of a client returned.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

// record is a client interceptor that keeps the error of each call.
func (l *errorLog) record(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
	return err
}

// text returns every error kept, each its message and details in JSON,
// one per line.
func (l *errorLog) text(t *testing.T) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, err := range l.errs {
		st := status.Convert(err)
		b.WriteString(st.Message())
		for _, d := range st.Proto().GetDetails() {
			j, err := protojson.Marshal(d)
			if err != nil {
				t.Fatalf("detail %s: %v", d.GetTypeUrl(), err)
			}
			b.WriteString(" ")
			b.Write(j)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// checkNothingLeaked fails if the logs or the errors returned hold an
// access token the platform issued, a client assertion it received or the
// signature of one, or if a metric label holds the registration id or a
// URL.
func (e *platformEnv) checkNothingLeaked(t *testing.T) {
	if e.platform == nil {
		return
	}
	secrets := map[string]string{}
	for i, r := range e.platform.Requests() {
		if r.AccessToken != "" {
			secrets[fmt.Sprintf("access token %d", i)] = r.AccessToken
		}
		if r.Assertion != "" {
			secrets[fmt.Sprintf("assertion %d", i)] = r.Assertion
			parts := strings.Split(r.Assertion, ".")
			if len(parts) != 3 {
				t.Errorf("assertion %d is not a compact JWS", i)
				continue
			}
			secrets[fmt.Sprintf("signature of assertion %d", i)] = parts[2]
			// A signature cut at a line break or quoted in part.
			secrets[fmt.Sprintf("half of the signature of assertion %d", i)] = parts[2][:len(parts[2])/2]
		}
	}
	if len(secrets) == 0 {
		return
	}
	logs, errs := e.logs.String(), e.errs.text(t)
	// The search below means something only if the token client and the
	// audit did log.
	for _, msg := range []string{"platform token request", server.AuditMessage} {
		if !strings.Contains(logs, `"msg":"`+msg+`"`) {
			t.Errorf("no %q line was logged", msg)
		}
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %s", name)
		}
		if strings.Contains(errs, s) {
			t.Errorf("an error returned holds %s", name)
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	if e.node == nil {
		return
	}
	for _, line := range strings.Split(scrape(t, e.metrics), "\n") {
		labels, _, ok := strings.Cut(line, "}")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		_, labels, _ = strings.Cut(labels, "{")
		for _, bad := range []string{e.reg.GetId(), e.platform.Addr, e.platform.URL, "://", "127.0.0.1"} {
			if bad != "" && strings.Contains(labels, bad) {
				t.Errorf("metric labels hold %q: %s", bad, line)
			}
		}
	}
}

// metricValue returns the value of the series name{labels} in the
// exposition of m, 0 if it is absent.
func metricValue(t *testing.T, m *server.Metrics, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// checkScopeAudit checks the audit lines of method in logs after a test
// that called it once as caller, admitted, and once as every other token
// of platformEnvTokens, refused: each names the registration id, and the
// admitted one the caller.
func checkScopeAudit(t *testing.T, logs, method, caller, id string) {
	t.Helper()
	var ok, denied int
	for _, line := range auditLines(t, logs) {
		if line["method"] != method {
			continue
		}
		switch line["code"] {
		case "OK":
			ok++
			if line["caller"] != caller || line["registration_id"] != id {
				t.Errorf("audit of the admitted call: caller %v, registration_id %v", line["caller"], line["registration_id"])
			}
		case "PermissionDenied":
			denied++
			if line["registration_id"] != id {
				t.Errorf("audit of a refused call: registration_id %v, want %s", line["registration_id"], id)
			}
		}
	}
	if ok != 1 || denied != len(platformEnvTokens)-1 {
		t.Errorf("%d admitted and %d refused %s audit lines, want 1 and %d", ok, denied, method, len(platformEnvTokens)-1)
	}
}
