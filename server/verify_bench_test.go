//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
)

// The size of a round of BenchmarkVerifyPlatformToken's warm comparison:
// the launches signed for it, each verified once over gRPC and once by
// the bare verification with its nonce recorded, and bareVerifyPasses
// times by the bare verification alone, which records nothing (so that
// its side of a round lasts long enough to measure).
const (
	verifyRound      = 400
	bareVerifyPasses = 10
)

// BenchmarkVerifyPlatformToken measures KeyService.VerifyPlatformToken
// against a fake platform (platformtest.Launcher) that serves its key set
// over TLS on loopback.
//
// warm/<backend>: VerifyPlatformToken over gRPC, on a loopback TCP
// connection to a grpc.Server with serve's interceptor chain (request id
// and log line, access control with its tap handle and audit line, the
// start-up gate, the request timeout) and default limits, the platform's
// key set and the registration already cached; each call names no
// registration (it is found from the token's iss and aud) and carries a
// launch signed for it with a nonce of its own, which the call records.
// In the same rounds, on the same tokens: the bare RS256 verification of
// the token with jwx (jws.Verify with the platform's public key, nothing
// else), and that bare verification followed by store.UseNonce on the
// same store, the statement a warm VerifyPlatformToken runs (under
// another issuer, so that the gRPC call's record is not a replay). Each
// iteration is one round of each side, in an order that reverses from
// round to round, with 4 × GOMAXPROCS callers. It reports, for each side
// over all its rounds, the operations per second and the process's CPU
// time (user and system, all threads) per operation, and the gRPC side's
// ratio to each baseline in both: calls per second (x-verify…) and calls
// per CPU second (x-verify…-cpu, the baseline's CPU per operation over
// the gRPC call's). Launches are signed before each round, outside the
// timed region and the CPU counted.
//
// cold: one VerifyPlatformToken over the same gRPC chain on a KeyService
// whose platform key cache is empty and whose HTTP client has no
// connection: the registration is warm (a call with a token without kid
// resolved it, and failed before any fetch), the key set is fetched from
// the Launcher over a new TLS connection while the call waits. It
// reports, per cold call, the fetch (the cache's measure of its request:
// connection, TLS handshake, the answer read and parsed) and the rest of
// the call (everything a warm call does, and the hand-off to and from the
// fetch), and, apart, the latency of the warm call that follows it.
//
// Per core: run with -cpu 1, so that every goroutine of the process
// (callers, gRPC client and server, jwx, the SQLite engine, which is Go,
// the Launcher's TLS server) shares one P; the CPU ratios hold whatever
// GOMAXPROCS is. PostgreSQL's own work runs in its server processes, and
// is counted in neither. Signing the launches (about a millisecond each)
// takes longer than verifying them.
//
//	go test -run '^$' -bench '^BenchmarkVerifyPlatformToken$' -cpu 1 -count 5 -benchtime 2s ./server/
func BenchmarkVerifyPlatformToken(b *testing.B) {
	l := platformtest.NewLauncher(b, platformtest.LauncherOptions{
		ClientID: "bench-tool",
		Issuer:   "https://lms.example/bench",
	})
	for _, backend := range backends {
		b.Run("warm/"+backend.name, func(b *testing.B) { benchVerifyWarm(b, l, backend.url(b)) })
	}
	b.Run("cold", func(b *testing.B) { benchVerifyCold(b, l, backends[0].url(b)) })
}

