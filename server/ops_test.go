package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// scrape returns the exposition of m.
func scrape(t *testing.T, m *server.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, server.MetricsPath, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d", server.MetricsPath, rec.Code)
	}
	return rec.Body.String()
}

func wantSeries(t *testing.T, exposition string, series ...string) {
	t.Helper()
	for _, s := range series {
		if !strings.Contains(exposition, s) {
			t.Errorf("metrics lack %s", s)
		}
	}
}

var unaryInfo = &grpc.UnaryServerInfo{FullMethod: "/ltikeys.v1.KeyService/RotateKey"}

func TestUnaryRequestInterceptorRecoversPanics(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(server.ContextLogHandler(slog.NewJSONHandler(&logs, nil)))
	m := server.NewMetrics()
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(server.RequestIDHeader, "req-42"))

	resp, err := server.UnaryRequestInterceptor(log, m)(ctx, nil, unaryInfo, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if resp != nil || status.Code(err) != codes.Internal || status.Convert(err).Message() != "internal error" {
		t.Errorf("panicking handler = %v, %v; want INTERNAL without detail", resp, err)
	}
	for _, want := range []string{`"msg":"panic in gRPC handler"`, `"panic":"boom"`, `"stack":"goroutine`, `"request_id":"req-42"`, `"code":"Internal"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	wantSeries(t, scrape(t, m), "ltikeys_grpc_panics_total 1")
}

// TestRequestLogLevels: a call whose audit line was written has its request
// log line at debug level, as the audit line carries the same fields and
// the request id, unless it failed with a server fault; a call without an
// audit line keeps its request line.
func TestRequestLogLevels(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(server.ContextLogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	token, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	scope, _ := server.RequiredScope(ltikeysv1.KeyService_RotateKey_FullMethodName)
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens: []server.Token{{Name: "t", Scopes: []server.Scope{scope}, Hash: server.HashToken(token)}},
		Log:    log,
	})
	if err != nil {
		t.Fatal(err)
	}
	withToken := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	requestLog, authz := server.UnaryRequestInterceptor(log, nil), auth.UnaryInterceptor()
	// levels calls method with ctx, answering code, and returns the level
	// of its request line and of its audit line ("" for none).
	levels := func(ctx context.Context, method string, code codes.Code) (request, audit string) {
		t.Helper()
		logs.Reset()
		info := &grpc.UnaryServerInfo{FullMethod: method}
		_, _ = requestLog(ctx, nil, info, func(ctx context.Context, req any) (any, error) {
			return authz(ctx, req, info, func(context.Context, any) (any, error) {
				return nil, status.Error(code, "answer")
			})
		})
		for line := range strings.Lines(logs.String()) {
			var l struct{ Msg, Level string }
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("log line is not JSON: %v: %s", err, line)
			}
			switch l.Msg {
			case "grpc call":
				request = l.Level
			case server.AuditMessage:
				audit = l.Level
			default:
				t.Errorf("unexpected log line %s", line)
			}
		}
		return request, audit
	}
	const rotate, getJwks = ltikeysv1.KeyService_RotateKey_FullMethodName, ltikeysv1.JwksService_GetJwks_FullMethodName
	for _, c := range []struct {
		ctx            context.Context
		method         string
		code           codes.Code
		request, audit string
	}{
		{withToken, rotate, codes.OK, "DEBUG", "INFO"},
		{withToken, rotate, codes.NotFound, "DEBUG", "INFO"},
		{context.Background(), rotate, codes.OK, "DEBUG", "WARN"}, // refused: no token
		{withToken, rotate, codes.Internal, "ERROR", "INFO"},
		{context.Background(), getJwks, codes.OK, "INFO", ""}, // public: no audit
		{context.Background(), getJwks, codes.NotFound, "INFO", ""},
		{context.Background(), healthpb.Health_Check_FullMethodName, codes.OK, "DEBUG", ""},
	} {
		if request, audit := levels(c.ctx, c.method, c.code); request != c.request || audit != c.audit {
			t.Errorf("%s answering %v: request line %q, audit line %q; want %q, %q", c.method, c.code, request, audit, c.request, c.audit)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	idOf := func(md metadata.MD) string {
		ctx := context.Background()
		if md != nil {
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		var got string
		_, _ = server.UnaryRequestInterceptor(log, nil)(ctx, nil, unaryInfo, func(ctx context.Context, _ any) (any, error) {
			got = server.RequestID(ctx)
			return nil, nil
		})
		return got
	}
	if got := idOf(metadata.Pairs("x-request-id", "trace-1.a:b_c")); got != "trace-1.a:b_c" {
		t.Errorf("a sensible client id became %q", got)
	}
	for name, md := range map[string]metadata.MD{
		"absent":    nil,
		"empty":     metadata.Pairs("x-request-id", ""),
		"too long":  metadata.Pairs("x-request-id", strings.Repeat("a", 129)),
		"log spoof": metadata.Pairs("x-request-id", "a\nlevel=ERROR msg=forged"),
	} {
		got := idOf(md)
		if len(got) != 36 || strings.ContainsAny(got, " \n=") {
			t.Errorf("%s: request id %q, want a generated UUID", name, got)
		}
	}
	if a, b := idOf(nil), idOf(nil); a == b {
		t.Errorf("two calls got the same generated id %q", a)
	}
}

func TestUnaryTimeoutInterceptor(t *testing.T) {
	deadline := func(ctx context.Context) time.Duration {
		var left time.Duration
		_, _ = server.UnaryTimeoutInterceptor(time.Minute)(ctx, nil, unaryInfo, func(ctx context.Context, _ any) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				t.Fatal("no deadline")
			}
			left = time.Until(d)
			return nil, nil
		})
		return left
	}
	if left := deadline(context.Background()); left <= 50*time.Second || left > time.Minute {
		t.Errorf("a call without a deadline got %s, want the 1m cap", left)
	}
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if left := deadline(short); left > time.Second {
		t.Errorf("a client's 1s deadline became %s", left)
	}
	long, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if left := deadline(long); left > time.Minute {
		t.Errorf("a client's 1h deadline became %s, want the 1m cap", left)
	}
}

// registrar captures the implementation registered on it.
type registrar struct{ impl any }

func (r *registrar) RegisterService(_ *grpc.ServiceDesc, impl any) { r.impl = impl }

// TestHealthTransitions follows a Health through start-up, failing checks
// and shutdown: each service's status follows its own check, the overall
// "" entry requires every service, and before start and after shutdown all
// are NOT_SERVING.
func TestHealthTransitions(t *testing.T) {
	ctx := context.Background()
	const keySvc, jwksSvc = "ltikeys.v1.KeyService", "ltikeys.v1.JwksService"
	h := server.NewHealth(nil, keySvc, jwksSvc)
	var reg registrar
	h.Register(&reg)
	hs := reg.impl.(healthpb.HealthServer)
	const notServing, serving = healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING
	// statuses returns the statuses of "", KeyService and JwksService.
	statuses := func() [3]healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		var out [3]healthpb.HealthCheckResponse_ServingStatus
		for i, svc := range []string{"", keySvc, jwksSvc} {
			resp, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatal(err)
			}
			out[i] = resp.GetStatus()
		}
		return out
	}
	gate := func(method string) codes.Code {
		_, err := h.UnaryGate()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return nil, nil })
		return grpcCode(err)
	}

	if got := statuses(); got != [3]healthpb.HealthCheckResponse_ServingStatus{notServing, notServing, notServing} ||
		h.Ready(ctx) == nil || h.ServiceReady(ctx, jwksSvc) == nil {
		t.Errorf("before start: %v, want all NOT_SERVING and not ready", got)
	}
	if gate("/ltikeys.v1.KeyService/RotateKey") != codes.Unavailable || gate("/ltikeys.v1.JwksService/GetJwks") != codes.Unavailable {
		t.Errorf("the gate lets ltikeys calls through before start")
	}
	if gate("/grpc.health.v1.Health/Check") != codes.OK || gate("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") != codes.OK {
		t.Errorf("the gate holds back health or reflection")
	}

	var keyErr, jwksErr error
	h.MarkStarted(ctx, map[string]func(context.Context) error{
		keySvc:  func(context.Context) error { return keyErr },
		jwksSvc: func(context.Context) error { return jwksErr },
	})
	if got := statuses(); got != [3]healthpb.HealthCheckResponse_ServingStatus{serving, serving, serving} ||
		h.Ready(ctx) != nil || gate("/ltikeys.v1.KeyService/RotateKey") != codes.OK {
		t.Errorf("after start: %v, want all SERVING, ready and the gate open", got)
	}

	keyErr = errors.New("database unreachable")
	if err := h.Ready(ctx); !errors.Is(err, keyErr) || !strings.Contains(err.Error(), keySvc) {
		t.Errorf("KeyService failing: Ready = %v, want its error, naming it", err)
	}
	if got := statuses(); got != [3]healthpb.HealthCheckResponse_ServingStatus{notServing, notServing, serving} || h.ServiceReady(ctx, jwksSvc) != nil {
		t.Errorf("KeyService failing: %v, want JwksService alone SERVING", got)
	}
	jwksErr = errors.New("stale for too long")
	if err := h.ServiceReady(ctx, jwksSvc); !errors.Is(err, jwksErr) {
		t.Errorf("JwksService failing: ServiceReady = %v, want its error", err)
	}
	if got := statuses(); got != [3]healthpb.HealthCheckResponse_ServingStatus{notServing, notServing, notServing} {
		t.Errorf("both failing: %v, want all NOT_SERVING", got)
	}
	keyErr = nil
	if err := h.Ready(ctx); !errors.Is(err, jwksErr) || statuses() != [3]healthpb.HealthCheckResponse_ServingStatus{notServing, serving, notServing} {
		t.Errorf("JwksService failing: Ready = %v, statuses %v; want its error and KeyService alone SERVING", err, statuses())
	}
	jwksErr = nil
	if h.Ready(ctx) != nil || statuses() != [3]healthpb.HealthCheckResponse_ServingStatus{serving, serving, serving} {
		t.Errorf("recovered: %v, want all SERVING", statuses())
	}
	if err := h.ServiceReady(ctx, "ltikeys.v1.NoSuchService"); err == nil {
		t.Errorf("ServiceReady of a service Health does not report = nil")
	}

	h.Shutdown()
	if got := statuses(); got != [3]healthpb.HealthCheckResponse_ServingStatus{notServing, notServing, notServing} ||
		h.Ready(ctx) == nil || h.ServiceReady(ctx, jwksSvc) == nil {
		t.Errorf("after shutdown: %v, want all NOT_SERVING and not ready", got)
	}
}

// TestHealthRefusesUnknownChecks: a check for a service Health was not told
// about is a wiring mistake, caught at start.
func TestHealthRefusesUnknownChecks(t *testing.T) {
	h := server.NewHealth(nil, "ltikeys.v1.KeyService")
	defer func() {
		if recover() == nil {
			t.Errorf("MarkStarted accepted a check for an unknown service")
		}
	}()
	h.MarkStarted(context.Background(), map[string]func(context.Context) error{"ltikeys.v1.JwksService": nil})
}

func grpcCode(err error) codes.Code { return status.Code(err) }

func TestInstrumentJWKS(t *testing.T) {
	m := server.NewMetrics()
	h := m.InstrumentJWKS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.URL.Path != server.JWKSPath {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"keys":[]}`)
	}))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, server.JWKSPath, nil),
		httptest.NewRequest(http.MethodGet, server.JWKSPath, nil),
		httptest.NewRequest(http.MethodGet, server.HealthzPath, nil),
		httptest.NewRequest(http.MethodGet, "/registrations/0123-abcd/jwks.json", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	cond := httptest.NewRequest(http.MethodGet, server.JWKSPath, nil)
	cond.Header.Set("If-None-Match", `"x"`)
	h.ServeHTTP(httptest.NewRecorder(), cond)
	wantSeries(t, scrape(t, m), `ltikeys_jwks_requests_total{code="200"} 2`, `ltikeys_jwks_requests_total{code="304"} 1`, `ltikeys_jwks_requests_total{code="404"} 1`)

	m.CacheLookup("keys", true)
	m.CacheLookup("keys", false)
	m.CacheLookup("keys", false)
	wantSeries(t, scrape(t, m), `ltikeys_cache_lookups_total{cache="keys",result="hit"} 1`, `ltikeys_cache_lookups_total{cache="keys",result="miss"} 2`)

	var nilMetrics *server.Metrics // metrics off: every method is a no-op
	nilMetrics.CacheLookup("keys", true)
	nilMetrics.StorageError("x")
	if nilMetrics.InstrumentJWKS(h) == nil {
		t.Error("nil Metrics dropped the handler")
	}
}

