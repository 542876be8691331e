// Command ltikeys-load measures ltikeys' hot paths against bare baselines in
// the same run, on loopback only: the JWKS through the public HTTP handler
// (JwksService answering from memory; and, for comparison, through the
// grpc-gateway alone) against a bare net/http handler writing the same
// bytes with the same headers, and a warm GetToolKey over gRPC (through
// serve's interceptor chain) against a bare grpc-go unary handler returning
// a message of the same size. It prints requests per second, the ratio to the
// baseline, and p50/p99 latencies. Client and server share the machine, and
// the client's own cost caps both sides of a ratio, so ratios are what to
// compare across machines, not absolute numbers.
//
// "ltikeys-load pinned" measures the real ltikeys binary over HTTP instead,
// pinned to one core and loaded by wrk from the other (see pinned.go), and
// "ltikeys-load serve-copy" is the bare server it compares it with.
// "ltikeys-load startup" times the real binary's start-up on PostgreSQL
// databases of many keys, and reads its memory once ready (see
// startup.go).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

func main() {
	if len(os.Args) > 1 {
		sub := map[string]func([]string) error{"pinned": runPinned, "serve-copy": runServeCopy, "startup": runStartup}[os.Args[1]]
		if sub != nil {
			if err := sub(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "ltikeys-load:", err)
				os.Exit(1)
			}
			return
		}
	}
	duration := flag.Duration("duration", time.Second, "how long each measurement runs")
	rounds := flag.Int("rounds", 6, "how many times each baseline/subject pair is measured, alternating")
	conns := flag.Int("c", 32, "concurrent connections (HTTP) or in-flight calls (gRPC)")
	flag.Func("run", "measure only the pairs whose section and subject (\"JWKS, 3 keys (1366 bytes): public handler, 200\") match this regular expression", func(expr string) (err error) {
		only, err = regexp.Compile(expr)
		return err
	})
	withMetrics := flag.Bool("metrics", false, "serve the JWKS and GetToolKey with Prometheus metrics on, as ltikeys serve --metrics-addr does (off by default, as in ltikeys serve)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (servers and clients) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ltikeys-load:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*duration, *rounds, *conns, *withMetrics); err != nil {
		fmt.Fprintln(os.Stderr, "ltikeys-load:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(duration time.Duration, rounds, conns int, withMetrics bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ltikeys-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mk, err := crypto.GenerateMasterKey("load-1")
	if err != nil {
		return err
	}
	keyring, err := crypto.NewKeyring(mk)
	if err != nil {
		return err
	}

	fmt.Printf("ltikeys-load: %d connections, %d rounds of %s per measurement, loopback\n", conns, rounds, duration)
	// Metrics on wrap the public handler and the gRPC server as serve's
	// --metrics-addr does.
	var metrics *server.Metrics
	if withMetrics {
		metrics = server.NewMetrics()
	}

	// 1. The JWKS, 3 keys (real registrations) and 1,000 keys (public
	// halves only: serving never opens a private key).
	var regID, issuer, clientID string
	for _, n := range []int{3, 1000} {
		store, jwks, keys, err := openService(ctx, "sqlite://"+filepath.Join(dir, fmt.Sprintf("jwks-%d.db", n))+"?_pragma=synchronous(OFF)", keyring)
		if err != nil {
			return err
		}
		defer store.Close()
		if n == 3 {
			for i := range 3 {
				resp, err := keys.CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
					Issuer: "https://platform.example/" + strconv.Itoa(i), ClientId: "client",
					AuthEndpoint: "https://platform.example/auth", JwksUri: "https://platform.example/jwks", TokenEndpoint: "https://platform.example/token",
				})
				if err != nil {
					return err
				}
				regID, issuer, clientID = resp.GetRegistration().GetId(), resp.GetRegistration().GetIssuer(), resp.GetRegistration().GetClientId()
			}
		} else if err := insertSyntheticKeys(ctx, store, n); err != nil {
			return err
		}
		if err := jwks.Refresh(ctx); err != nil {
			return err
		}
		doc := jwks.Document()
		svc := server.NewJwksService(jwks)
		handler, err := server.NewHTTPHandler(ctx, svc, jwks.Ready)
		if err != nil {
			return err
		}
		// The same service without its ServeFromMemory: the gateway answers
		// every request.
		gateway, err := server.NewHTTPHandler(ctx, struct{ ltikeysv1.JwksServiceServer }{svc}, jwks.Ready)
		if err != nil {
			return err
		}
		gwAddr, stopGW, err := serveHTTP(metrics.InstrumentJWKS(handler))
		if err != nil {
			return err
		}
		gatewayAddr, stopGateway, err := serveHTTP(metrics.InstrumentJWKS(gateway))
		if err != nil {
			return err
		}
		etag, okHeader, err := fetchIdentity(gwAddr)
		if err != nil {
			return err
		}
		// The baseline writes the same bytes with the same headers.
		bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			for k, v := range okHeader {
				h[k] = v
			}
			_, _ = w.Write(doc)
		})
		bareAddr, stopBare, err := serveHTTP(bare)
		if err != nil {
			return err
		}
		section := fmt.Sprintf("JWKS, %d keys (%d bytes)", n, len(doc))
		plain := httpRequest(server.JWKSPath, "")
		bareOK := measurement{"bare net/http handler, 200", func() result { return loadHTTP(bareAddr, plain, conns, duration) }}
		publicOK := measurement{"public handler, 200", func() result { return loadHTTP(gwAddr, plain, conns, duration) }}
		notModified := func(name string) measurement {
			req := httpRequest(server.JWKSPath, "If-None-Match: "+etag+"\r\n")
			return measurement{name, func() result { return loadHTTP(gwAddr, req, conns, duration) }}
		}
		comparePair(section, rounds, bareOK, publicOK)
		comparePair(section, rounds, bareOK, notModified("public handler, If-None-Match → 304"))
		comparePair(section, rounds, publicOK, notModified("304 (baseline: public handler 200)"))
		comparePair(section, rounds, bareOK,
			measurement{"the gateway alone, 200", func() result { return loadHTTP(gatewayAddr, plain, conns, duration) }})
		if n == 3 {
			comparePair(section, rounds, bareOK,
				measurement{"public handler, per-registration JWKS, 200", func() result {
					return loadHTTP(gwAddr, httpRequest("/registrations/"+regID+"/jwks.json", ""), conns, duration)
				}},
			)
		}
		stopBare()
		stopGW()
		stopGateway()
	}

	// 2. A warm GetToolKey over gRPC, through serve's interceptor chain,
	// against a bare handler returning as many bytes.
	return compareGetToolKey(ctx, dir, keyring, conns, rounds, duration, metrics, regID, issuer, clientID)
}

