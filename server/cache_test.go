package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
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

// replicaDeadline is how soon a change made through one replica must show
// in another.
const replicaDeadline = 2 * time.Second

// replica is a running server like testEnv, optionally keeping its caches
// current in the background as serve does, and counting every SQL
// statement its store runs.
type replica struct {
	*testEnv
	statements *atomic.Int64
}

// startReplica starts a server on databaseURL. With refresh > 0 it runs
// JWKSCache.Run at that interval (and, on PostgreSQL, on notifications),
// and Health.Run at the same interval, until the test ends.
func startReplica(t *testing.T, databaseURL string, refresh time.Duration) *replica {
	t.Helper()
	var statements atomic.Int64
	env, _ := startEnv(t, databaseURL, envOptions{
		store: []storage.Option{storage.WithStatementHook(func(context.Context) { statements.Add(1) })},
		jwks:  []server.JwksOption{server.WithMaxAge(90 * time.Second)},
	})
	if refresh > 0 {
		// Registered after startEnv's clean-ups, so it stops first.
		ctx, cancel := context.WithCancel(context.Background())
		var running sync.WaitGroup
		running.Go(func() { env.jwks.Run(ctx, refresh, slog.New(slog.DiscardHandler)) })
		running.Go(func() { env.health.Run(ctx, refresh) })
		t.Cleanup(func() {
			cancel()
			running.Wait()
		})
	}
	return &replica{testEnv: env, statements: &statements}
}

// get fetches path from the replica's public listener with headers, without
// the transport's transparent decompression, and returns the response and
// its raw body.
func (r *replica) get(t *testing.T, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// kids returns the kids of a JWK Set document.
func kids(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("not a JWK Set: %v: %.200s", err, doc)
	}
	out := map[string]bool{}
	for _, raw := range set.Keys {
		assertPublicOnly(t, raw)
		var k struct {
			Kid string `json:"kid"`
		}
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		out[k.Kid] = true
	}
	return out
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return out
}