// fakeStore answers the calls the metrics make; any other call panics.
type fakeStore struct {
	storage.Store
	getKeyErr error
	listened  bool
}

func (f *fakeStore) GetKey(context.Context, string) (storage.Key, error) {
	return storage.Key{}, f.getKeyErr
}

func (f *fakeStore) Version(context.Context) (int64, error) { return 1, nil }

// ActiveKeys returns a key in each state, relative to the real clock the
// metrics and the JWKS cache count with, and an active key whose
// retirement is due.
func (f *fakeStore) ActiveKeys(context.Context) ([]storage.Key, error) {
	now := time.Now()
	hour := time.Hour
	keys := []storage.Key{
		{KID: "pending", ActivatesAt: now.Add(hour)},
		{KID: "current", ActivatesAt: now.Add(-hour)},
		{KID: "current-2", ActivatesAt: now.Add(-hour), SupersededAt: now.Add(hour)},
		{KID: "previous", ActivatesAt: now.Add(-2 * hour), SupersededAt: now.Add(-hour), RetireAt: now.Add(hour)},
		{KID: "retire-due", ActivatesAt: now.Add(-2 * hour), SupersededAt: now.Add(-hour), RetireAt: now.Add(-time.Minute)},
	}
	for i := range keys {
		keys[i].Active, keys[i].RegistrationID, keys[i].PublicJWK = true, "registration", syntheticJWK(keys[i].KID)
	}
	return keys, nil
}

