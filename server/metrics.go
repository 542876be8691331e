package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/storage"
)

// MetricsPath is where the metrics listener serves the Prometheus exposition.
const MetricsPath = "/metrics"

// Metrics holds the Prometheus series of one process, in a registry of its
// own (nothing is registered globally). Every method is safe on a nil
// *Metrics and then does nothing, so code that reports events can hold a
// *Metrics that is nil when metrics are off.
//
// Series:
//
//	grpc_server_started_total, grpc_server_handled_total{grpc_code},
//	grpc_server_handling_seconds      gRPC calls by service and method
//	ltikeys_jwks_requests_total{code} HTTP JWK Set responses by status (200, 304…)
//	ltikeys_cache_lookups_total{cache,result}  result is "hit" or "miss"
//	ltikeys_keys{state}               stored keys by lifecycle state now: "pending",
//	                                  "current", "previous" or "retired" (see WatchKeys)
//	ltikeys_key_pool_keys{bits}       pre-generated keys ready in the KeyPool, by size
//	ltikeys_storage_errors_total{op}  storage calls that failed for a reason
//	                                  other than not found / already exists / in use,
//	                                  and stored keys a registration could not use
//	                                  (op "open_key": another registration's, or
//	                                  not opening)
//	ltikeys_grpc_panics_total         handler panics recovered as INTERNAL
//	ltikeys_platform_token_requests_total{outcome},
//	ltikeys_platform_token_request_seconds{outcome}
//	                                  outbound requests to platforms' token
//	                                  endpoints by outcome (platform.Outcomes),
//	                                  and their latency
//	ltikeys_platform_verifications_total{outcome}
//	                                  VerifyPlatformToken answers: "ok", a
//	                                  platform.Reasons reason, "NONCE_REPLAYED",
//	                                  "unavailable" or "refused"
//	ltikeys_platform_jwks_fetches_total{outcome,reason},
//	ltikeys_platform_jwks_fetch_seconds{outcome}
//	                                  fetches of platforms' key sets, by outcome
//	                                  (platform.KeySetOutcomes) and why they were
//	                                  made (platform.FetchReasons), and their latency
//	ltikeys_platform_jwks_age_seconds{stale}
//	                                  age of the platform key set each verification
//	                                  used; stale="true" past its expiry, served
//	                                  because fetches fail
//
// plus the Go runtime and process collectors.
type Metrics struct {
	reg           *prometheus.Registry
	grpc          *grpcprom.ServerMetrics
	jwksRequests  *prometheus.CounterVec
	cacheLookups  *prometheus.CounterVec
	storageErrors *prometheus.CounterVec
	panics        prometheus.Counter
	// platformTokens and platformTokenSeconds count and time the
	// outbound token requests, by platform.Outcome.
	platformTokens       *prometheus.CounterVec
	platformTokenSeconds *prometheus.HistogramVec
	// verifications, keySetFetches, keySetFetchSeconds and keySetAge are
	// VerifyPlatformToken's and its platform key cache's.
	verifications      *prometheus.CounterVec
	keySetFetches      *prometheus.CounterVec
	keySetFetchSeconds *prometheus.HistogramVec
	keySetAge          *prometheus.HistogramVec
}

