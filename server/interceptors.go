package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// RequestIDHeader is the metadata key of a call's request id, read from the
// request and returned in the response header.
const RequestIDHeader = "x-request-id"

// maxRequestIDLen bounds a request id accepted from a client.
const maxRequestIDLen = 128

// callState is what the request interceptor keeps of a call in its
// context. The call's interceptors and handler run on one goroutine, or
// one after the other for a stream.
type callState struct {
	requestID string
	// audited is set once the call's audit line has been written.
	audited bool
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	c, _ := ctx.Value(callStateKey{}).(*callState)
	return c
}

// RequestID returns the request id of the call ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if c := callStateFrom(ctx); c != nil {
		return c.requestID
	}
	return ""
}

// WithRequestID returns ctx carrying id as its request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, callStateKey{}, &callState{requestID: id})
}

// markAudited records that the call ctx belongs to has its audit line.
func markAudited(ctx context.Context) {
	if c := callStateFrom(ctx); c != nil {
		c.audited = true
	}
}

// audited reports whether the call ctx belongs to has its audit line.
func audited(ctx context.Context) bool {
	c := callStateFrom(ctx)
	return c != nil && c.audited
}

// requestIDFrom returns the client's x-request-id if it is a sensible one
// (1 to 128 letters, digits and . _ : - characters, so it is safe to log),
// or else a new random one.
func requestIDFrom(ctx context.Context) string {
	if ids := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(ids) > 0 && validRequestID(ids[0]) {
		return ids[0]
	}
	return uuid.NewString()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._:-", r):
		default:
			return false
		}
	}
	return true
}

// ServerOptions returns the options of ltikeys' gRPC server, with the
// interceptors chained outermost first: request id, panic recovery and
// request log; metrics (m may be nil); then authOpts, the access control
// and audit interceptors and the transport credentials; then the start-up
// gate of health and the request timeout, closest to the handler.
func ServerOptions(log *slog.Logger, m *Metrics, health *Health, requestTimeout time.Duration, authOpts []grpc.ServerOption) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryRequestInterceptor(log, m), m.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(StreamRequestInterceptor(log, m), m.StreamInterceptor()),
	}
	opts = append(opts, authOpts...)
	return append(opts,
		grpc.ChainUnaryInterceptor(health.UnaryGate(), UnaryTimeoutInterceptor(requestTimeout)),
		grpc.ChainStreamInterceptor(health.StreamGate()),
	)
}

// UnaryRequestInterceptor is the outermost interceptor of every unary call.
// It gives the call a request id (the client's x-request-id when it sends a
// sensible one, a new UUID otherwise), returns it in the response header
// and puts it in the context, where ContextLogHandler adds it to every log
// line of the call; it recovers a panic anywhere below it, logging the
// panic and its stack at error level and answering INTERNAL without detail;
// and it logs one line per call with the method, code, peer and duration
// (see logCall for its level).
func UnaryRequestInterceptor(log *slog.Logger, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		id := requestIDFrom(ctx)
		ctx = WithRequestID(ctx, id)
		defer func() {
			if p := recover(); p != nil {
				resp, err = nil, recovered(ctx, log, m, info.FullMethod, p)
			}
			logCall(ctx, log, info.FullMethod, start, err)
		}()
		_ = grpc.SetHeader(ctx, metadata.MD{RequestIDHeader: {id}})
		return handler(ctx, req)
	}
}

// StreamRequestInterceptor does for streams what UnaryRequestInterceptor
// does for unary calls.
func StreamRequestInterceptor(log *slog.Logger, m *Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		id := requestIDFrom(ss.Context())
		ctx := WithRequestID(ss.Context(), id)
		defer func() {
			if p := recover(); p != nil {
				err = recovered(ctx, log, m, info.FullMethod, p)
			}
			logCall(ctx, log, info.FullMethod, start, err)
		}()
		_ = ss.SetHeader(metadata.MD{RequestIDHeader: {id}})
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// contextStream is a ServerStream with a replaced context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

func recovered(ctx context.Context, log *slog.Logger, m *Metrics, method string, p any) error {
	m.panicked()
	log.ErrorContext(ctx, "panic in gRPC handler", "method", method, "panic", p, "stack", string(debug.Stack()))
	return errInternal
}

// logCall writes the request log line of a call: at error level for server
// faults; at debug level for a call whose audit line was written, which
// carries the same fields and the request id (one line per key lookup, not
// two), and for health checks and reflection that succeed (probes would
// drown everything else); at info otherwise.
func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelInfo
	switch {
	case code == codes.Internal || code == codes.Unknown || code == codes.DataLoss:
		level = slog.LevelError
	case audited(ctx), code == codes.OK && !gated(method):
		level = slog.LevelDebug
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("method", method), slog.String("code", code.String())}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	logAttrs(ctx, log, level, "grpc call", attrs...)
}

// logAttrs is log.LogAttrs without the caller's program counter: slog
// walks the stack for it on every record, for handlers that add the
// source, which ltikeys' handlers do not. The request log and the audit
// write a line per call, on the path of every key lookup.
func logAttrs(ctx context.Context, log *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	h := log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}

// UnaryTimeoutInterceptor bounds every unary call to d (when d > 0): a
// call whose client set a shorter deadline keeps it, one without a deadline
// or with a longer one gets d, so a stuck database cannot hold a call, its
// connection and its transaction forever. Handlers pass the context down to
// storage, which gives up when it is done.
func UnaryTimeoutInterceptor(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if d <= 0 {
			return handler(ctx, req)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
			// The client's deadline is the sooner: a context of our own
			// would change nothing, and cost a timer.
			return handler(ctx, req)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return handler(ctx, req)
	}
}

// ContextLogHandler wraps h so that every record logged with the context of
// a call carries the call's request id as request_id.
func ContextLogHandler(h slog.Handler) slog.Handler {
	return contextHandler{h}
}

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