func (f *fakeStore) KeyIDs(context.Context) ([]string, error) {
	return []string{"pending", "current", "current-2", "previous", "retire-due", "retired"}, nil
}

func (f *fakeStore) Listen(context.Context, func()) { f.listened = true }

func TestInstrumentStore(t *testing.T) {
	ctx := context.Background()
	m := server.NewMetrics()
	fake := &fakeStore{}
	store := server.InstrumentStore(fake, m)

	fake.getKeyErr = storage.ErrNotFound
	store.GetKey(ctx, "x")
	fake.getKeyErr = errors.New("connection reset")
	store.GetKey(ctx, "x")
	store.GetKey(ctx, "x")
	jwks := server.NewJWKSCache(store)
	m.WatchKeys(store, jwks, slog.New(slog.DiscardHandler))
	if strings.Contains(scrape(t, m), "ltikeys_keys{") {
		t.Error("ltikeys_keys is reported before the JWKS cache is loaded")
	}
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantSeries(t, scrape(t, m),
		`ltikeys_storage_errors_total{op="get_key"} 2`,
		`ltikeys_keys{state="pending"} 1`,
		`ltikeys_keys{state="current"} 2`,
		`ltikeys_keys{state="previous"} 1`,
		`ltikeys_keys{state="retired"} 2`)

	l, ok := store.(interface{ Listen(context.Context, func()) })
	if !ok {
		t.Fatal("the instrumented store hides the backend's Listen")
	}
	l.Listen(ctx, func() {})
	if !fake.listened {
		t.Error("Listen did not reach the backend")
	}
	if _, ok := server.InstrumentStore(&struct{ storage.Store }{fake}, m).(interface{ Listen(context.Context, func()) }); ok {
		t.Error("the instrumented store claims a Listen the backend lacks")
	}
}