// insertSyntheticKeys stores n registrations whose public keys are random
// 2048-bit odd moduli: valid to publish, never used to sign.
func insertSyntheticKeys(ctx context.Context, store storage.Store, n int) error {
	for i := range n {
		id := uuid.NewString()
		kid := "synthetic-" + strconv.Itoa(i)
		pub := storagetest.SyntheticPublicJWK(kid)
		reg := storage.Registration{ID: id, Issuer: "https://synthetic.example/" + id, ClientID: "c",
			AuthEndpoint: "https://synthetic.example/a", JWKSURI: "https://synthetic.example/j", TokenEndpoint: "https://synthetic.example/t"}
		key := storage.Key{KID: kid, Alg: "RS256", RegistrationID: id, PublicJWK: pub, PrivateJWK: []byte{0}}
		if _, _, err := store.CreateRegistration(ctx, reg, key); err != nil {
			return err
		}
	}
	return nil
}

// openService opens the store at databaseURL with a loaded JWKS cache and a
// KeyService over both. The caller closes the store.
func openService(ctx context.Context, databaseURL string, keyring *crypto.Keyring) (storage.Store, *server.JWKSCache, *server.KeyService, error) {
	store, err := storage.Open(ctx, databaseURL)
	if err != nil {
		return nil, nil, nil, err
	}
	jwks := server.NewJWKSCache(store)
	if err := jwks.Refresh(ctx); err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: keyring, KeyBits: 2048, JWKS: jwks})
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return store, jwks, keys, nil
}

