package server_test

import (
	"context"
	stdcrypto "crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// benchPlatformScopes are the scopes of a tool that posts grades and reads
// the roster: what one GetPlatformAccessToken asks for in the benchmarks.
var benchPlatformScopes = []string{
	"https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
	"https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
	"https://purl.imsglobal.org/spec/lti-ags/scope/score",
	"https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
}

// BenchmarkPlatformAccessTokenCached compares a GetPlatformAccessToken
// answered from the token cache with a bare grpc-go unary handler, in the
// same run, as cmd/ltikeys-load compares GetToolKey: 32 calls in flight on
// one connection, each side on its own grpc.Server on loopback TCP. The
// subject goes through serve's chain (server.ServerOptions with the
// access control's interceptor, request id, audit line formatted as JSON
// and dropped, start-up gate and request timeout; serve's default limits,
// with the access control's tap handle, and its connection limit on the
// listener; metrics off, as by default). The baseline has no options and
// no interceptor: it decodes the same request bytes into the same message
// type and returns a copy of a cached answer, so both sides move
// identical bytes and only ltikeys' own work differs. Every subject call
// must come from the cache, and the platform must see no request while
// they run.
//
// Each iteration is one round of each side, of a second each after a
// warm-up, the order alternating from round to round. ns/op, B/op and
// allocs/op are the subject's per call (wall time of its rounds over the
// calls made, so the inverse of its throughput, as b.RunParallel reports;
// allocations of the whole process, client and server); bare-ns/op,
// bare-B/op and bare-allocs/op are the baseline's. ratio is the subject's
// calls per second over the baseline's, over all rounds, and ratio-min,
// ratio-median and ratio-max those of the single rounds; request-bytes
// and response-bytes are the sizes of the messages both sides exchange.
//
//	go test -run '^$' -bench '^BenchmarkPlatformAccessTokenCached$' -benchtime 6x ./server/
func BenchmarkPlatformAccessTokenCached(b *testing.B) {
	const (
		inFlight = 32
		round    = time.Second
		warmup   = 300 * time.Millisecond
	)
	pb := newPlatformBench(b)
	ctx := context.Background()
	req := pb.viaFake.req
	if first := pb.call(b, req); first.GetCached() {
		b.Fatal("the first call was answered from the cache")
	}
	warm := pb.call(b, req)
	if !warm.GetCached() {
		b.Fatal("the second call was not answered from the cache")
	}
	bareConn := startBarePlatformToken(b, warm)

	subject := func() error {
		resp, err := pb.client.GetPlatformAccessToken(pb.authCtx, req)
		if err == nil && !resp.GetCached() {
			err = errors.New("a call was not answered from the cache")
		}
		return err
	}
	bareCall := func() error {
		return bareConn.Invoke(ctx, "/bench.Bare/GetPlatformAccessToken", req, new(ltikeysv1.GetPlatformAccessTokenResponse))
	}
	var bare, cached callRounds
	for _, op := range []func() error{bareCall, subject} {
		var discard callRounds
		if err := discard.measure(inFlight, warmup, op); err != nil {
			b.Fatal(err)
		}
	}
	exchanges := pb.fake.Count()
	for i := 0; b.Loop(); i++ {
		sides := []struct {
			r  *callRounds
			op func() error
		}{{&bare, bareCall}, {&cached, subject}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			if err := s.r.measure(inFlight, round, s.op); err != nil {
				b.Fatal(err)
			}
		}
	}
	if n := pb.fake.Count() - exchanges; n != 0 {
		b.Fatalf("the platform got %d token requests while the cache answered", n)
	}
	ratios := make([]float64, len(bare.rates))
	for i := range ratios {
		ratios[i] = cached.rates[i] / bare.rates[i]
	}
	slices.Sort(ratios)
	b.ReportAllocs()
	cached.report(b, "")
	bare.report(b, "bare-")
	b.ReportMetric(cached.rate()/bare.rate(), "ratio")
	b.ReportMetric(ratios[0], "ratio-min")
	b.ReportMetric(ratios[len(ratios)/2], "ratio-median")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
	b.ReportMetric(float64(proto.Size(req)), "request-bytes")
	b.ReportMetric(float64(proto.Size(warm)), "response-bytes")
}

// BenchmarkPlatformAccessTokenUncached breaks down what a
// GetPlatformAccessToken that misses the cache costs, one caller at a
// time, against the fake platform of package platformtest (TLS on
// loopback, its certificate from its own test CA, which the outbound
// client built by platform.NewHTTPClient trusts) and against a stand-in
// that answers alike but verifies nothing. Both run in this process, on
// the same cores: their share of the work, TLS and HTTP included, is in
// every exchange and grpc figure, and so are their allocations. The
// outbound client keeps its connection alive: every sub-benchmark fails if
// it opens one during its loop.
//
//   - sign/rs256-bare: rsa.SignPKCS1v15 of a SHA-256 digest with a
//     precomputed 2048-bit key, the RSA floor of one assertion;
//   - sign/assertion: CreateClientAssertion on the KeyService in process,
//     its key warm: the code that signs the assertion of an exchange
//     (claims, a random jti, RS256 with the registration's 2048-bit key);
//   - exchange/platformtest, exchange/stand-in: platform.TokenClient.Token
//     with an assertion signed beforehand, outside the timer (the fake
//     refuses a jti twice): the form, the HTTPS round trip on the kept
//     connection, the platform's side, reading and parsing the answer,
//     the cache's bookkeeping;
//   - fake-verify: what the fake does that the stand-in does not, in
//     process: parse the assertion and verify its RS256 signature with
//     go-jose, and decode its claims;
//   - grpc/cached: GetPlatformAccessToken over gRPC through serve's chain
//     (as in BenchmarkPlatformAccessTokenCached), answered from the cache;
//   - grpc/platformtest, grpc/stand-in: the same call missing the cache,
//     which TokenClient.Invalidate, timed, empties before each one: signing
//     and exchange included.
//
// grpc/stand-in comes to grpc/cached + sign/assertion + exchange/stand-in
// and a little more: the parts are timed apart, and exchange/* signs with
// its timer stopped.
//
//	go test -run '^$' -bench '^BenchmarkPlatformAccessTokenUncached$' -benchmem ./server/
func BenchmarkPlatformAccessTokenUncached(b *testing.B) {
	pb := newPlatformBench(b)
	ctx := context.Background()
	for _, r := range []platformRoute{pb.viaFake, pb.viaStandIn} {
		pb.call(b, r.req) // connected, and the fake has fetched the key set
	}
	assertion := func(b *testing.B, r platformRoute) string {
		resp, err := pb.keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{
			Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: r.regID},
		})
		if err != nil {
			b.Fatal(err)
		}
		return resp.GetClientAssertion()
	}
	// keptAlive fails b if the outbound client opened a connection since
	// dials was read.
	keptAlive := func(b *testing.B, dials int64) {
		if n := pb.dials.Load() - dials; n != 0 {
			b.Fatalf("the outbound client opened %d connections during the loop", n)
		}
	}

	b.Run("sign/rs256-bare", func(b *testing.B) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		key.Precompute()
		input := []byte(assertion(b, pb.viaFake))
		input = input[:strings.LastIndexByte(string(input), '.')]
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(input)
			if _, err := rsa.SignPKCS1v15(nil, key, stdcrypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign/assertion", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			assertion(b, pb.viaFake)
		}
	})
	for _, r := range []platformRoute{pb.viaFake, pb.viaStandIn} {
		b.Run("exchange/"+r.name, func(b *testing.B) {
			var next string
			treq := platform.TokenRequest{
				RegistrationID: r.regID, TokenEndpoint: r.tokenURL, KeyID: r.kid, Scopes: benchPlatformScopes,
				Assertion: func(context.Context) (string, error) { return next, nil },
			}
			dials := pb.dials.Load()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				next = assertion(b, r)
				pb.tokens.Invalidate(r.regID)
				b.StartTimer()
				tok, err := pb.tokens.Token(ctx, treq)
				if err != nil {
					b.Fatal(err)
				}
				if tok.FromCache {
					b.Fatal("the token came from the cache")
				}
			}
			keptAlive(b, dials)
		})
	}
	b.Run("fake-verify", func(b *testing.B) {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(server.RegistrationDocument(pb.jwks, pb.viaFake.regID), &set); err != nil {
			b.Fatal(err)
		}
		keys := set.Key(pb.viaFake.kid)
		if len(keys) != 1 {
			b.Fatalf("%d keys with kid %s", len(keys), pb.viaFake.kid)
		}
		a := assertion(b, pb.viaFake)
		b.ReportAllocs()
		for b.Loop() {
			jws, err := jose.ParseSignedCompact(a, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				b.Fatal(err)
			}
			payload, err := jws.Verify(keys[0])
			if err != nil {
				b.Fatal(err)
			}
			var claims map[string]any
			dec := json.NewDecoder(strings.NewReader(string(payload)))
			dec.UseNumber()
			if err := dec.Decode(&claims); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grpc/cached", func(b *testing.B) {
		req := pb.viaFake.req
		pb.call(b, req)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := pb.client.GetPlatformAccessToken(pb.authCtx, req)
			if err != nil {
				b.Fatal(err)
			}
			if !resp.GetCached() {
				b.Fatal("not answered from the cache")
			}
		}
	})
	for _, r := range []platformRoute{pb.viaFake, pb.viaStandIn} {
		b.Run("grpc/"+r.name, func(b *testing.B) {
			dials := pb.dials.Load()
			b.ReportAllocs()
			for b.Loop() {
				pb.tokens.Invalidate(r.regID)
				resp, err := pb.client.GetPlatformAccessToken(pb.authCtx, r.req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.GetCached() {
					b.Fatal("answered from the cache")
				}
			}
			keptAlive(b, dials)
		})
	}
}