// failingStore fails every call with a database error.
type failingStore struct{}

var errDatabase = errors.New("connection reset")

func (failingStore) CreateRegistration(context.Context, storage.Registration, storage.Key) (storage.Registration, storage.Key, error) {
	return storage.Registration{}, storage.Key{}, errDatabase
}
func (failingStore) GetRegistration(context.Context, string) (storage.Registration, error) {
	return storage.Registration{}, errDatabase
}
func (failingStore) GetRegistrationByIssuerClient(context.Context, string, string) (storage.Registration, error) {
	return storage.Registration{}, errDatabase
}
func (failingStore) GetKey(context.Context, string) (storage.Key, error) {
	return storage.Key{}, errDatabase
}
func (failingStore) RotateKey(context.Context, string, storage.Key) (storage.Registration, storage.Key, storage.Key, error) {
	return storage.Registration{}, storage.Key{}, storage.Key{}, errDatabase
}
func (failingStore) Rotate(context.Context, string, storage.Key, storage.RotateOptions) (storage.Rotation, error) {
	return storage.Rotation{}, errDatabase
}
func (failingStore) RetireKey(context.Context, string) (storage.Key, error) {
	return storage.Key{}, errDatabase
}
func (failingStore) ApplyTransitions(context.Context) (int, error) { return 0, errDatabase }
func (failingStore) ListRegistrations(context.Context, storage.RegistrationQuery) ([]storage.Registration, error) {
	return nil, errDatabase
}
func (failingStore) UpdateRegistration(context.Context, string, func(storage.Registration) (storage.Registration, error)) (storage.Registration, error) {
	return storage.Registration{}, errDatabase
}
func (failingStore) DeleteRegistration(context.Context, string) ([]storage.Key, error) {
	return nil, errDatabase
}
func (failingStore) ListKeys(context.Context, storage.KeyQuery) ([]storage.Key, error) {
	return nil, errDatabase
}
func (failingStore) ActiveKeys(context.Context) ([]storage.Key, error) { return nil, errDatabase }
func (failingStore) KeyIDs(context.Context) ([]string, error)          { return nil, errDatabase }
func (failingStore) PrivateKeys(context.Context, int64, int) ([]storage.Key, error) {
	return nil, errDatabase
}
func (failingStore) KeysChangedSince(context.Context, int64) (int64, []storage.Key, error) {
	return 0, nil, errDatabase
}
func (failingStore) UpdatePrivateKey(context.Context, string, func([]byte) ([]byte, bool, error)) error {
	return errDatabase
}
func (failingStore) Version(context.Context) (int64, error) { return 0, errDatabase }
func (failingStore) UseNonce(context.Context, string, string, time.Time) error {
	return errDatabase
}
func (failingStore) PruneNonces(context.Context, time.Time) (int, error) { return 0, errDatabase }
func (failingStore) Close() error                                        { return nil }