func benchVerifyWarm(b *testing.B, l *platformtest.Launcher, databaseURL string) {
	ctx := context.Background()
	store, jwks := openVerifyStore(b, databaseURL)
	defer store.Close()
	cache, hc := launcherKeySetCache(b, l, nil)
	defer hc.CloseIdleConnections()
	keys, err := server.NewKeyService(verifyServiceConfig(store, jwks, cache))
	if err != nil {
		b.Fatal(err)
	}
	regID := createLauncherRegistration(b, keys, l)
	client, authCtx, stop := serveVerify(b, keys)
	defer stop()

	// One call fetches the key set and caches the registration.
	fetched := l.JWKSFetches()
	tokens, nonces := signLaunches(b, l, 1)
	resp, err := client.VerifyPlatformToken(authCtx, &ltikeysv1.VerifyPlatformTokenRequest{Token: tokens[0], Nonce: nonces[0]})
	switch {
	case err != nil:
		b.Fatalf("VerifyPlatformToken: %v", err)
	case resp.GetRegistration().GetId() != regID || resp.GetKid() != l.KeyID():
		b.Fatalf("VerifyPlatformToken verified for registration %q with kid %q, want %q and %q",
			resp.GetRegistration().GetId(), resp.GetKid(), regID, l.KeyID())
	case l.JWKSFetches() != fetched+1:
		b.Fatalf("the first call fetched the key set %d times, want once", l.JWKSFetches()-fetched)
	}
	fetched = l.JWKSFetches()

	pub := l.PublicKey()
	bareVerify := func(token string) error {
		_, err := jws.Verify([]byte(token), jws.WithKey(jwa.RS256, pub))
		return err
	}
	baselineIssuer := l.Issuer + "/baseline"
	workers := 4 * runtime.GOMAXPROCS(0)
	var bare, bareNonce, rpc throughput
	round := 0
	for b.Loop() {
		b.StopTimer()
		tokens, nonces := signLaunches(b, l, verifyRound)
		// The expiry UseNonce gets from VerifyPlatformToken: exp plus the
		// default leeway.
		expires := time.Now().Add(5*time.Minute + server.DefaultVerifyLeeway)
		b.StartTimer()
		sides := []func() error{
			func() error {
				return bare.add(workers, bareVerifyPasses*len(tokens), func(i int) error {
					return bareVerify(tokens[i%len(tokens)])
				})
			},
			func() error {
				return bareNonce.add(workers, len(tokens), func(i int) error {
					if err := bareVerify(tokens[i]); err != nil {
						return err
					}
					return store.UseNonce(ctx, baselineIssuer, nonces[i], expires)
				})
			},
			func() error {
				return rpc.add(workers, len(tokens), func(i int) error {
					_, err := client.VerifyPlatformToken(authCtx, &ltikeysv1.VerifyPlatformTokenRequest{Token: tokens[i], Nonce: nonces[i]})
					return err
				})
			},
		}
		if round%2 == 1 {
			sides[0], sides[2] = sides[2], sides[0]
		}
		round++
		for _, side := range sides {
			if err := side(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if n := l.JWKSFetches() - fetched; n != 0 {
		b.Fatalf("warm calls fetched the key set %d times", n)
	}
	b.ReportMetric(0, "ns/op") // the time of a round: not a figure to read
	for _, side := range []struct {
		name string
		t    throughput
	}{{"verify", bare}, {"verify+nonce", bareNonce}, {"grpc", rpc}} {
		b.ReportMetric(side.t.rate(), side.name+"/s")
		b.ReportMetric(side.t.cpuPerOp(), side.name+"-cpu-µs/op")
	}
	// The gRPC side against each baseline: in calls per second, and in
	// calls per CPU second (the baseline's CPU per operation over its).
	b.ReportMetric(rpc.rate()/bare.rate(), "x-verify")
	b.ReportMetric(bare.cpuPerOp()/rpc.cpuPerOp(), "x-verify-cpu")
	b.ReportMetric(rpc.rate()/bareNonce.rate(), "x-verify+nonce")
	b.ReportMetric(bareNonce.cpuPerOp()/rpc.cpuPerOp(), "x-verify+nonce-cpu")
}

func benchVerifyCold(b *testing.B, l *platformtest.Launcher, databaseURL string) {
	store, jwks := openVerifyStore(b, databaseURL)
	defer store.Close()
	setup, err := server.NewKeyService(verifyServiceConfig(store, jwks, nil))
	if err != nil {
		b.Fatal(err)
	}
	regID := createLauncherRegistration(b, setup, l)
	swap := &swappableVerify{}
	client, authCtx, stop := serveVerify(b, swap)
	defer stop()

	// A launch without kid resolves the registration and fails before the
	// key set is looked at; it records no nonce, so it serves every
	// iteration.
	noKID, err := l.SignWith(l.LaunchClaims("no-kid"), platformtest.SignOptions{NoKeyID: true})
	if err != nil {
		b.Fatal(err)
	}
	fetches := &fetchDurations{}
	var warm time.Duration
	for b.Loop() {
		b.StopTimer()
		cache, hc := launcherKeySetCache(b, l, fetches)
		keys, err := server.NewKeyService(verifyServiceConfig(store, jwks, cache))
		if err != nil {
			b.Fatal(err)
		}
		swap.keys.Store(keys)
		fetched := l.JWKSFetches()
		_, err = client.VerifyPlatformToken(authCtx, &ltikeysv1.VerifyPlatformTokenRequest{Token: noKID, Nonce: "no-kid"})
		if reason := errorReason(err); status.Code(err) != codes.InvalidArgument || reason != platform.ReasonKIDMissing {
			b.Fatalf("VerifyPlatformToken of a launch without kid: %v (reason %q), want INVALID_ARGUMENT with reason %s", err, reason, platform.ReasonKIDMissing)
		}
		tokens, nonces := signLaunches(b, l, 2)
		b.StartTimer()
		resp, err := client.VerifyPlatformToken(authCtx, &ltikeysv1.VerifyPlatformTokenRequest{Token: tokens[0], Nonce: nonces[0]})
		b.StopTimer()
		switch {
		case err != nil:
			b.Fatalf("VerifyPlatformToken: %v", err)
		case resp.GetRegistration().GetId() != regID:
			b.Fatalf("VerifyPlatformToken verified for registration %q, want %q", resp.GetRegistration().GetId(), regID)
		case l.JWKSFetches() != fetched+1:
			b.Fatalf("a cold call fetched the key set %d times, want once", l.JWKSFetches()-fetched)
		}
		// The next call, warm, for comparison.
		start := time.Now()
		_, err = client.VerifyPlatformToken(authCtx, &ltikeysv1.VerifyPlatformTokenRequest{Token: tokens[1], Nonce: nonces[1]})
		warm += time.Since(start)
		if err != nil {
			b.Fatalf("VerifyPlatformToken after the cold call: %v", err)
		}
		hc.CloseIdleConnections()
		b.StartTimer()
	}
	n, total := fetches.get()
	if n != b.N {
		b.Fatalf("%d key set fetches for %d cold calls", n, b.N)
	}
	fetch := float64(total.Microseconds()) / float64(n)
	b.ReportMetric(fetch, "fetch-µs/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)-fetch, "rest-µs/op")
	b.ReportMetric(float64(warm.Microseconds())/float64(b.N), "warm-µs/op")
}

// openVerifyStore opens the store at databaseURL and a loaded JWKS cache
// over it.
func openVerifyStore(b *testing.B, databaseURL string) (storage.Store, *server.JWKSCache) {
	b.Helper()
	store, err := storage.Open(context.Background(), databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(context.Background()); err != nil {
		store.Close()
		b.Fatal(err)
	}
	return store, jwks
}

// verifyServiceConfig is the configuration of a KeyService that verifies
// platforms' tokens with keys.
func verifyServiceConfig(store storage.Store, jwks *server.JWKSCache, keys *platform.KeySetCache) server.KeyServiceConfig {
	return server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: jwks, PlatformKeys: keys}
}

// launcherKeySetCache returns an empty platform key cache whose HTTP
// client, with serve's defaults, trusts l's CA and reaches loopback, and
// that client, so that the caller can close its connections. obs, if not
// nil, receives the cache's events.
func launcherKeySetCache(b *testing.B, l *platformtest.Launcher, obs platform.KeySetObserver) (*platform.KeySetCache, *http.Client) {
	b.Helper()
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{
		Version:      "bench",
		AllowPrivate: true,
		RootCAs:      l.CA.Pool,
		// A proxy in the environment would take the requests elsewhere.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := platform.NewKeySetCache(platform.KeySetOptions{HTTPClient: hc, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	return cache, hc
}

// createLauncherRegistration registers l's issuer and client_id, with its
// key set as jwks_uri, and returns the registration's id.
func createLauncherRegistration(b *testing.B, keys *server.KeyService, l *platformtest.Launcher) string {
	b.Helper()
	created, err := keys.CreateRegistration(context.Background(), &ltikeysv1.CreateRegistrationRequest{
		Issuer:        l.Issuer,
		ClientId:      l.ClientID,
		AuthEndpoint:  "https://lms.example/auth",
		JwksUri:       l.JWKSURL,
		TokenEndpoint: "https://lms.example/token",
	})
	if err != nil {
		b.Fatalf("CreateRegistration: %v", err)
	}
	return created.GetRegistration().GetId()
}

// serveVerify serves keys over gRPC on a loopback TCP listener, through
// the interceptor chain of serve (server.ServerOptions, with the access
// control and its tap handle, log lines formatted as JSON and dropped,
// metrics off) and its default limits, as ltikeys-load serves GetToolKey.
// It returns a client, a context whose calls carry a bearer token that
// holds platform.verify, and a function that stops both.
func serveVerify(b *testing.B, keys ltikeysv1.KeyServiceServer) (ltikeysv1.KeyServiceClient, context.Context, func()) {
	b.Helper()
	ctx := context.Background()
	token, err := server.GenerateToken()
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens: []server.Token{{Name: "bench", Scopes: []server.Scope{server.ScopePlatformVerify}, Hash: server.HashToken(token)}},
		Log:    log,
	})
	if err != nil {
		b.Fatal(err)
	}
	health := server.NewHealth(log)
	health.MarkStarted(ctx, nil)
	opts := server.ServerOptions(log, nil, health, 30*time.Second,
		[]grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.UnaryInterceptor())})
	srv := grpc.NewServer(append(opts, server.DefaultLimits().ServerOptions(auth.TapHandle())...)...)
	ltikeysv1.RegisterKeyServiceServer(server.EarlyRefusals(srv), keys)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		b.Fatal(err)
	}
	stop := func() {
		conn.Close()
		srv.Stop()
	}
	return ltikeysv1.NewKeyServiceClient(conn), metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), stop
}