// platformBench is a KeyService serving GetPlatformAccessToken as serve
// wires it (SQLite store, JWKS cache, a platform.TokenClient over
// platform.NewHTTPClient), reached over loopback TCP through serve's
// interceptor chain, with one registration whose token endpoint is a
// platformtest fake and one whose is a stand-in that does not verify.
type platformBench struct {
	keys    *server.KeyService
	jwks    *server.JWKSCache
	tokens  *platform.TokenClient
	client  ltikeysv1.KeyServiceClient
	authCtx context.Context
	fake    *platformtest.Platform
	// dials counts the connections the outbound client opened.
	dials               *atomic.Int64
	viaFake, viaStandIn platformRoute
}

// platformRoute is a registration and the request for its token.
type platformRoute struct {
	name, regID, kid, tokenURL string
	req                        *ltikeysv1.GetPlatformAccessTokenRequest
}

// newPlatformBench starts a platformBench; everything stops when b ends.
func newPlatformBench(b *testing.B) *platformBench {
	b.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, storagetest.SQLiteURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	// The fake fetches the tool's keys from the public handler, as a
	// platform would.
	public, err := server.NewHTTPHandler(ctx, server.NewJwksService(jwks), nil)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(public)
	b.Cleanup(hs.Close)
	fake := platformtest.New(b, platformtest.Options{ClientID: "bench-fake", JWKSURL: hs.URL + server.JWKSPath, Host: "localhost"})
	standInURL, standInCA := startStandInPlatform(b)

	roots := x509.NewCertPool()
	roots.AddCert(fake.CA.Certificate)
	roots.AddCert(standInCA.Certificate)
	dials := &atomic.Int64{}
	httpClient, err := platform.NewHTTPClient(platform.HTTPOptions{Version: "bench", RootCAs: roots, Resolver: countingResolver{dials}})
	if err != nil {
		b.Fatal(err)
	}
	// Log lines are formatted as in production, then dropped.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	tokens, err := platform.NewTokenClient(platform.TokenClientOptions{HTTPClient: httpClient, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{
		Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: jwks, Log: log, PlatformTokens: tokens,
	})
	if err != nil {
		b.Fatal(err)
	}
	route := func(name, clientID, tokenURL string) platformRoute {
		resp, err := keys.CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
			Issuer: "https://platform.example/" + name, ClientId: clientID,
			AuthEndpoint: "https://platform.example/auth", JwksUri: "https://platform.example/jwks",
			TokenEndpoint: tokenURL,
		})
		if err != nil {
			b.Fatal(err)
		}
		id := resp.GetRegistration().GetId()
		return platformRoute{
			name: name, regID: id, kid: resp.GetKey().GetKid(), tokenURL: tokenURL,
			req: &ltikeysv1.GetPlatformAccessTokenRequest{
				Lookup: &ltikeysv1.GetPlatformAccessTokenRequest_RegistrationId{RegistrationId: id},
				Scopes: benchPlatformScopes,
			},
		}
	}
	pb := &platformBench{
		keys: keys, jwks: jwks, tokens: tokens, fake: fake, dials: dials,
		viaFake:    route("platformtest", "bench-fake", fake.TokenURL),
		viaStandIn: route("stand-in", "bench-stand-in", standInURL),
	}

	token, err := server.GenerateToken()
	if err != nil {
		b.Fatal(err)
	}
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens: []server.Token{{Name: "bench", Scopes: []server.Scope{server.ScopePlatformToken}, Hash: server.HashToken(token)}},
		Log:    log,
	})
	if err != nil {
		b.Fatal(err)
	}
	health := server.NewHealth(log)
	health.MarkStarted(ctx, nil)
	limits := server.DefaultLimits()
	opts := server.ServerOptions(log, nil, health, 30*time.Second, []grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.UnaryInterceptor())})
	srv := grpc.NewServer(append(opts, limits.ServerOptions(auth.TapHandle())...)...)
	ltikeysv1.RegisterKeyServiceServer(server.EarlyRefusals(srv), keys)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(limits.Listener(lis))
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	pb.client = ltikeysv1.NewKeyServiceClient(conn)
	pb.authCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	return pb
}