// NewMetrics returns a Metrics with every series registered.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		)),
		jwksRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ltikeys_jwks_requests_total",
			Help: "Requests for the public JWKS over HTTP, by response status code.",
		}, []string{"code"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ltikeys_cache_lookups_total",
			Help: "In-memory cache lookups, by cache and result (hit or miss).",
		}, []string{"cache", "result"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ltikeys_storage_errors_total",
			Help: "Storage operations that failed, by operation; not found, already exists and key in use are outcomes, not errors, and are not counted.",
		}, []string{"op"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ltikeys_grpc_panics_total",
			Help: "gRPC handler panics recovered and answered with INTERNAL.",
		}),
		platformTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ltikeys_platform_token_requests_total",
			Help: "Outbound access token requests to platforms' token endpoints, by outcome (ok, oauth_error, unavailable, malformed, refused, assertion_error).",
		}, []string{"outcome"}),
		platformTokenSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ltikeys_platform_token_request_seconds",
			Help:    "Latency of outbound access token requests to platforms' token endpoints, from sending the request to reading the answer, by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
	}
	m.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ltikeys_platform_verifications_total",
		Help: "VerifyPlatformToken answers, by outcome: ok, the reason a check failed, NONCE_REPLAYED, unavailable (no platform keys, or no database) or refused (a jwks_uri ltikeys will not fetch).",
	}, []string{"outcome"})
	m.keySetFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ltikeys_platform_jwks_fetches_total",
		Help: "Fetches of platforms' JWK Sets (registrations' jwks_uri), by outcome (ok, unavailable, malformed, refused) and reason (cold, expired, refresh, unknown_kid).",
	}, []string{"outcome", "reason"})
	m.keySetFetchSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ltikeys_platform_jwks_fetch_seconds",
		Help:    "Latency of fetches of platforms' JWK Sets, by outcome.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"outcome"})
	m.keySetAge = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ltikeys_platform_jwks_age_seconds",
		Help:    "Age of the platform JWK Set each verification used, since the fetch that got it; stale is true past its expiry (served because fetches fail).",
		Buckets: []float64{60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600},
	}, []string{"stale"})
	for _, o := range platform.Outcomes {
		m.platformTokens.WithLabelValues(string(o))
	}
	for _, o := range append([]string{string(platform.OutcomeOK), ReasonNonceReplayed, string(platform.OutcomeUnavailable), string(platform.OutcomeRefused)}, platform.Reasons...) {
		m.verifications.WithLabelValues(o)
	}
	for _, o := range platform.KeySetOutcomes {
		for _, r := range platform.FetchReasons {
			m.keySetFetches.WithLabelValues(string(o), string(r))
		}
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.jwksRequests, m.cacheLookups, m.storageErrors, m.panics,
		m.platformTokens, m.platformTokenSeconds,
		m.verifications, m.keySetFetches, m.keySetFetchSeconds, m.keySetAge,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails (the key count while the database is down) is left
// out of the scrape instead of failing it.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg,
		EnableOpenMetrics: true,
	}))
	return mux
}

// UnaryInterceptor counts and times unary calls. It is a pass-through on a
// nil *Metrics.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	if m == nil {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return m.grpc.UnaryServerInterceptor()
}

// StreamInterceptor counts and times streaming calls. It is a pass-through
// on a nil *Metrics.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	if m == nil {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, ss)
		}
	}
	return m.grpc.StreamServerInterceptor()
}

// InitializeGRPC creates the gRPC series of every method registered on s
// at zero, so they are present before the first call. Call it after the
// services are registered.
func (m *Metrics) InitializeGRPC(s *grpc.Server) {
	if m == nil {
		return
	}
	m.grpc.InitializeMetrics(s)
}

// CacheLookup counts one lookup in the named cache ("jwks", "keys", …).
// This is the hook caches report through.
func (m *Metrics) CacheLookup(cache string, hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cacheLookups.WithLabelValues(cache, result).Inc()
}

// PlatformTokenRequest counts and times one outbound access token request
// (platform.Observer; an outcome of OutcomeAssertionError sent nothing and
// is counted, not timed).
func (m *Metrics) PlatformTokenRequest(outcome platform.Outcome, d time.Duration) {
	if m == nil {
		return
	}
	m.platformTokens.WithLabelValues(string(outcome)).Inc()
	if outcome != platform.OutcomeAssertionError {
		m.platformTokenSeconds.WithLabelValues(string(outcome)).Observe(d.Seconds())
	}
}

// PlatformVerification counts one answer of VerifyPlatformToken by
// outcome: "ok", a reason of platform.Reasons, ReasonNonceReplayed,
// "unavailable" or "refused".
func (m *Metrics) PlatformVerification(outcome string) {
	if m == nil {
		return
	}
	m.verifications.WithLabelValues(outcome).Inc()
}

