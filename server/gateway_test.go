package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// rawRequest sends a request as written, request-target untouched, over a
// fresh TCP connection, and returns the response and its body.
func rawRequest(t *testing.T, addr, method, target string, headers map[string]string, body string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, addr)
	for k, v := range headers {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp, string(b)
}

// privateMemberInBody matches a private JWK member in JSON.
var privateMemberInBody = regexp.MustCompile(`"(d|p|q|dp|dq|qi|oth|k)"\s*:`)

// TestPublicHTTPListenerRawRequests sends the public listener, byte for
// byte, requests for every path it must not serve: other paths, other
// methods, the routes the gateway would have for KeyService, and path
// tricks that a cleaning client would hide. None may return key material
// or reach KeyService, and only the exact JWKS path serves the JWKS.
func TestPublicHTTPListenerRawRequests(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	created := env.create(t)
	id, kid := created.GetRegistration().GetId(), created.GetKey().GetKid()
	addr := env.http.Listener.Addr().String()
	grpcBody := map[string]string{"Content-Type": "application/grpc", "TE": "trailers"}
	jsonBody := map[string]string{"Content-Type": "application/json"}
	override := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-HTTP-Method-Override": "GET"}

	const (
		ok       = http.StatusOK
		notFound = http.StatusNotFound
		badVerb  = http.StatusMethodNotAllowed
	)
	tests := []struct {
		method, target string
		headers        map[string]string
		body           string
		want           int
	}{
		// What is served.
		{"GET", "/.well-known/jwks.json", nil, "", ok},
		{"HEAD", "/.well-known/jwks.json", nil, "", ok},
		{"GET", "/.well-known/jwks.json?registration_id=" + id, nil, "", ok},
		{"GET", "http://elsewhere.example/.well-known/jwks.json", nil, "", ok},
		{"GET", "/healthz", nil, "", ok},
		{"HEAD", "/healthz", nil, "", ok},
		{"GET", "/readyz", nil, "", ok},
		{"GET", "/registrations/" + id + "/jwks.json", nil, "", ok},
		{"HEAD", "/registrations/" + id + "/jwks.json", nil, "", ok},
		{"GET", "/registrations/" + id + "/jwks.json?x=1", nil, "", ok},

		// Other methods on served paths.
		{"POST", "/.well-known/jwks.json", jsonBody, "{}", badVerb},
		{"POST", "/.well-known/jwks.json", override, "", badVerb},
		{"PUT", "/.well-known/jwks.json", jsonBody, "{}", badVerb},
		{"PATCH", "/.well-known/jwks.json", jsonBody, "{}", badVerb},
		{"DELETE", "/.well-known/jwks.json", nil, "", badVerb},
		{"OPTIONS", "/.well-known/jwks.json", nil, "", badVerb},
		{"TRACE", "/.well-known/jwks.json", nil, "", badVerb},
		{"CONNECT", "/.well-known/jwks.json", nil, "", badVerb},
		{"PROPFIND", "/.well-known/jwks.json", nil, "", badVerb},
		{"POST", "/healthz", nil, "", badVerb},
		{"DELETE", "/readyz", nil, "", badVerb},
		{"OPTIONS", "*", nil, "", notFound},
		{"POST", "/registrations/" + id + "/jwks.json", jsonBody, "{}", badVerb},
		{"DELETE", "/registrations/" + id + "/jwks.json", nil, "", badVerb},
		{"POST", "/registrations/" + id + "/jwks.json", override, "", badVerb},

		// KeyService as gRPC, gRPC-Web or the gateway would route it.
		{"POST", "/ltikeys.v1.KeyService/GetToolKey", grpcBody, "", notFound},
		{"POST", "/ltikeys.v1.KeyService/GetToolKey", jsonBody, `{"registration_id":"` + id + `"}`, notFound},
		{"GET", "/ltikeys.v1.KeyService/GetToolKey", nil, "", notFound},
		{"POST", "/ltikeys.v1.KeyService/CreateRegistration", jsonBody, "{}", notFound},
		{"POST", "/ltikeys.v1.KeyService/RotateKey", grpcBody, "", notFound},
		{"POST", "/ltikeys.v1.KeyService/RetireKey", jsonBody, `{"kid":"` + kid + `"}`, notFound},
		{"POST", "/ltikeys.v1.JwksService/GetJwks", grpcBody, "", notFound},
		{"GET", "/v1/registrations", nil, "", notFound},
		{"POST", "/v1/registrations", jsonBody, "{}", notFound},
		{"GET", "/v1/registrations/" + id, nil, "", notFound},
		{"GET", "/v1/registrations/" + id + "/key", nil, "", notFound},
		{"GET", "/v1/registrations/" + id + "/tool-key", nil, "", notFound},
		{"POST", "/v1/registrations/" + id + ":rotate", nil, "", notFound},
		{"POST", "/v1/keys/" + kid + ":retire", nil, "", notFound},
		{"GET", "/v1/keys", nil, "", notFound},
		{"GET", "/v1/keys/" + kid, nil, "", notFound},

		// Other paths, and spellings of the JWKS path that are not it.
		{"GET", "/", nil, "", notFound},
		{"GET", "/.well-known", nil, "", notFound},
		{"GET", "/.well-known/", nil, "", notFound},
		{"GET", "/.well-known/jwks.json/", nil, "", notFound},
		{"GET", "/.well-known/jwks.json/extra", nil, "", notFound},
		{"GET", "/.well-known/jwks.json/../x", nil, "", notFound},
		{"GET", "/.well-known/jwks.json/..", nil, "", notFound},
		{"GET", "/.well-known/jwks.json/.", nil, "", notFound},
		{"GET", "/x/../.well-known/jwks.json", nil, "", notFound},
		{"GET", "/./.well-known/jwks.json", nil, "", notFound},
		{"GET", "//.well-known/jwks.json", nil, "", notFound},
		{"GET", "/.well-known//jwks.json", nil, "", notFound},
		{"GET", "/.well-known%2Fjwks.json", nil, "", notFound},
		{"GET", "/.well-known/jwks.json%2F..%2Fx", nil, "", notFound},
		{"GET", "/.well-known/jwks.json%2F..%2F..%2Fltikeys.v1.KeyService%2FGetToolKey", nil, "", notFound},
		{"GET", "/%2Ewell-known/jwks.json", nil, "", notFound},
		{"GET", "/.well-known/jwks%2Ejson", nil, "", notFound},
		{"GET", "/.well-known/%6Awks.json", nil, "", notFound},
		{"GET", "/.well-known/jwks.json%00", nil, "", notFound},
		{"GET", "/.well-known/jwks.json;x", nil, "", notFound},
		{"GET", "/.WELL-KNOWN/JWKS.JSON", nil, "", notFound},
		{"GET", "/healthz/../ltikeys.v1.KeyService/GetToolKey", nil, "", notFound},
		{"GET", "/readyz/", nil, "", notFound},

		// Spellings of a registration's JWKS path that are not it, and
		// unknown registrations.
		{"GET", "/registrations/" + uuid.NewString() + "/jwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id, nil, "", notFound},
		{"GET", "/registrations/" + id + "/", nil, "", notFound},
		{"GET", "/registrations/" + id + "/jwks.json/", nil, "", notFound},
		{"GET", "/registrations/" + id + "/tool-key", nil, "", notFound},
		{"GET", "/registrations/" + id + "/jwks.json/../../../.well-known/jwks.json", nil, "", notFound},
		{"GET", "/registrations/../.well-known/jwks.json", nil, "", notFound},
		{"GET", "/registrations/./jwks.json", nil, "", notFound},
		{"GET", "/registrations/../jwks.json", nil, "", notFound},
		{"GET", "/registrations//jwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id + "//jwks.json", nil, "", notFound},
		{"GET", "//registrations/" + id + "/jwks.json", nil, "", notFound},
		{"GET", "/registrations/%2E%2E/jwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id + "%2Fjwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id + "/jwks%2Ejson", nil, "", notFound},
		{"GET", "/registrations/..%2F..%2Fltikeys.v1.KeyService%2FGetToolKey/jwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id + ";x/jwks.json", nil, "", notFound},
		{"GET", "/registrations/" + id + "x/jwks.json", nil, "", notFound},
		{"GET", "/registrations/*/jwks.json", nil, "", notFound},
		{"GET", "/REGISTRATIONS/" + id + "/JWKS.JSON", nil, "", notFound},
		{"GET", "/v1/registrations/" + id + "/jwks.json", nil, "", notFound},
	}

	before := env.keyCalls.Load()
	for _, tt := range tests {
		resp, body := rawRequest(t, addr, tt.method, tt.target, tt.headers, tt.body)
		name := tt.method + " " + tt.target
		if resp.StatusCode != tt.want {
			t.Errorf("%s = %d (%q), want %d", name, resp.StatusCode, body, tt.want)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("%s redirects to %q", name, loc)
		}
		if privateMemberInBody.MatchString(body) || strings.Contains(strings.ToUpper(body), "PRIVATE") {
			t.Errorf("%s returned private key material: %s", name, body)
		}
		if tt.want == ok && tt.method == http.MethodGet && strings.Contains(tt.target, "jwks.json") {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(body), &set); err != nil || len(set.Keys) != 1 {
				t.Errorf("%s: want the JWKS with one key, got %q (%v)", name, body, err)
			}
			for _, k := range set.Keys {
				assertPublicOnly(t, k)
			}
		}
		if tt.method == http.MethodHead && body != "" {
			t.Errorf("%s has a body", name)
		}
	}
	if after := env.keyCalls.Load(); after != before {
		t.Errorf("the public listener reached KeyService %d times", after-before)
	}
}

// stubJwks serves a fixed document.
type stubJwks struct {
	ltikeysv1.UnimplementedJwksServiceServer
}

func (stubJwks) GetJwks(context.Context, *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	return &httpbody.HttpBody{ContentType: "application/json", Data: []byte(`{"keys":[]}`)}, nil
}

// recordingJwks records the incoming metadata of each call.
type recordingJwks struct {
	ltikeysv1.UnimplementedJwksServiceServer
	seen chan metadata.MD
}

func (r recordingJwks) GetJwks(ctx context.Context, _ *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.seen <- md
	return &httpbody.HttpBody{ContentType: "application/json", Data: []byte(`{"keys":[]}`)}, nil
}

// TestJWKSRequestsCarryNoClientHeaders: the public listener passes nothing
// of the client's request on to JwksService as metadata, not even what the
// gateway forwards by default (Authorization, the client's address as
// X-Forwarded-For and its Host as X-Forwarded-Host), for GET and HEAD.
func TestJWKSRequestsCarryNoClientHeaders(t *testing.T) {
	svc := recordingJwks{seen: make(chan metadata.MD, 1)}
	handler, err := server.NewHTTPHandler(context.Background(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(handler)
	defer hs.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, hs.URL+server.JWKSPath, nil)
		for k, v := range map[string]string{
			"Authorization":          "Bearer secret-token",
			"X-Forwarded-For":        "203.0.113.7",
			"X-Forwarded-Host":       "attacker.example",
			"Grpc-Metadata-Foo":      "bar",
			"Grpc-Timeout":           "1n",
			"If-None-Match":          `"x"`,
			"Accept-Encoding":        "gzip",
			"X-Http-Method-Override": "POST",
		} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s = %d, want 200", method, server.JWKSPath, resp.StatusCode)
		}
		if md := <-svc.seen; len(md) != 0 {
			t.Errorf("%s: JwksService got metadata %v, want none", method, md)
		}
	}
}

// metadataJwks answers as a JwksServiceServer outside this package would:
// with its caching headers and a not-modified status as response metadata.
type metadataJwks struct {
	ltikeysv1.UnimplementedJwksServiceServer
}

func (metadataJwks) GetJwks(ctx context.Context, _ *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("http-etag", `"v1"`, "http-cache-control", "public, max-age=1", "http-status", "304")); err != nil {
		return nil, err
	}
	return &httpbody.HttpBody{ContentType: "application/json"}, nil
}

