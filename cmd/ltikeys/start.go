package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// serve starts its listeners before the database is reachable, so that
// health checks are answered (NOT_SERVING) while it waits, and connects the
// services once it is. The services registered on the gRPC server and the
// HTTP gateway are therefore placeholders at first: each embeds the real
// service, set exactly once by start-up before Health.MarkStarted opens the
// gates. Every call before that is answered by a gate (UNAVAILABLE over
// gRPC, 503 over HTTP) and never reaches the unset service; the gate's
// atomic load orders every later read after the write.

// deferredKeyService is the KeyService registered before start-up ends.
type deferredKeyService struct{ ltikeysv1.KeyServiceServer }

// deferredJwksService is the JwksService registered before start-up ends.
type deferredJwksService struct{ ltikeysv1.JwksServiceServer }

// ServeFromMemory lets the HTTP handler answer JWKS requests with the
// service's ServeFromMemory, before the gateway (see server.NewHTTPHandler).
// Before start-up has set the service it answers none.
func (d *deferredJwksService) ServeFromMemory(w http.ResponseWriter, r *http.Request) bool {
	s, ok := d.JwksServiceServer.(interface {
		ServeFromMemory(http.ResponseWriter, *http.Request) bool
	})
	return ok && s.ServeFromMemory(w, r)
}

// startGate answers requests for a JWK Set with 503 until health is
// started, so none reaches the unset JwksService; everything else passes
// through (/readyz answers 503 itself, unknown paths 404).
func startGate(health *server.Health, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if server.IsJWKSPath(r.URL.Path) && !health.Started() {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Back-off between attempts to reach the database at start.
const (
	startRetryMin = 250 * time.Millisecond
	startRetryMax = 5 * time.Second
)

// openStoreWhenReachable opens the database, retrying with back-off while
// it is unreachable, until ctx is done (then it returns nil, nil). A
// configuration no retry can fix (storage.IsPermanent: a URL that does not
// parse, an unknown database, failed authentication or TLS verification, a
// newer schema) is returned at once, and so is any error opening the
// embedded SQLite database, which is local.
func (o *storeOptions) openStoreWhenReachable(ctx context.Context, log *slog.Logger, metrics *server.Metrics) (storage.Store, error) {
	var store storage.Store
	err := retry(ctx, log, metrics, "open", "database not reachable", !o.embedded(), func(ctx context.Context) error {
		s, err := o.openStore(ctx, log)
		store = s
		return err
	})
	return store, err
}

// retry runs f until it succeeds or ctx is done, waiting with back-off
// between attempts and logging each failure as what failed. With again
// false it makes one attempt only; a permanent storage error
// (storage.IsPermanent) also ends it. A ctx ending is not an error.
func retry(ctx context.Context, log *slog.Logger, metrics *server.Metrics, op, what string, again bool, f func(context.Context) error) error {
	wait := startRetryMin
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		metrics.StorageError(op)
		if !again || storage.IsPermanent(err) {
			return err
		}
		log.Warn(what+"; retrying", "err", err, "attempt", attempt, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, startRetryMax)
	}
}

// newMetrics returns the process's metrics, or nil when --metrics-addr is
// empty: every *server.Metrics method is then a no-op.
func (o *serveOptions) newMetrics() *server.Metrics {
	if o.metricsAddr == "" {
		return nil
	}
	return server.NewMetrics()
}
