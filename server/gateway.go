package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

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
// process (no network hop) unless jwks answers from memory (see below), of
// /healthz, and of /readyz, which answers 200 while ready returns nil and
// 503 otherwise (a nil ready is always ready). ready must not query the
// database, as anyone may call /readyz at any rate; its error is never
// shown: the listener is public.
//
// JWKS responses carry the headers JwksService sets (ETag, Cache-Control,
// Vary, Content-Encoding, Content-Length), and a matching If-None-Match is
// answered 304 with no body. Only If-None-Match and Accept-Encoding reach
// the service from the request: no other header, nor the client's address,
// is passed on. Between this handler and a JwksService these headers
// travel in process (see httpExchange), not as gRPC metadata. jwks is
// called without the request's cancellation: it answers from memory.
//
// When jwks has a ServeFromMemory method, as JwksService has, each JWKS
// request is first offered to it, and the gateway is called only for what
// it declined: a document in memory, 200 or 304, then costs no gateway
// round trip (which would cost more than the rest of the request), and the
// gateway route answers the rest (a key set not loaded yet, an unknown
// registration, a malformed id) with the status its error maps to.
//
// Nothing else is served. Routing is by exact path: a path that is not
// byte-for-byte /.well-known/jwks.json, /healthz, /readyz or
// /registrations/<id>/jwks.json with id made of hex digits and dashes only
// (an escaped character, a dot segment, a doubled slash, a trailing slash)
// is 404 without a redirect, and any other method on those paths is 405.
// The id's hex digits may be in either case: UUIDs are case-insensitive,
// and JwksService looks the id up in lower case, the form ids are made in.
// The handler has no route to KeyService at all: it is given only the
// JwksService.
func NewHTTPHandler(ctx context.Context, jwks ltikeysv1.JwksServiceServer, ready func(context.Context) error) (http.Handler, error) {
	// The default marshaler keeps runtime.HTTPBodyMarshaler, which writes an
	// HttpBody's bytes as they are with its content type.
	gw := runtime.NewServeMux(
		runtime.WithDisableHTTPMethodOverride(),
		// gatewayRequest hands the gateway no request header; should one
		// get through, it is not passed on either.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(outgoingJWKSHeader),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithForwardResponseOption(forwardJWKSHeaders),
	)
	if err := ltikeysv1.RegisterJwksServiceHandlerServer(ctx, gw, jwks); err != nil {
		return nil, err
	}
	health := http.NewServeMux()
	health.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	health.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, r *http.Request) {
		if ready != nil && ready(r.Context()) != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready\n")
			return
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	fromMemory, _ := jwks.(memoryServer)
	return exactPaths(fromMemory, gw, health), nil
}

// memoryServer is a JwksServiceServer that answers HTTP requests for the
// documents it holds itself, as JwksService does (see
// JwksService.ServeFromMemory).
type memoryServer interface {
	ServeFromMemory(w http.ResponseWriter, r *http.Request) bool
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

// httpExchange carries a JWKS request's headers from the HTTP handler to
// JwksService, called in process through the gateway, and the response
// headers it chose back: one of its prebuilt, shared header lists. A gRPC
// caller exchanges the same headers as metadata (see JwksService), which
// the gateway would build, join, copy and convert again on every request.
type httpExchange struct {
	// Set by the HTTP handler.
	ifNoneMatch, acceptEncoding []string
	// Set by JwksService.
	header      []headerField // shared by many responses: never modified
	notModified bool
}

type httpExchangeKey struct{}

// exchangeContext is the context the gateway is given for a JWKS request:
// the request context's values and an httpExchange, without the request's
// cancellation. Serving from memory never waits, so nothing would heed it,
// and a cancelable parent would cost the gateway's own cancelable context a
// registration with it on every request.
type exchangeContext struct {
	context.Context // the request's, for its values
	x               httpExchange
}

func (*exchangeContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*exchangeContext) Done() <-chan struct{}       { return nil }
func (*exchangeContext) Err() error                  { return nil }

func (c *exchangeContext) Value(key any) any {
	if key == (httpExchangeKey{}) {
		return &c.x
	}
	return c.Context.Value(key)
}

// gatewayRequest returns what the gateway is given of a GET or HEAD of a
// JWKS path: a shallow copy of r, as a GET (the gateway routes only GET;
// the server drops the body of a HEAD), whose context carries an
// httpExchange with the two request headers JwksService reads, and which
// keeps no header, no Host and no remote address. Whatever its header
// matcher says, the gateway would pass Authorization, X-Forwarded-For,
// X-Forwarded-Host and the client's address on as metadata; a public,
// anonymous key set has no use for any of them.
func gatewayRequest(r *http.Request) *http.Request {
	ctx := &exchangeContext{Context: r.Context(), x: httpExchange{
		ifNoneMatch:    r.Header["If-None-Match"],
		acceptEncoding: r.Header["Accept-Encoding"],
	}}
	g := r.WithContext(ctx)
	g.Method = http.MethodGet
	g.Header, g.Host, g.RemoteAddr = nil, "", ""
	return g
}

// httpExchangeFrom returns the httpExchange of a request served through the
// HTTP handler, or nil for a gRPC call.
func httpExchangeFrom(ctx context.Context) *httpExchange {
	x, _ := ctx.Value(httpExchangeKey{}).(*httpExchange)
	return x
}

// forwardJWKSHeaders writes the headers and the not-modified status
// JwksService chose (the empty body that follows a 304 is then dropped by
// net/http). It runs for successful calls only: an error response carries
// none of the caching headers. A JwksServiceServer that answers with
// metadata instead has its headers written by the gateway (see
// outgoingJWKSHeader) and its http-status 304 honoured here.
func forwardJWKSHeaders(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	notModified := false
	if x := httpExchangeFrom(ctx); x != nil && x.header != nil {
		setHeaderFields(w.Header(), x.header)
		notModified = x.notModified
	} else if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		notModified = slices.Contains(md.HeaderMD.Get(mdStatus), "304")
	}
	if notModified {
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
	}
	return nil
}

// setHeaderFields puts fields into h, sharing their value slices, which
// are full to capacity so that an Add to h copies them.
func setHeaderFields(h http.Header, fields []headerField) {
	for _, f := range fields {
		h[f.name] = f.values
	}
}

// exactPaths routes by exact path, with nothing escaped: GET and HEAD of
// JWKSPath and of a registration's JWKS path to fromMemory (when not nil),
// then, unless it answered, to gw; HealthzPath and ReadyzPath to health;
// 405 for other methods on the JWKS paths, and 404 to every other request,
// so no handler ever cleans, unescapes or redirects a path. Each path is
// checked once.
func exactPaths(fromMemory memoryServer, gw, health http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case r.URL.RawPath != "":
			http.NotFound(w, r)
		case p == JWKSPath || isRegistrationJWKSPath(p):
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				if fromMemory != nil && fromMemory.ServeFromMemory(w, r) {
					return
				}
				gw.ServeHTTP(w, gatewayRequest(r))
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
	_, ok := registrationOfJWKSPath(p)
	return ok
}

// registrationOfJWKSPath returns the id of a path isRegistrationJWKSPath
// accepts.
func registrationOfJWKSPath(p string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/registrations/")
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(rest, "/jwks.json")
	if !ok || len(id) == 0 || len(id) > 36 {
		return "", false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return "", false
		}
	}
	return id, true
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
