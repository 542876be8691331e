package server

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// JWKSPath is where platforms fetch the tool's public keys.
const JWKSPath = "/.well-known/jwks.json"

// Health endpoints of the public HTTP listener.
const (
	// HealthzPath answers 200 while the process serves HTTP at all.
	HealthzPath = "/healthz"
	// ReadyzPath answers 200 while the readiness check passes, 503 otherwise.
	ReadyzPath = "/readyz"
)

// NewHTTPHandler returns the public HTTP handler: GET (and HEAD) of the JWKS,
// through the grpc-gateway calling jwks in process (no network hop), of
// /healthz, and of /readyz, which answers 200 while ready returns nil and
// 503 otherwise (a nil ready is always ready). Its error is never shown: the
// listener is public.
//
// Nothing else is served. Routing is by exact path: a path that is not
// byte-for-byte one of these three (an escaped character, a dot segment, a
// doubled slash, a trailing slash) is 404 without a redirect, and any other
// method on the three is 405. The handler has no route to KeyService at all:
// it is given only the JwksService.
func NewHTTPHandler(ctx context.Context, jwks ltikeysv1.JwksServiceServer, ready func(context.Context) error) (http.Handler, error) {
	// The default marshaler keeps runtime.HTTPBodyMarshaler, which writes an
	// HttpBody's bytes as they are with its content type.
	gw := runtime.NewServeMux(runtime.WithDisableHTTPMethodOverride())
	if err := ltikeysv1.RegisterJwksServiceHandlerServer(ctx, gw, jwks); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// A GET pattern also matches HEAD; the gateway routes only GET, so HEAD
	// is served as GET and the server drops the body.
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		gw.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(r.Context()); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	return exactPaths(mux, JWKSPath, HealthzPath, ReadyzPath), nil
}

// exactPaths passes to next only requests whose path is exactly one of
// paths, with nothing escaped, and answers 404 to every other request, so
// next never cleans, unescapes or redirects a path.
func exactPaths(next http.Handler, paths ...string) http.Handler {
	allowed := make(map[string]bool, len(paths))
	for _, p := range paths {
		allowed[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawPath != "" || !allowed[r.URL.Path] {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
