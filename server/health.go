package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health is the readiness of a serving process, published in two places
// that always agree: the grpc.health.v1 service on the gRPC listener and
// /readyz on the HTTP listener.
//
// A process is ready once it has been marked started (storage reachable,
// every stored key opened, the JWKS loaded) and while its check passes (the
// JWKS refreshes from storage), until Shutdown. Before it is started, the
// gate interceptors answer every ltikeys.v1 call with UNAVAILABLE, so nothing
// touches storage that is not connected yet; health and reflection are
// answered throughout.
type Health struct {
	hs       *health.Server
	services []string
	log      *slog.Logger

	// check is set once, before started.
	check    func(context.Context) error
	started  atomic.Bool
	shutdown atomic.Bool

	mu      sync.Mutex
	serving bool
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
	h := &Health{hs: health.NewServer(), services: services, log: log}
	h.setStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// Register adds the grpc.health.v1.Health service to s.
func (h *Health) Register(s grpc.ServiceRegistrar) {
	healthpb.RegisterHealthServer(s, h.hs)
}

// Started reports whether MarkStarted has been called.
func (h *Health) Started() bool { return h.started.Load() }

// MarkStarted opens the gates and re-evaluates readiness, which from now on
// also requires check to pass (nil: nothing more). Everything the services
// need must be in place before it is called, and it is called once.
func (h *Health) MarkStarted(ctx context.Context, check func(context.Context) error) {
	h.check = check
	h.started.Store(true)
	_ = h.Ready(ctx)
}

// Ready returns nil while the process is ready, and why not otherwise. It
// updates the gRPC health status to match, so a probe of either listener
// moves both.
func (h *Health) Ready(ctx context.Context) error {
	var err error
	switch {
	case h.shutdown.Load():
		err = errShuttingDown
	case !h.started.Load():
		err = errNotStarted
	case h.check != nil:
		err = h.check(ctx)
	}
	h.update(err)
	return err
}

func (h *Health) update(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown.Load() {
		return // health.Server.Shutdown holds every status at NOT_SERVING
	}
	serving := err == nil
	if serving == h.serving {
		return
	}
	h.serving = serving
	if serving {
		h.log.Info("ready: health status SERVING")
		h.setStatus(healthpb.HealthCheckResponse_SERVING)
	} else {
		h.log.Warn("not ready: health status NOT_SERVING", "err", err)
		h.setStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

func (h *Health) setStatus(s healthpb.HealthCheckResponse_ServingStatus) {
	h.hs.SetServingStatus("", s)
	for _, svc := range h.services {
		h.hs.SetServingStatus(svc, s)
	}
}

// Run re-evaluates readiness every interval until ctx is done, so the gRPC
// status follows the check even when nobody polls /readyz.
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

// Shutdown reports NOT_SERVING from now on, on both listeners, so load
// balancers stop sending new calls while in-flight ones drain.
func (h *Health) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.shutdown.Store(true)
	h.serving = false
	h.hs.Shutdown()
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