// storageErrors sums ltikeys_storage_errors_total over its ops.
func storageErrors(t *testing.T, m *server.Metrics) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if !strings.HasPrefix(line, "ltikeys_storage_errors_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestInstrumentStoreCountsEveryMethod calls every storage.Store method
// but Close through InstrumentStore on a store where each fails, and
// checks that each failure is counted: a method added to the interface
// without a wrapper fails this test.
func TestInstrumentStoreCountsEveryMethod(t *testing.T) {
	m := server.NewMetrics()
	store := reflect.ValueOf(server.InstrumentStore(failingStore{}, m))
	iface := reflect.TypeFor[storage.Store]()
	ctxType := reflect.TypeFor[context.Context]()
	for i := range iface.NumMethod() {
		method := iface.Method(i)
		if method.Name == "Close" {
			continue
		}
		fn := store.MethodByName(method.Name)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			if in := fn.Type().In(j); in == ctxType {
				args[j] = reflect.ValueOf(context.Background())
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		before := storageErrors(t, m)
		fn.Call(args)
		if after := storageErrors(t, m); after != before+1 {
			t.Errorf("a failed %s is not counted in ltikeys_storage_errors_total", method.Name)
		}
	}
}

func TestKeyPoolMetrics(t *testing.T) {
	m := server.NewMetrics()
	pool := server.NewKeyPool(1, 2048)
	m.WatchKeyPool(pool)
	wantSeries(t, scrape(t, m), `ltikeys_key_pool_keys{bits="2048"} 0`)
	if err := pool.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantSeries(t, scrape(t, m), `ltikeys_key_pool_keys{bits="2048"} 1`)
	if _, ok := pool.Take(2048); !ok {
		t.Fatal("the filled pool had no key")
	}
	wantSeries(t, scrape(t, m), `ltikeys_key_pool_keys{bits="2048"} 0`)

	var nilMetrics *server.Metrics
	nilMetrics.WatchKeyPool(pool)
	m.WatchKeyPool(nil)
}

// TestKeyCacheMetrics checks that the signing-key cache reports its misses
// and hits: the first lookup of a registration misses, the next hits, and
// a change makes the next lookup miss again.
func TestKeyCacheMetrics(t *testing.T) {
	ctx := context.Background()
	store, err := storage.Open(ctx, storagetest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	m := server.NewMetrics()
	keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: jwks, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	created, err := keys.CreateRegistration(ctx, validCreate("metrics"))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetRegistration().GetId()
	sign := func() {
		t.Helper()
		if _, err := keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{
			Lookup:     &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id},
			ClaimsJson: `{"sub":"x"}`,
		}); err != nil {
			t.Fatal(err)
		}
	}
	sign()
	sign()
	sign()
	wantSeries(t, scrape(t, m),
		`ltikeys_cache_lookups_total{cache="keys",result="miss"} 1`,
		`ltikeys_cache_lookups_total{cache="keys",result="hit"} 2`)
	if _, err := keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id}); err != nil {
		t.Fatal(err)
	}
	sign()
	wantSeries(t, scrape(t, m), `ltikeys_cache_lookups_total{cache="keys",result="miss"} 2`)
}