// KeySetFetch counts and times one fetch of a platform's key set
// (platform.KeySetObserver).
func (m *Metrics) KeySetFetch(outcome platform.Outcome, reason platform.FetchReason, d time.Duration) {
	if m == nil {
		return
	}
	m.keySetFetches.WithLabelValues(string(outcome), string(reason)).Inc()
	m.keySetFetchSeconds.WithLabelValues(string(outcome)).Observe(d.Seconds())
}

// KeySetServed records the age of the platform key set a verification
// used (platform.KeySetObserver).
func (m *Metrics) KeySetServed(age time.Duration, stale bool) {
	if m == nil {
		return
	}
	m.keySetAge.WithLabelValues(strconv.FormatBool(stale)).Observe(age.Seconds())
}

// StorageError counts one failed storage operation.
func (m *Metrics) StorageError(op string) {
	if m == nil {
		return
	}
	m.storageErrors.WithLabelValues(op).Inc()
}

func (m *Metrics) panicked() {
	if m == nil {
		return
	}
	m.panics.Inc()
}

// InstrumentJWKS counts the responses next gives to requests for a JWK Set
// (JWKSPath and every registration's) by status code. Other paths pass
// through uncounted.
func (m *Metrics) InstrumentJWKS(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	// The two answers of nearly every request, looked up once.
	ok, notModified := m.jwksRequests.WithLabelValues("200"), m.jwksRequests.WithLabelValues("304")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsJWKSPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		switch sw.code {
		case http.StatusOK:
			ok.Inc()
		case http.StatusNotModified:
			notModified.Inc()
		default:
			m.jwksRequests.WithLabelValues(strconv.Itoa(sw.code)).Inc()
		}
	})
}

// IsJWKSPath reports whether path is one the HTTP handler serves a JWK Set
// at: JWKSPath or a registration's.
func IsJWKSPath(path string) bool {
	return path == JWKSPath || isRegistrationJWKSPath(path)
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// keyCountInterval is the least time between two counts of the stored
// keys: scrapes that come sooner are answered with the last count.
const keyCountInterval = 15 * time.Second

// WatchKeys adds ltikeys_keys{state}: the stored keys by lifecycle state
// (pending, current, previous, retired), computed with Key.State at the
// time of the count, so a key changes state at its scheduled instant even
// before the background worker records it.
//
// Cost: the published keys (pending, current, previous) are counted in
// jwks's memory, with no query; retired keys are the stored keys less
// those, which takes one read of one kid per stored key, with a 5 s
// timeout so a stuck database cannot hold a scrape. Counts are made at
// most once per keyCountInterval whatever the scrape rate; scrapes in
// between get the last count. The published keys are as of jwks's last
// refresh, so under concurrent writes the two may disagree by the keys
// written in between until the next count. A failed count (also before
// jwks is loaded) is logged and left out of that scrape; pass an
// instrumented store (InstrumentStore) to have a failed read counted as a
// storage error too. Call it once store is connected.
func (m *Metrics) WatchKeys(store storage.Store, jwks *JWKSCache, log *slog.Logger) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&keyCollector{store: store, jwks: jwks, log: log, now: time.Now})
}

var keysDesc = prometheus.NewDesc("ltikeys_keys",
	"Stored keys by lifecycle state: pending and current keys, and previous ones, are published in the JWKS; retired ones are not. Counted at most every 15s.",
	[]string{"state"}, nil)

// keyStateLabels are the state label values of ltikeys_keys.
var keyStateLabels = []struct {
	state storage.KeyState
	label string
}{
	{storage.KeyPending, "pending"},
	{storage.KeyCurrent, "current"},
	{storage.KeyPrevious, "previous"},
	{storage.KeyRetired, "retired"},
}

