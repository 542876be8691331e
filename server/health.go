package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health is the readiness of a serving process, per gRPC service, published
// in two places that always agree: the grpc.health.v1 service on the gRPC
// listener, and /readyz on the HTTP listener, which reports one service's
// (see ServiceReady; serve's follows JwksService).
//
// Until the process is marked started (storage reachable, every stored key
// opened, the JWKS loaded), and from Shutdown on, every service and the
// overall "" entry are NOT_SERVING. In between, each service is SERVING
// while its check passes, and "" while every service is SERVING. Before it
// is started, the gate interceptors answer every ltikeys.v1 call with
// UNAVAILABLE, so nothing touches storage that is not connected yet; health
// and reflection are answered throughout.
type Health struct {
	hs       *health.Server
	services []string
	log      *slog.Logger

	started atomic.Bool

	mu sync.Mutex
	// checks is set once, by MarkStarted.
	checks   map[string]func(context.Context) error
	shutdown bool
	// serving is the status each service, and "", was last set to.
	serving map[string]bool
}

// errNotStarted is readiness before start-up has finished.
var errNotStarted = errors.New("starting: storage not reachable yet")

// errShuttingDown is readiness once shutdown has begun.
var errShuttingDown = errors.New("shutting down")

// NewHealth returns a Health that is not yet started; services are the gRPC
// service names reported besides the overall "" entry.
func NewHealth(log *slog.Logger, services ...string) *Health {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Health{hs: health.NewServer(), services: slices.Clone(services), log: log, serving: map[string]bool{}}
	h.hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	for _, svc := range h.services {
		h.hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return h
}

// Register adds the grpc.health.v1.Health service to s.
func (h *Health) Register(s grpc.ServiceRegistrar) {
	healthpb.RegisterHealthServer(s, h.hs)
}

// Started reports whether MarkStarted has been called.
func (h *Health) Started() bool { return h.started.Load() }

// MarkStarted opens the gates and re-evaluates readiness, which from now on
// also requires each service's check in checks to pass (a service without
// one is ready from now on). Checks are called, under a lock, on every
// evaluation: by Run's ticker and by every /readyz request, which anyone
// may send at any rate. They must be cheap and must not query the database
// (JWKSReady and KeyService.Ready do neither). Everything the services
// need must be in place before it is called, and it is called once. A
// check for a service not given to NewHealth is a wiring mistake:
// MarkStarted panics.
func (h *Health) MarkStarted(ctx context.Context, checks map[string]func(context.Context) error) {
	h.mu.Lock()
	for svc := range checks {
		if !slices.Contains(h.services, svc) {
			h.mu.Unlock()
			panic(fmt.Sprintf("server: health check for %q, a service Health does not report", svc))
		}
	}
	h.checks = maps.Clone(checks)
	h.mu.Unlock()
	h.started.Store(true)
	_ = h.Ready(ctx)
}

// Ready re-evaluates readiness and returns nil while every service is
// ready (the overall status is SERVING), and why not otherwise. It updates
// the gRPC health statuses to match, so a probe of either listener moves
// both.
func (h *Health) Ready(ctx context.Context) error {
	return h.evaluate(ctx, "")
}

// ServiceReady re-evaluates readiness like Ready, and returns nil while
// service is ready, and why not otherwise.
func (h *Health) ServiceReady(ctx context.Context, service string) error {
	return h.evaluate(ctx, service)
}

// evaluate runs every check, updates the statuses and returns the
// readiness of service ("" for overall).
func (h *Health) evaluate(ctx context.Context, service string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var base error
	switch {
	case h.shutdown:
		return errShuttingDown // health.Server.Shutdown holds every status at NOT_SERVING
	case !h.started.Load():
		base = errNotStarted
	}
	overall, found := base, service == ""
	var result error
	for _, svc := range h.services {
		err := base
		if check := h.checks[svc]; err == nil && check != nil {
			err = check(ctx)
		}
		if err != nil && overall == nil {
			overall = fmt.Errorf("%s: %w", svc, err)
		}
		if svc == service {
			found, result = true, err
		}
		h.set(svc, err)
	}
	h.set("", overall)
	switch {
	case !found:
		return fmt.Errorf("health: %q is not a service this process reports", service)
	case service == "":
		return overall
	}
	return result
}

// set sets the status of svc to SERVING if err is nil, NOT_SERVING
// otherwise, logging each change of a service (of "" too when there are
// no services, else it only follows them). h.mu is held.
func (h *Health) set(svc string, err error) {
	serving := err == nil
	if h.serving[svc] == serving {
		return
	}
	h.serving[svc] = serving
	logIt := svc != "" || len(h.services) == 0
	if serving {
		h.hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
		if logIt {
			h.log.Info("health status SERVING", "service", svc)
		}
		return
	}
	h.hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	if logIt {
		h.log.Warn("health status NOT_SERVING", "service", svc, "err", err)
	}
}

// Run re-evaluates readiness every interval until ctx is done, so the gRPC
// statuses follow the checks even when nobody polls /readyz.
func (h *Health) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = h.Ready(ctx)
		}
	}
}