// call makes one GetPlatformAccessToken over gRPC, failing b on an error.
func (pb *platformBench) call(b *testing.B, req *ltikeysv1.GetPlatformAccessTokenRequest) *ltikeysv1.GetPlatformAccessTokenResponse {
	b.Helper()
	resp, err := pb.client.GetPlatformAccessToken(pb.authCtx, req)
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

// startBarePlatformToken starts a grpc.Server with no options on loopback
// TCP whose one method, /bench.Bare/GetPlatformAccessToken, decodes a
// GetPlatformAccessTokenRequest and returns answer, and returns a
// connection to it.
func startBarePlatformToken(b *testing.B, answer *ltikeysv1.GetPlatformAccessTokenResponse) *grpc.ClientConn {
	b.Helper()
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Bare",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "GetPlatformAccessToken", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in ltikeysv1.GetPlatformAccessTokenRequest
			if err := dec(&in); err != nil {
				return nil, err
			}
			return answer, nil
		}}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// startStandInPlatform starts, over TLS on 127.0.0.1 with a certificate
// for localhost from a new platformtest CA, a token endpoint that reads
// the form as the fake does and gives the fake's success answer, in the
// same bytes and headers, without verifying anything. It returns the
// token URL, https://localhost:<port>/token, and the CA.
func startStandInPlatform(b *testing.B) (string, *platformtest.CA) {
	b.Helper()
	ca := platformtest.NewCA(b)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if r.URL.Path != platformtest.TokenPath || r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("client_assertion") == "" {
			http.Error(w, "not a token request", http.StatusBadRequest)
			return
		}
		access := make([]byte, 32)
		rand.Read(access)
		body, err := json.Marshal(map[string]any{
			"access_token": base64.RawURLEncoding.EncodeToString(access),
			"token_type":   "Bearer",
			"expires_in":   3600,
			"scope":        r.PostForm.Get("scope"),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(b, "localhost", "127.0.0.1")}}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "https://" + net.JoinHostPort("localhost", port) + platformtest.TokenPath, ca
}