type keyCollector struct {
	store storage.Store
	jwks  *JWKSCache
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	// counted is when counts was made; zero before the first count.
	counted time.Time
	counts  map[storage.KeyState]int
}

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keysDesc }

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.counted.IsZero() || now.Sub(c.counted) >= keyCountInterval || now.Before(c.counted) {
		counts, err := c.count(now)
		if err != nil {
			c.log.Warn("count keys for metrics", "err", err)
			return
		}
		c.counts, c.counted = counts, now
	}
	for _, s := range keyStateLabels {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(c.counts[s.state]), s.label)
	}
}

// count reads the keys' states at now.
func (c *keyCollector) count(now time.Time) (map[storage.KeyState]int, error) {
	counts, ok := c.jwks.keyStates(now)
	if !ok {
		return nil, errors.New("the key set is not loaded yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	all, err := c.store.KeyIDs(ctx)
	if err != nil {
		return nil, err
	}
	live := 0
	for _, n := range counts {
		live += n
	}
	counts[storage.KeyRetired] = max(len(all)-live, 0)
	return counts, nil
}

// WatchKeyPool adds ltikeys_key_pool_keys{bits}: how many pre-generated
// keys of each size pool holds, read at scrape time (no I/O). A pool that
// stays at 0 under load means requests generate their keys themselves. It
// does nothing for a nil m or pool.
func (m *Metrics) WatchKeyPool(pool *KeyPool) {
	if m == nil || pool == nil {
		return
	}
	m.reg.MustRegister(&poolCollector{pool: pool})
}

var poolDesc = prometheus.NewDesc("ltikeys_key_pool_keys",
	"Pre-generated key pairs ready in the key pool, by modulus size in bits.",
	[]string{"bits"}, nil)

type poolCollector struct{ pool *KeyPool }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolDesc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for bits, n := range c.pool.Depth() {
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(n), strconv.Itoa(bits))
	}
}

// InstrumentStore returns store with every failed call of its methods but
// Close counted as ltikeys_storage_errors_total{op}. A method added to
// storage.Store needs a wrapper here; a test checks that each one has.
// With a nil m it returns store itself.
//
// A backend's optional change listener (a Listen(ctx, func()) method, as
// the PostgreSQL backend has) stays visible through the wrapper.
func InstrumentStore(store storage.Store, m *Metrics) storage.Store {
	if m == nil {
		return store
	}
	s := &instrumentedStore{Store: store, m: m}
	if l, ok := store.(listener); ok {
		return &instrumentedListener{instrumentedStore: s, listener: l}
	}
	return s
}

// listener is the optional change-notification method of a backend.
type listener interface {
	Listen(ctx context.Context, changed func())
}

type instrumentedListener struct {
	*instrumentedStore
	listener
}

type instrumentedStore struct {
	storage.Store
	m *Metrics
}

// count records err as a storage error unless it is an expected outcome.
func (s *instrumentedStore) count(op string, err error) {
	switch {
	case err == nil,
		errors.Is(err, storage.ErrNotFound),
		errors.Is(err, storage.ErrAlreadyExists),
		errors.Is(err, storage.ErrKeyInUse),
		errors.Is(err, storage.ErrNonceUsed),
		errors.Is(err, context.Canceled):
		return
	}
	s.m.StorageError(op)
}

func (s *instrumentedStore) CreateRegistration(ctx context.Context, reg storage.Registration, key storage.Key) (storage.Registration, storage.Key, error) {
	r, k, err := s.Store.CreateRegistration(ctx, reg, key)
	s.count("create_registration", err)
	return r, k, err
}

func (s *instrumentedStore) GetRegistration(ctx context.Context, id string) (storage.Registration, error) {
	r, err := s.Store.GetRegistration(ctx, id)
	s.count("get_registration", err)
	return r, err
}

func (s *instrumentedStore) GetRegistrationByIssuerClient(ctx context.Context, issuer, clientID string) (storage.Registration, error) {
	r, err := s.Store.GetRegistrationByIssuerClient(ctx, issuer, clientID)
	s.count("get_registration", err)
	return r, err
}

func (s *instrumentedStore) GetKey(ctx context.Context, kid string) (storage.Key, error) {
	k, err := s.Store.GetKey(ctx, kid)
	s.count("get_key", err)
	return k, err
}