func compareGetToolKey(ctx context.Context, dir string, keyring *crypto.Keyring, conns, rounds int, duration time.Duration, metrics *server.Metrics, regID, issuer, clientID string) error {
	store, _, keys, err := openService(ctx, "sqlite://"+filepath.Join(dir, "jwks-3.db"), keyring)
	if err != nil {
		return err
	}
	defer store.Close()
	token, err := server.GenerateToken()
	if err != nil {
		return err
	}
	scope, _ := server.RequiredScope(ltikeysv1.KeyService_GetToolKey_FullMethodName)
	// Request log and audit lines are formatted as in production, then
	// dropped.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens: []server.Token{{Name: "load", Scopes: []server.Scope{scope}, Hash: server.HashToken(token)}},
		Log:    log,
	})
	if err != nil {
		return err
	}
	health := server.NewHealth(log)
	health.MarkStarted(ctx, nil)
	opts := server.ServerOptions(log, metrics, health, 30*time.Second,
		[]grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.UnaryInterceptor())})
	srv := grpc.NewServer(append(opts, server.DefaultLimits().ServerOptions(auth.TapHandle())...)...)
	ltikeysv1.RegisterKeyServiceServer(server.EarlyRefusals(srv), keys)
	addr, stop, err := serveGRPC(srv)
	if err != nil {
		return err
	}
	defer stop()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := ltikeysv1.NewKeyServiceClient(conn)
	authCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	byID := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: regID}}
	byIssuer := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: issuer, ClientId: clientID}}}
	warm, err := client.GetToolKey(authCtx, byID)
	if err != nil {
		return err
	}
	if _, err := client.GetToolKey(authCtx, byIssuer); err != nil {
		return err
	}

	// The baseline: one unary method returning a message of the same size.
	size := proto.Size(warm)
	payload := &wrapperspb.BytesValue{Value: make([]byte, size-4)}
	bare := grpc.NewServer()
	bare.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Bare",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Get", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in emptypb.Empty
			if err := dec(&in); err != nil {
				return nil, err
			}
			return payload, nil
		}}},
	}, struct{}{})
	bareAddr, stopBare, err := serveGRPC(bare)
	if err != nil {
		return err
	}
	defer stopBare()
	bareConn, err := grpc.NewClient(bareAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer bareConn.Close()

	section := fmt.Sprintf("GetToolKey, warm (response %d bytes; baseline returns %d)", size, proto.Size(payload))
	bareCall := func() error {
		return bareConn.Invoke(ctx, "/bench.Bare/Get", &emptypb.Empty{}, &wrapperspb.BytesValue{})
	}
	comparePair(section, rounds,
		measurement{"bare grpc-go unary handler", func() result { return loadCalls(bareCall, conns, duration) }},
		measurement{"GetToolKey by registration_id", func() result {
			return loadCalls(func() error { _, err := client.GetToolKey(authCtx, byID); return err }, conns, duration)
		}},
	)
	comparePair(section, rounds,
		measurement{"bare grpc-go unary handler", func() result { return loadCalls(bareCall, conns, duration) }},
		measurement{"GetToolKey by issuer_client", func() result {
			return loadCalls(func() error { _, err := client.GetToolKey(authCtx, byIssuer); return err }, conns, duration)
		}},
	)
	return nil
}

// only, when set, selects the pairs to measure by their section and
// subject's name ("JWKS, 3 keys (1366 bytes): public handler, 200").
var only *regexp.Regexp

// printedSection is the section whose heading was printed last.
var printedSection string

type measurement struct {
	name string
	run  func() result
}

type result struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

func merge(rs []result) result {
	var out result
	for _, r := range rs {
		out.requests += r.requests
		out.errors += r.errors
		out.elapsed += r.elapsed
		out.latencies = append(out.latencies, r.latencies...)
	}
	slices.Sort(out.latencies)
	return out
}