func TestJWKSHTTPCaching(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			r := startReplica(t, b.url(t), 0)
			a := r.mustCreate(t, "cache-a")
			other := r.mustCreate(t, "cache-b")
			regPath := "/registrations/" + a.GetRegistration().GetId() + "/jwks.json"

			for _, path := range []string{server.JWKSPath, regPath} {
				resp, body := r.get(t, http.MethodGet, path)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s = %d: %s", path, resp.StatusCode, body)
				}
				etag := resp.Header.Get("ETag")
				if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
					t.Errorf("GET %s: ETag %q is not a strong entity tag", path, etag)
				}
				for h, want := range map[string]string{
					"Cache-Control":    "public, max-age=90",
					"Vary":             "Accept-Encoding",
					"Content-Type":     "application/json",
					"Content-Length":   strconv.Itoa(len(body)),
					"Content-Encoding": "",
				} {
					if got := resp.Header.Get(h); got != want {
						t.Errorf("GET %s: %s = %q, want %q", path, h, got, want)
					}
				}
				identity := body

				// The same document, compressed, under its own tag.
				resp, body = r.get(t, http.MethodGet, path, "Accept-Encoding", "br;q=1.0, gzip;q=0.8")
				if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
					t.Errorf("GET %s with gzip accepted: Content-Encoding %q, Content-Length %q for %d bytes",
						path, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"), len(body))
				}
				if !bytes.Equal(gunzip(t, body), identity) {
					t.Errorf("GET %s: the gzip body is not the document", path)
				}
				gzETag := resp.Header.Get("ETag")
				if gzETag == etag || gzETag == "" {
					t.Errorf("GET %s: gzip ETag %q, identity ETag %q: want two different tags", path, gzETag, etag)
				}
				if resp, _ := r.get(t, http.MethodGet, path, "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
					t.Errorf("GET %s: gzip;q=0 got Content-Encoding %q", path, resp.Header.Get("Content-Encoding"))
				}

				// Conditional requests.
				for _, inm := range []string{etag, gzETag, `"other", ` + etag, "W/" + etag, "*"} {
					resp, body := r.get(t, http.MethodGet, path, "If-None-Match", inm)
					if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
						t.Errorf("GET %s If-None-Match %s = %d with %d bytes, want 304 and no body", path, inm, resp.StatusCode, len(body))
					}
					if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "" {
						t.Errorf("GET %s If-None-Match %s: 304 without ETag or Cache-Control: %v", path, inm, resp.Header)
					}
				}
				if resp, _ := r.get(t, http.MethodGet, path, "If-None-Match", `"stale"`); resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s with a stale ETag = %d, want 200", path, resp.StatusCode)
				}
				resp, body = r.get(t, http.MethodHead, path)
				if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("ETag") != etag {
					t.Errorf("HEAD %s = %d, %d bytes, ETag %q", path, resp.StatusCode, len(body), resp.Header.Get("ETag"))
				}
			}

			// The registration's document holds its keys only.
			_, body := r.get(t, http.MethodGet, regPath)
			if got := kids(t, body); len(got) != 1 || !got[a.GetKey().GetKid()] {
				t.Errorf("registration JWKS kids = %v, want only %s", got, a.GetKey().GetKid())
			}
			_, body = r.get(t, http.MethodGet, server.JWKSPath)
			if got := kids(t, body); len(got) != 2 || !got[other.GetKey().GetKid()] {
				t.Errorf("JWKS kids = %v, want both registrations' keys", got)
			}
			resp, _ := r.get(t, http.MethodGet, regPath)
			oldTag := resp.Header.Get("ETag")

			// A rotation changes the document and its tag; the old tag no
			// longer matches.
			rotated, err := r.keys.RotateKey(context.Background(), &ltikeysv1.RotateKeyRequest{RegistrationId: a.GetRegistration().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			resp, body = r.get(t, http.MethodGet, regPath, "If-None-Match", oldTag)
			if resp.StatusCode != http.StatusOK || !kids(t, body)[rotated.GetNewKey().GetKid()] || len(kids(t, body)) != 2 {
				t.Errorf("after rotation, GET with the old ETag = %d, kids %v; want 200 with both of the registration's keys", resp.StatusCode, kids(t, body))
			}

			// Unknown and malformed registrations.
			for path, want := range map[string]int{
				"/registrations/" + uuid.NewString() + "/jwks.json":  http.StatusNotFound,
				"/registrations/not-a-uuid/jwks.json":                http.StatusNotFound,
				"/registrations/0123/jwks.json":                      http.StatusBadRequest,
				"/registrations//jwks.json":                          http.StatusNotFound,
				"/registrations/" + uuid.NewString() + "/jwks.json/": http.StatusNotFound,
			} {
				if resp, body := r.get(t, http.MethodGet, path); resp.StatusCode != want {
					t.Errorf("GET %s = %d (%s), want %d", path, resp.StatusCode, body, want)
				}
			}

			// Over gRPC, the same method and the same answers.
			_, err = r.jwksClient.GetRegistrationJwks(context.Background(), &ltikeysv1.GetRegistrationJwksRequest{RegistrationId: uuid.NewString()})
			if status.Code(err) != codes.NotFound {
				t.Errorf("GetRegistrationJwks of an unknown registration: %v, want NotFound", err)
			}
			var header metadata.MD
			ctx := metadata.AppendToOutgoingContext(context.Background(), "http-if-none-match", resp.Header.Get("ETag"))
			got, err := r.jwksClient.GetRegistrationJwks(ctx, &ltikeysv1.GetRegistrationJwksRequest{RegistrationId: a.GetRegistration().GetId()}, grpc.Header(&header))
			if err != nil || len(got.GetData()) != 0 || header.Get("http-status")[0] != "304" {
				t.Errorf("GetRegistrationJwks with a matching tag: %v, %d bytes, header %v; want an empty 304", err, len(got.GetData()), header)
			}
		})
	}
}

// TestWarmRequestsRunNoSQL counts the statements a warm JWKS request and a
// warm GetToolKey run: none.
func TestWarmRequestsRunNoSQL(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			r := startReplica(t, b.url(t), 0)
			created := r.mustCreate(t, "warm")
			id := created.GetRegistration().GetId()
			byID := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
			byIssuer := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
				Issuer: created.GetRegistration().GetIssuer(), ClientId: created.GetRegistration().GetClientId(),
			}}}
			requests := []struct {
				name string
				do   func() error
			}{
				{"GET jwks", func() error { r.get(t, http.MethodGet, server.JWKSPath); return nil }},
				{"GET gzip jwks", func() error { r.get(t, http.MethodGet, server.JWKSPath, "Accept-Encoding", "gzip"); return nil }},
				{"GET registration jwks", func() error { r.get(t, http.MethodGet, "/registrations/"+id+"/jwks.json"); return nil }},
				{"GetToolKey by id", func() error { _, err := r.keys.GetToolKey(context.Background(), byID); return err }},
				{"GetToolKey by issuer", func() error { _, err := r.keys.GetToolKey(context.Background(), byIssuer); return err }},
			}
			for _, req := range requests { // warm up
				if err := req.do(); err != nil {
					t.Fatalf("%s: %v", req.name, err)
				}
			}
			for _, req := range requests {
				before := r.statements.Load()
				if err := req.do(); err != nil {
					t.Fatalf("%s: %v", req.name, err)
				}
				if n := r.statements.Load() - before; n != 0 {
					t.Errorf("warm %s ran %d SQL statements, want 0", req.name, n)
				}
			}
			// The counter does count: a cold lookup queries.
			before := r.statements.Load()
			if err := r.jwks.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r.statements.Load() == before {
				t.Errorf("the statement counter saw no statement for a refresh")
			}
		})
	}
}