// Shutdown reports NOT_SERVING from now on, for every service and on both
// listeners, so load balancers stop sending new calls while in-flight ones
// drain.
func (h *Health) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.shutdown = true
	h.hs.Shutdown()
}

// DefaultJWKSMaxStale is how long JwksService stays SERVING on a document
// that no longer matches the database, unless configured otherwise: see
// JWKSReady.
const DefaultJWKSMaxStale = 24 * time.Hour

// JWKSReady returns the readiness check of a JwksService serving cache,
// for MarkStarted. It passes while the cache serves a document that
// matched the database (cache.LastRefresh) at most maxStale before now, so
// a database outage shorter than maxStale leaves the JWKS in service with
// the last good key set, which changes only through that database anyway.
// It fails before the first successful refresh, and once later refreshes
// have failed for longer than maxStale (at once with maxStale 0). now
// should be the cache's clock. It never queries the database.
func JWKSReady(cache *JWKSCache, maxStale time.Duration, now func() time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		err := cache.Ready(ctx)
		if err == nil || !errors.Is(err, ErrStale) {
			return err
		}
		if age := now().Sub(cache.LastRefresh()); age > maxStale {
			return fmt.Errorf("%w; it last matched the database %s ago, more than the bound of %s", err, age.Round(time.Second), maxStale)
		}
		return nil
	}
}

// Ready is the readiness check of the KeyService, for MarkStarted: nil
// while the calls that need the database can be served, that is while the
// JWKS cache's latest check of the database succeeded (always without a
// JWKS cache). It never queries the database. Once the database answers
// again after calls failed UNAVAILABLE, it ends the outage log (see
// storeError) with its count.
func (s *KeyService) Ready(ctx context.Context) error {
	if s.jwks == nil {
		return nil
	}
	if err := s.jwks.Ready(ctx); err != nil {
		return err
	}
	s.outage.answered(s.jwks.LastRefresh())
	return nil
}

// gated reports whether a method waits for start-up: every ltikeys method
// does; health and reflection never do.
func gated(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/ltikeys.")
}

func (h *Health) notStarted(fullMethod string) bool {
	return gated(fullMethod) && !h.started.Load()
}

// errUnavailableStarting answers the calls that arrive before start-up has
// finished.
var errUnavailableStarting = unavailableError("the service is starting: storage is not reachable yet; retry later")

// UnaryGate answers ltikeys calls with UNAVAILABLE until MarkStarted.
func (h *Health) UnaryGate() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if h.notStarted(info.FullMethod) {
			return nil, errUnavailableStarting
		}
		return handler(ctx, req)
	}
}

// StreamGate answers ltikeys streams with UNAVAILABLE until MarkStarted.
func (h *Health) StreamGate() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if h.notStarted(info.FullMethod) {
			return errUnavailableStarting
		}
		return handler(srv, ss)
	}
}