// countingResolver resolves localhost to 127.0.0.1 and counts the
// lookups: the outbound client makes one per connection it opens.
type countingResolver struct{ n *atomic.Int64 }

func (r countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host != "localhost" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	r.n.Add(1)
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// callRounds accumulates one side of a comparison over its rounds: the
// calls completed and the time they took (as sustained does), each
// round's rate, and the heap allocations the process made meanwhile.
type callRounds struct {
	sustained
	rates         []float64
	allocs, bytes uint64
}

// measure runs op in workers goroutines for d, and adds what they did.
func (r *callRounds) measure(workers int, d time.Duration, op func() error) error {
	var before, after runtime.MemStats
	var s sustained
	runtime.ReadMemStats(&before)
	err := s.measure(workers, d, op)
	runtime.ReadMemStats(&after)
	if err != nil {
		return err
	}
	r.ops += s.ops
	r.elapsed += s.elapsed
	r.rates = append(r.rates, s.rate())
	r.allocs += after.Mallocs - before.Mallocs
	r.bytes += after.TotalAlloc - before.TotalAlloc
	return nil
}

// report reports the time, bytes and allocations per call, their units
// prefixed with prefix.
func (r *callRounds) report(b *testing.B, prefix string) {
	if r.ops == 0 {
		b.Fatal("no call completed")
	}
	n := float64(r.ops)
	b.ReportMetric(float64(r.elapsed.Nanoseconds())/n, prefix+"ns/op")
	b.ReportMetric(float64(r.bytes)/n, prefix+"B/op")
	b.ReportMetric(float64(r.allocs)/n, prefix+"allocs/op")
}