// eventually polls check until it returns "" or the deadline passes, and
// fails with check's last complaint.
func eventually(t *testing.T, deadline time.Duration, what string, check func() string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s: %s", what, deadline, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func toolKid(t *testing.T, r *replica, id string) string {
	t.Helper()
	resp, err := r.keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id},
	})
	if err != nil {
		t.Fatalf("GetToolKey: %v", err)
	}
	return resp.GetKid()
}

func servedKids(t *testing.T, r *replica) map[string]bool {
	t.Helper()
	resp, body := r.get(t, http.MethodGet, server.JWKSPath)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks = %d: %s", resp.StatusCode, body)
	}
	return kids(t, body)
}

// TestReplicasSeeEachOthersChanges runs two servers on one database: a
// rotation through one shows in the other's JWKS and GetToolKey, and a
// retirement through the other leaves the first's JWKS. On PostgreSQL the
// periodic check is an hour apart, so only notifications can make it in
// time; on SQLite polling is the mechanism.
func TestReplicasSeeEachOthersChanges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		url     func(testing.TB) string
		refresh time.Duration
	}{
		{"postgres", storagetest.PostgresURL, time.Hour},
		{"sqlite", storagetest.SQLiteURL, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			a := startReplica(t, url, tc.refresh)
			b := startReplica(t, url, tc.refresh)
			created := a.mustCreate(t, "replicas")
			id, first := created.GetRegistration().GetId(), created.GetKey().GetKid()
			eventually(t, replicaDeadline, "B publishes A's new registration", func() string {
				if !servedKids(t, b)[first] {
					return "kid missing"
				}
				return ""
			})
			if got := toolKid(t, b, id); got != first { // warms B's key cache
				t.Fatalf("B's GetToolKey kid = %s, want %s", got, first)
			}

			rotated, err := a.keys.RotateKey(context.Background(), rotateNow(id))
			if err != nil {
				t.Fatal(err)
			}
			next := rotated.GetNewKey().GetKid()
			eventually(t, replicaDeadline, "B reflects A's rotation", func() string {
				if kids := servedKids(t, b); !kids[next] || !kids[first] {
					return "B's JWKS lacks a key"
				}
				if got := toolKid(t, b, id); got != next {
					return "B's GetToolKey still returns " + got
				}
				return ""
			})

			if _, err := b.keys.RetireKey(context.Background(), &ltikeysv1.RetireKeyRequest{Kid: first}); err != nil {
				t.Fatal(err)
			}
			eventually(t, replicaDeadline, "A drops the key B retired", func() string {
				if servedKids(t, a)[first] {
					return "A still publishes it"
				}
				return ""
			})
		})
	}
}