// comparePair measures base and subject in rounds of one measurement each,
// alternating which goes first (base, subject; subject, base; ...) so that
// a machine whose speed drifts during the run favours neither, and prints
// both, the ratio of their totals and the range of the per-round ratios.
func comparePair(section string, rounds int, base, subject measurement) {
	if only != nil && !only.MatchString(section+": "+subject.name) {
		return
	}
	if section != printedSection {
		fmt.Printf("\n%s\n", section)
		printedSection = section
	}
	var b, s []result
	ratios := make([]float64, 0, rounds)
	for i := range rounds {
		var br, sr result
		if i%2 == 0 {
			br, sr = base.run(), subject.run()
		} else {
			sr, br = subject.run(), base.run()
		}
		b, s = append(b, br), append(s, sr)
		ratios = append(ratios, sr.rps()/br.rps())
	}
	br, sr := merge(b), merge(s)
	line := func(name string, r result) {
		fmt.Printf("  %-44s %9.0f req/s  p50 %8s  p99 %8s", name, r.rps(), r.quantile(0.50).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond))
		if r.errors > 0 {
			fmt.Printf("  (%d errors)", r.errors)
		}
		fmt.Println()
	}
	line(base.name, br)
	line(subject.name, sr)
	slices.Sort(ratios)
	fmt.Printf("  %-44s %9.2fx  (rounds: %.2f–%.2f, median %.2f)\n", "ratio", sr.rps()/br.rps(), ratios[0], ratios[len(ratios)-1], ratios[len(ratios)/2])
}

func serveHTTP(h http.Handler) (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	return lis.Addr().String(), func() { srv.Close() }, nil
}

func serveGRPC(srv *grpc.Server) (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(lis)
	return lis.Addr().String(), srv.Stop, nil
}

func httpRequest(path, extraHeaders string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: load\r\nUser-Agent: ltikeys-load\r\n" + extraHeaders + "\r\n")
}

// fetchIdentity GETs the JWKS from addr without asking for an encoding,
// as the load does, and returns its ETag and headers (but Date).
func fetchIdentity(addr string) (string, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+server.JWKSPath, nil)
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		return "", nil, err
	}
	resp.Body.Close()
	resp.Header.Del("Date")
	if etag := resp.Header.Get("ETag"); etag != "" {
		return etag, resp.Header, nil
	}
	return "", nil, errors.New("the public handler sent no ETag")
}

// loadHTTP keeps conns keep-alive connections busy with request for
// duration, with a minimal HTTP/1.1 client so that the client's own cost
// stays small next to the server's.
func loadHTTP(addr string, request []byte, conns int, duration time.Duration) result {
	return loadWorkers(conns, duration, func() (func() error, func(), error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		r := bufio.NewReaderSize(c, 64<<10)
		return func() error {
			if _, err := c.Write(request); err != nil {
				return err
			}
			return readResponse(r)
		}, func() { c.Close() }, nil
	})
}

// readResponse reads one response, which must be 200 or 304 with a
// Content-Length (or none, for 304).
func readResponse(r *bufio.Reader) error {
	status, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(status, []byte("HTTP/1.1 304")) {
		return fmt.Errorf("status %q", strings.TrimSpace(string(status)))
	}
	length := 0
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return err
			}
		}
	}
	_, err = r.Discard(length)
	return err
}

func loadCalls(call func() error, conns int, duration time.Duration) result {
	return loadWorkers(conns, duration, func() (func() error, func(), error) {
		return call, func() {}, nil
	})
}

// loadWorkers runs conns workers, each calling its do in a loop for
// duration after a short warm-up, and gathers every latency.
func loadWorkers(conns int, duration time.Duration, newWorker func() (do func() error, closeFn func(), err error)) result {
	const warmup = 300 * time.Millisecond
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   result
		started = time.Now()
		measure = started.Add(warmup)
		end     = measure.Add(duration)
	)
	for range conns {
		wg.Go(func() {
			do, closeFn, err := newWorker()
			if err != nil {
				mu.Lock()
				total.errors++
				mu.Unlock()
				return
			}
			defer closeFn()
			lat := make([]time.Duration, 0, 1<<14)
			var errs int
			for {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				err := do()
				if err != nil {
					errs++
					if errs > 100 {
						break
					}
					continue
				}
				if t0.After(measure) {
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			total.latencies = append(total.latencies, lat...)
			total.requests += len(lat)
			total.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = duration
	slices.Sort(total.latencies)
	return total
}
