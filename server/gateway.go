package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"

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

// RegistrationJWKSPath is the pattern of a registration's own key set; the
// id is the registration's UUID.
const RegistrationJWKSPath = "/registrations/{registration_id}/jwks.json"

// NewHTTPHandler returns the public HTTP handler: GET (and HEAD) of the JWKS
// and of each registration's JWKS, through the grpc-gateway calling jwks in
// process (no network hop), of /healthz, and of /readyz, which answers 200
// while ready returns nil and 503 otherwise (a nil ready is always ready),
// saying "degraded" while ready's error wraps ErrStale. Its error is never
// shown: the listener is public.
//
// JWKS responses carry the headers JwksService sets (ETag, Cache-Control,
// Vary, Content-Encoding, Content-Length), and a matching If-None-Match is
// answered 304 with no body. Only If-None-Match and Accept-Encoding reach
// the service from the request; no other header is passed on.
//
// Nothing else is served. Routing is by exact path: a path that is not
// byte-for-byte /.well-known/jwks.json, /healthz, /readyz or
// /registrations/<id>/jwks.json with id made of hex digits and dashes only
// (an escaped character, a dot segment, a doubled slash, a trailing slash)
// is 404 without a redirect, and any other method on those paths is 405.
// The handler has no route to KeyService at all: it is given only the
// JwksService.
func NewHTTPHandler(ctx context.Context, jwks ltikeysv1.JwksServiceServer, ready func(context.Context) error) (http.Handler, error) {
	// The default marshaler keeps runtime.HTTPBodyMarshaler, which writes an
	// HttpBody's bytes as they are with its content type.
	gw := runtime.NewServeMux(
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithIncomingHeaderMatcher(incomingJWKSHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingJWKSHeader),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithForwardResponseOption(forwardJWKSStatus),
	)
	if err := ltikeysv1.RegisterJwksServiceHandlerServer(ctx, gw, jwks); err != nil {
		return nil, err
	}
	health := http.NewServeMux()
	health.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	health.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(r.Context()); errors.Is(err, ErrStale) {
				writeText(w, http.StatusServiceUnavailable, "degraded\n")
				return
			} else if err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	return exactPaths(gw, health), nil
}

// incomingJWKSHeader passes the two request headers JwksService reads, and
// nothing else, to it as metadata.
func incomingJWKSHeader(key string) (string, bool) {
	switch http.CanonicalHeaderKey(key) {
	case "If-None-Match":
		return mdIfNoneMatch, true
	case "Accept-Encoding":
		return mdAcceptEncoding, true
	}
	return "", false
}

// outgoingJWKSHeader maps JwksService's response metadata to headers.
func outgoingJWKSHeader(key string) (string, bool) {
	switch key {
	case mdETag:
		return "ETag", true
	case mdCacheControl:
		return "Cache-Control", true
	case mdVary:
		return "Vary", true
	case mdContentEncoding:
		return "Content-Encoding", true
	case mdContentLength:
		return "Content-Length", true
	}
	return "", false
}

// forwardJWKSStatus writes the not-modified status JwksService asks for;
// the empty body that follows is then dropped by net/http.
func forwardJWKSStatus(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if ok && slices.Contains(md.HeaderMD.Get(mdStatus), "304") {
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
	}
	return nil
}

// exactPaths routes by exact path, with nothing escaped: GET and HEAD of
// JWKSPath and of a registration's JWKS path to gw, HealthzPath and
// ReadyzPath to health, 405 for other methods on the JWKS paths, and 404 to
// every other request, so neither handler ever cleans, unescapes or
// redirects a path. Each path is checked once.
func exactPaths(gw, health http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case r.URL.RawPath != "":
			http.NotFound(w, r)
		case p == JWKSPath || isRegistrationJWKSPath(p):
			switch r.Method {
			case http.MethodGet:
				gw.ServeHTTP(w, r)
			case http.MethodHead:
				// The gateway routes only GET, so HEAD is served as GET
				// and the server drops the body.
				r = r.WithContext(r.Context()) // a shallow copy
				r.Method = http.MethodGet
				gw.ServeHTTP(w, r)
			default:
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			}
		case p == HealthzPath || p == ReadyzPath:
			health.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// isRegistrationJWKSPath reports whether p is /registrations/<id>/jwks.json
// with an id of 1 to 36 hex digits and dashes: the shape of a UUID, and
// nothing that could be a dot segment or need escaping.
func isRegistrationJWKSPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/registrations/")
	if !ok {
		return false
	}
	id, ok := strings.CutSuffix(rest, "/jwks.json")
	if !ok || len(id) == 0 || len(id) > 36 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