// TestDatabaseOutage puts a proxy between a server and PostgreSQL and
// stops it: the server keeps serving its last JWKS, global and per
// registration, and warm key lookups; calls that need the database fail
// UNAVAILABLE with a RetryInfo; health reports KeyService NOT_SERVING and
// JwksService SERVING, and /readyz stays 200. Once the proxy lets
// connections through again, the server catches up on its own.
func TestDatabaseOutage(t *testing.T) {
	direct := storagetest.PostgresURL(t)
	proxy, proxied := storagetest.ProxyURL(t, direct)
	admin := startReplica(t, direct, 0)
	created := admin.mustCreate(t, "outage")
	id, first := created.GetRegistration().GetId(), created.GetKey().GetKid()
	cold := admin.mustCreate(t, "outage-cold").GetRegistration().GetId()

	r := startReplica(t, proxied, 100*time.Millisecond)
	_, before := r.get(t, http.MethodGet, server.JWKSPath)
	if !kids(t, before)[first] {
		t.Fatalf("JWKS before the outage lacks %s", first)
	}
	regPath := "/registrations/" + id + "/jwks.json"
	_, regBefore := r.get(t, http.MethodGet, regPath)
	toolKid(t, r, id) // warm the key cache
	const keySvc, jwksSvc = "ltikeys.v1.KeyService", "ltikeys.v1.JwksService"

	proxy.Stop()
	eventually(t, 10*time.Second, "KeyService health reports the outage", func() string {
		if got := healthStatus(t, r.testEnv, keySvc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			return "KeyService is " + got.String()
		}
		return ""
	})
	if got := healthStatus(t, r.testEnv, jwksSvc); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("during the outage JwksService is %v, want SERVING on the last good document", got)
	}
	if resp, body := r.get(t, http.MethodGet, server.ReadyzPath); resp.StatusCode != http.StatusOK {
		t.Errorf("during the outage /readyz = %s %s, want 200", resp.Status, body)
	}
	resp, during := r.get(t, http.MethodGet, server.JWKSPath)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(during, before) {
		t.Fatalf("during the outage the JWKS is %d with %d bytes; want the last document", resp.StatusCode, len(during))
	}
	if resp, body := r.get(t, http.MethodGet, regPath); resp.StatusCode != http.StatusOK || !bytes.Equal(body, regBefore) {
		t.Errorf("during the outage the registration's JWKS is %d with %d bytes; want the last document", resp.StatusCode, len(body))
	}
	if got := toolKid(t, r, id); got != first {
		t.Errorf("during the outage, warm GetToolKey returned %s, want %s", got, first)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"GetRegistration": func() error {
			_, err := r.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
			return err
		},
		"cold GetToolKey": func() error {
			_, err := r.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: cold}})
			return err
		},
		"cold SignJwt": func() error {
			_, err := r.keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: cold}, ClaimsJson: `{"sub":"u"}`})
			return err
		},
		"RotateKey": func() error {
			_, err := r.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
			return err
		},
	} {
		wantUnavailable(t, name, call())
	}

	proxy.Restore()
	rotated, err := admin.keys.RotateKey(ctx, rotateNow(id))
	if err != nil {
		t.Fatal(err)
	}
	next := rotated.GetNewKey().GetKid()
	eventually(t, 15*time.Second, "the server catches up after the outage", func() string {
		if !servedKids(t, r)[next] {
			return "the new key is not published"
		}
		if got := healthStatus(t, r.testEnv, keySvc); got != healthpb.HealthCheckResponse_SERVING {
			return "KeyService is " + got.String()
		}
		if got := toolKid(t, r, id); got != next {
			return "GetToolKey returns " + got
		}
		return ""
	})
}

// healthStatus returns the grpc.health.v1 status of service.
func healthStatus(t *testing.T, env *testEnv, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := env.healthClient.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health check of %q: %v", service, err)
	}
	return resp.GetStatus()
}

// wantUnavailable fails the test unless err is UNAVAILABLE with the
// database's message and a RetryInfo.
func wantUnavailable(t *testing.T, name string, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || st.Message() != server.UnavailableMessage {
		t.Errorf("%s = %v, want UNAVAILABLE %q", name, err, server.UnavailableMessage)
		return
	}
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok && r.GetRetryDelay().AsDuration() > 0 {
			return
		}
	}
	t.Errorf("%s: UNAVAILABLE without a RetryInfo: %v", name, st.Details())
}

// TestKeyCacheFollowsChanges checks GetToolKey against a rotation made by
// the same server (the cache is dropped at once) and by another one (the
// cache follows the store's version on refresh).
func TestKeyCacheFollowsChanges(t *testing.T) {
	url := storagetest.SQLiteURL(t)
	a := startReplica(t, url, 0)
	b := startReplica(t, url, 0)
	created := a.mustCreate(t, "keycache")
	id := created.GetRegistration().GetId()
	if got := toolKid(t, a, id); got != created.GetKey().GetKid() {
		t.Fatalf("GetToolKey = %s", got)
	}
	rotated, err := a.keys.RotateKey(context.Background(), rotateNow(id))
	if err != nil {
		t.Fatal(err)
	}
	if got := toolKid(t, a, id); got != rotated.GetNewKey().GetKid() {
		t.Errorf("right after a local rotation GetToolKey = %s, want the new key", got)
	}
	if err := b.jwks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	toolKid(t, b, id) // warm
	again, err := a.keys.RotateKey(context.Background(), rotateNow(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.jwks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := toolKid(t, b, id); got != again.GetNewKey().GetKid() {
		t.Errorf("after another server's rotation and a refresh, GetToolKey = %s, want the new key", got)
	}
}

// TestRegistrationJwksIsPublic calls GetRegistrationJwks over gRPC with the
// access-control interceptors in place and no credentials.
func TestRegistrationJwksIsPublic(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	created := env.create(t)
	jwks := ltikeysv1.NewJwksServiceClient(env.dial(t, nil, ""))
	body, err := jwks.GetRegistrationJwks(context.Background(), &ltikeysv1.GetRegistrationJwksRequest{RegistrationId: created.GetRegistration().GetId()})
	if err != nil {
		t.Fatalf("GetRegistrationJwks without credentials: %v", err)
	}
	if got := kids(t, body.GetData()); !got[created.GetKey().GetKid()] || len(got) != 1 {
		t.Errorf("GetRegistrationJwks kids = %v, want only %s", got, created.GetKey().GetKid())
	}
}