// swappableVerify serves VerifyPlatformToken with the KeyService last
// stored in keys, so that one gRPC server and connection serve a new
// KeyService in each cold iteration.
type swappableVerify struct {
	ltikeysv1.UnimplementedKeyServiceServer
	keys atomic.Pointer[server.KeyService]
}

func (s *swappableVerify) VerifyPlatformToken(ctx context.Context, req *ltikeysv1.VerifyPlatformTokenRequest) (*ltikeysv1.VerifyPlatformTokenResponse, error) {
	return s.keys.Load().VerifyPlatformToken(ctx, req)
}

// signLaunches signs n valid launches of l, each for a nonce of its own,
// from GOMAXPROCS goroutines, and returns them with their nonces.
func signLaunches(b *testing.B, l *platformtest.Launcher, n int) (tokens, nonces []string) {
	b.Helper()
	tokens, nonces = make([]string, n), make([]string, n)
	for i := range nonces {
		nonces[i] = uuid.NewString()
	}
	err := inParallel(runtime.GOMAXPROCS(0), n, func(i int) error {
		var err error
		tokens[i], err = l.Sign(l.LaunchClaims(nonces[i]))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return tokens, nonces
}

// inParallel calls op(0) … op(n-1) from workers goroutines and returns
// the first error.
func inParallel(workers, n int, op func(i int) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := op(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return nil
}

// throughput accumulates the operations done, the time they took and the
// process's CPU time meanwhile over the rounds of one side of a
// comparison.
type throughput struct {
	ops          int
	elapsed, cpu time.Duration
}

// add runs op(0) … op(n-1) from workers goroutines and adds them, the
// time they took and the CPU time the process spent meanwhile to t.
func (t *throughput) add(workers, n int, op func(i int) error) error {
	start, startCPU := time.Now(), processCPU()
	if err := inParallel(workers, n, op); err != nil {
		return err
	}
	t.elapsed += time.Since(start)
	t.cpu += processCPU() - startCPU
	t.ops += n
	return nil
}

// rate is the operations per second.
func (t throughput) rate() float64 { return float64(t.ops) / t.elapsed.Seconds() }

// cpuPerOp is the process's CPU time per operation, in microseconds.
func (t throughput) cpuPerOp() float64 { return float64(t.cpu.Microseconds()) / float64(t.ops) }

// processCPU returns the user and system CPU time of the process so far,
// all threads.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fetchDurations is a KeySetObserver that adds up the durations of the
// successful fetches it is told of.
type fetchDurations struct {
	mu    sync.Mutex
	n     int
	total time.Duration
}

func (f *fetchDurations) KeySetFetch(outcome platform.Outcome, _ platform.FetchReason, d time.Duration) {
	if outcome != platform.OutcomeOK {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.total += d
}

func (f *fetchDurations) KeySetServed(time.Duration, bool) {}

// get returns how many fetches succeeded and their total duration.
func (f *fetchDurations) get() (int, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.total
}

// errorReason returns the reason of the ErrorInfo of err's status, "" if
// it has none.
func errorReason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