func (s *instrumentedStore) RotateKey(ctx context.Context, registrationID string, newKey storage.Key) (storage.Registration, storage.Key, storage.Key, error) {
	r, cur, prev, err := s.Store.RotateKey(ctx, registrationID, newKey)
	s.count("rotate_key", err)
	return r, cur, prev, err
}

func (s *instrumentedStore) RetireKey(ctx context.Context, kid string) (storage.Key, error) {
	k, err := s.Store.RetireKey(ctx, kid)
	s.count("retire_key", err)
	return k, err
}

func (s *instrumentedStore) ActiveKeys(ctx context.Context) ([]storage.Key, error) {
	keys, err := s.Store.ActiveKeys(ctx)
	s.count("active_keys", err)
	return keys, err
}

func (s *instrumentedStore) KeysChangedSince(ctx context.Context, version int64) (int64, []storage.Key, error) {
	current, keys, err := s.Store.KeysChangedSince(ctx, version)
	s.count("keys_changed_since", err)
	return current, keys, err
}

func (s *instrumentedStore) KeyIDs(ctx context.Context) ([]string, error) {
	kids, err := s.Store.KeyIDs(ctx)
	s.count("key_ids", err)
	return kids, err
}

func (s *instrumentedStore) PrivateKeys(ctx context.Context, afterSeq int64, limit int) ([]storage.Key, error) {
	keys, err := s.Store.PrivateKeys(ctx, afterSeq, limit)
	s.count("private_keys", err)
	return keys, err
}

func (s *instrumentedStore) UpdatePrivateKey(ctx context.Context, kid string, update func([]byte) ([]byte, bool, error)) error {
	err := s.Store.UpdatePrivateKey(ctx, kid, update)
	s.count("update_private_key", err)
	return err
}

func (s *instrumentedStore) Rotate(ctx context.Context, registrationID string, newKey storage.Key, opts storage.RotateOptions) (storage.Rotation, error) {
	r, err := s.Store.Rotate(ctx, registrationID, newKey, opts)
	s.count("rotate", err)
	return r, err
}

func (s *instrumentedStore) ApplyTransitions(ctx context.Context) (int, error) {
	n, err := s.Store.ApplyTransitions(ctx)
	s.count("apply_transitions", err)
	return n, err
}

func (s *instrumentedStore) ListRegistrations(ctx context.Context, q storage.RegistrationQuery) ([]storage.Registration, error) {
	regs, err := s.Store.ListRegistrations(ctx, q)
	s.count("list_registrations", err)
	return regs, err
}

func (s *instrumentedStore) UpdateRegistration(ctx context.Context, id string, update func(storage.Registration) (storage.Registration, error)) (storage.Registration, error) {
	r, err := s.Store.UpdateRegistration(ctx, id, update)
	s.count("update_registration", err)
	return r, err
}

func (s *instrumentedStore) DeleteRegistration(ctx context.Context, id string) ([]storage.Key, error) {
	keys, err := s.Store.DeleteRegistration(ctx, id)
	s.count("delete_registration", err)
	return keys, err
}

func (s *instrumentedStore) ListKeys(ctx context.Context, q storage.KeyQuery) ([]storage.Key, error) {
	keys, err := s.Store.ListKeys(ctx, q)
	s.count("list_keys", err)
	return keys, err
}

func (s *instrumentedStore) UseNonce(ctx context.Context, issuer, nonce string, expiresAt time.Time) error {
	err := s.Store.UseNonce(ctx, issuer, nonce, expiresAt)
	s.count("use_nonce", err)
	return err
}

func (s *instrumentedStore) PruneNonces(ctx context.Context, before time.Time) (int, error) {
	n, err := s.Store.PruneNonces(ctx, before)
	s.count("prune_nonces", err)
	return n, err
}

func (s *instrumentedStore) Version(ctx context.Context) (int64, error) {
	v, err := s.Store.Version(ctx)
	s.count("version", err)
	return v, err
}