func TestJWKSHeadersFromMetadata(t *testing.T) {
	handler, err := server.NewHTTPHandler(context.Background(), metadataJwks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, server.JWKSPath, nil))
	if rec.Code != http.StatusNotModified || rec.Header().Get("ETag") != `"v1"` || rec.Header().Get("Cache-Control") != "public, max-age=1" || rec.Header().Get("Content-Type") != "" {
		t.Errorf("GET %s = %d %v, want 304 with the ETag and Cache-Control of the metadata and no Content-Type", server.JWKSPath, rec.Code, rec.Header())
	}
}

// countingJwks is a JwksService counting the calls that reach it through
// the gateway; its ServeFromMemory is the service's own.
type countingJwks struct {
	*server.JwksService
	calls atomic.Int64
}

func (c *countingJwks) GetJwks(ctx context.Context, req *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	c.calls.Add(1)
	return c.JwksService.GetJwks(ctx, req)
}

func (c *countingJwks) GetRegistrationJwks(ctx context.Context, req *ltikeysv1.GetRegistrationJwksRequest) (*httpbody.HttpBody, error) {
	c.calls.Add(1)
	return c.JwksService.GetRegistrationJwks(ctx, req)
}

// TestFromMemoryBeforeTheGateway: the public handler answers every GET and
// HEAD of a document in memory with JwksService's ServeFromMemory, 200 or
// 304, without a call through the gateway, and that answer is the one the
// gateway gives: same status, headers and body, for both JWKS paths, both
// representations and any If-None-Match. What it does not hold (an unknown
// registration, an id that is not a UUID, a key set not loaded yet) is the
// gateway's to refuse.
func TestFromMemoryBeforeTheGateway(t *testing.T) {
	ctx := context.Background()
	env := newTestEnvWith(t, storagetest.SQLiteURL(t), testKeyring)
	reg := env.mustCreate(t, "from-memory")
	svc := &countingJwks{JwksService: server.NewJwksService(env.jwks, server.WithMaxAge(90*time.Second))}
	direct, err := server.NewHTTPHandler(ctx, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same service without its ServeFromMemory: the gateway answers all.
	viaGateway, err := server.NewHTTPHandler(ctx, struct{ ltikeysv1.JwksServiceServer }{svc.JwksService}, nil)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header = header
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	same := func(name string, got, fromGateway *httptest.ResponseRecorder) {
		t.Helper()
		if got.Code != fromGateway.Code || !reflect.DeepEqual(got.Header(), fromGateway.Header()) || !bytes.Equal(got.Body.Bytes(), fromGateway.Body.Bytes()) {
			t.Errorf("%s = %d %v %d bytes; the gateway answers %d %v %d bytes",
				name, got.Code, got.Header(), got.Body.Len(), fromGateway.Code, fromGateway.Header(), fromGateway.Body.Len())
		}
	}

	for _, path := range []string{server.JWKSPath, "/registrations/" + reg.GetRegistration().GetId() + "/jwks.json"} {
		for _, encoding := range []string{"", "gzip", "gzip;q=0"} {
			header := http.Header{}
			if encoding != "" {
				header.Set("Accept-Encoding", encoding)
			}
			etag := serve(viaGateway, http.MethodGet, path, header).Header().Get("ETag")
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				for inm, want := range map[string]int{
					etag:               http.StatusNotModified,
					"W/" + etag:        http.StatusNotModified,
					`"other", ` + etag: http.StatusNotModified,
					"*":                http.StatusNotModified,
					`"stale"`:          http.StatusOK,
					"":                 http.StatusOK,
				} {
					h := header.Clone()
					if inm != "" {
						h.Set("If-None-Match", inm)
					}
					before := svc.calls.Load()
					got, fromGateway := serve(direct, method, path, h), serve(viaGateway, method, path, h)
					name := fmt.Sprintf("%s %s, Accept-Encoding %q, If-None-Match %q", method, path, encoding, inm)
					if got.Code != want {
						t.Errorf("%s = %d, want %d", name, got.Code, want)
					}
					same(name, got, fromGateway)
					if calls := svc.calls.Load() - before; calls != 0 {
						t.Errorf("%s: %d calls through the gateway, want none", name, calls)
					}
				}
			}
		}
	}

	// What is not in memory is the gateway's to refuse, tag or not.
	for path, want := range map[string]int{
		"/registrations/" + uuid.NewString() + "/jwks.json": http.StatusNotFound,
		"/registrations/abc-123/jwks.json":                  http.StatusBadRequest,
	} {
		for _, header := range []http.Header{{}, {"If-None-Match": {"*"}}} {
			before := svc.calls.Load()
			got, fromGateway := serve(direct, http.MethodGet, path, header), serve(viaGateway, http.MethodGet, path, header)
			name := fmt.Sprintf("GET %s, If-None-Match %q", path, header.Get("If-None-Match"))
			if got.Code != want {
				t.Errorf("%s = %d, want %d", name, got.Code, want)
			}
			same(name, got, fromGateway)
			if calls := svc.calls.Load() - before; calls != 1 {
				t.Errorf("%s: %d calls through the gateway, want 1", name, calls)
			}
		}
	}
	notLoaded := &countingJwks{JwksService: server.NewJwksService(server.NewJWKSCache(env.store))}
	handler, err := server.NewHTTPHandler(ctx, notLoaded, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(handler, http.MethodGet, server.JWKSPath, http.Header{}); rec.Code != http.StatusServiceUnavailable || notLoaded.calls.Load() != 1 {
		t.Errorf("GET %s before the first refresh = %d after %d calls through the gateway, want 503 after 1", server.JWKSPath, rec.Code, notLoaded.calls.Load())
	}
}

func TestReadyz(t *testing.T) {
	var readyErr error
	handler, err := server.NewHTTPHandler(context.Background(), stubJwks{}, func(context.Context) error { return readyErr })
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(handler)
	defer hs.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(server.ReadyzPath); code != http.StatusOK {
		t.Errorf("ready: /readyz = %d, want 200", code)
	}
	readyErr = errors.New("database password=hunter2 unreachable")
	code, body := get(server.ReadyzPath)
	if code != http.StatusServiceUnavailable {
		t.Errorf("not ready: /readyz = %d, want 503", code)
	}
	if strings.Contains(body, "hunter2") {
		t.Errorf("/readyz shows the readiness error to the public: %q", body)
	}
	if code, _ := get(server.HealthzPath); code != http.StatusOK {
		t.Errorf("not ready: /healthz = %d, want 200 (the process is alive)", code)
	}

	handler, err = server.NewHTTPHandler(context.Background(), stubJwks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, server.ReadyzPath, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("nil readiness check: /readyz = %d, want 200", rec.Code)
	}
}

func TestJWKSCacheReady(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	cache := server.NewJWKSCache(env.store)
	if cache.Ready(context.Background()) == nil {
		t.Errorf("Ready before the first refresh = nil, want an error")
	}
	if err := cache.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := cache.Ready(context.Background()); err != nil {
		t.Errorf("Ready after a refresh = %v", err)
	}
	env.store.Close()
	if cache.Refresh(context.Background()) == nil {
		t.Fatal("Refresh on a closed store succeeded")
	}
	if cache.Ready(context.Background()) == nil {
		t.Errorf("Ready after a failed refresh = nil, want the error")
	}
	if cache.Document() == nil {
		t.Errorf("a failed refresh dropped the last good document")
	}
}
