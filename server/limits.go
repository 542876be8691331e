package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Limits bound what clients can make the gRPC server hold, whoever they
// are: how large a message or a header list may be, how many streams a
// connection may have open and how many connections the listener holds,
// how often a client may ping, how long a connection may stay idle and a
// stream stay open. DefaultLimits are serve's defaults; they admit every
// call the README shows.
type Limits struct {
	// MaxRecvMsgSize is the largest request message, in bytes; a larger
	// one is refused with RESOURCE_EXHAUSTED before it is read. Claims are
	// at most 64 KiB, so no valid request comes near the default.
	MaxRecvMsgSize int
	// MaxHeaderListSize is the largest header list (metadata) of a request,
	// counted as HTTP/2 does: name, value and 32 bytes per field. The
	// server announces it; gRPC clients then fail a larger call themselves
	// (INTERNAL), and the server resets a stream that exceeds it anyway.
	MaxHeaderListSize uint32
	// MaxConcurrentStreams is how many calls one connection may have open
	// at once; the server announces it, gRPC clients queue calls beyond
	// it, and a stream over it is reset with REFUSED_STREAM.
	MaxConcurrentStreams uint32
	// MaxConnections is how many connections the listener holds at once
	// (0: no limit); connections beyond it wait in the kernel's backlog
	// until one closes.
	MaxConnections int
	// KeepaliveMinTime is the shortest interval at which a client may send
	// keepalive pings; one that pings more often is sent GOAWAY with
	// ENHANCE_YOUR_CALM ("too_many_pings") and disconnected.
	KeepaliveMinTime time.Duration
	// KeepalivePermitWithoutStream allows keepalive pings on a connection
	// without open streams (still no more often than KeepaliveMinTime).
	KeepalivePermitWithoutStream bool
	// MaxConnectionIdle closes, with GOAWAY, a connection that has had no
	// open stream for this long (0: never); clients reconnect when they
	// next call.
	MaxConnectionIdle time.Duration
	// MaxStreamDuration is the longest a call outside ltikeys.v1 may stay
	// open (0: no limit): a health Watch or reflection stream then ends
	// with DEADLINE_EXCEEDED, as if the client had set that deadline, and
	// the client opens a new one (gRPC health-checking clients do so at
	// once). ltikeys.v1 methods are all unary and bounded by the request
	// timeout instead.
	MaxStreamDuration time.Duration
}

// DefaultLimits returns serve's default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxRecvMsgSize:               256 << 10,
		MaxHeaderListSize:            16 << 10,
		MaxConcurrentStreams:         100,
		MaxConnections:               1000,
		KeepaliveMinTime:             5 * time.Second,
		KeepalivePermitWithoutStream: true,
		MaxConnectionIdle:            5 * time.Minute,
		MaxStreamDuration:            10 * time.Minute,
	}
}

// Check reports the first limit that is out of range.
func (l Limits) Check() error {
	switch {
	case l.MaxRecvMsgSize <= 0:
		return fmt.Errorf("the maximum message size must be positive, got %d", l.MaxRecvMsgSize)
	case l.MaxHeaderListSize == 0:
		return errors.New("the maximum header list size must be positive")
	case l.MaxConcurrentStreams == 0:
		return errors.New("the maximum of concurrent streams must be positive")
	case l.MaxConnections < 0:
		return fmt.Errorf("the maximum of connections must not be negative, got %d", l.MaxConnections)
	case l.KeepaliveMinTime <= 0:
		return fmt.Errorf("the keepalive minimum time must be positive, got %s", l.KeepaliveMinTime)
	case l.MaxConnectionIdle < 0:
		return fmt.Errorf("the maximum connection idle time must not be negative, got %s", l.MaxConnectionIdle)
	case l.MaxStreamDuration < 0:
		return fmt.Errorf("the maximum stream duration must not be negative, got %s", l.MaxStreamDuration)
	}
	return nil
}

// ServerOptions returns the server options that enforce l. taps run first,
// in order, as the server's one tap handle (see Authenticator.TapHandle),
// then the stream lifetime's; its stream interceptor, which gives a stream
// ended by MaxStreamDuration its status, is chained after the interceptors
// of options given before these.
func (l Limits) ServerOptions(taps ...tap.ServerInHandle) []grpc.ServerOption {
	if l.MaxStreamDuration > 0 {
		taps = append(slices.Clip(taps), streamLifetime(l.MaxStreamDuration))
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvMsgSize),
		grpc.MaxHeaderListSize(l.MaxHeaderListSize),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             l.KeepaliveMinTime,
			PermitWithoutStream: l.KeepalivePermitWithoutStream,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.MaxConnectionIdle}),
	}
	if l.MaxStreamDuration > 0 {
		opts = append(opts, grpc.ChainStreamInterceptor(streamLifetimeStatus(l.MaxStreamDuration)))
	}
	switch len(taps) {
	case 0:
	case 1:
		opts = append(opts, grpc.InTapHandle(taps[0]))
	default:
		opts = append(opts, grpc.InTapHandle(chainTaps(taps)))
	}
	return opts
}

// Listener returns lis holding at most MaxConnections connections at once.
func (l Limits) Listener(lis net.Listener) net.Listener {
	if l.MaxConnections <= 0 {
		return lis
	}
	return netutil.LimitListener(lis, l.MaxConnections)
}

// chainTaps runs taps in order, stopping at the first that refuses.
func chainTaps(taps []tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		for _, h := range taps {
			var err error
			if ctx, err = h(ctx, info); err != nil {
				return ctx, err
			}
		}
		return ctx, nil
	}
}

// errStreamLifetime is the cause of the context of a stream that reached
// its maximum duration.
var errStreamLifetime = errors.New("maximum stream duration reached")

// streamLifetime bounds every call outside ltikeys.v1 to d. The deadline is
// set on the stream's own context, which the transport watches, so that a
// handler blocked in RecvMsg (a reflection stream waiting for its next
// request) returns as well as one that waits for the context (health
// Watch). ltikeys.v1 calls are left alone: they are unary and bounded by
// UnaryTimeoutInterceptor, and a timer each would cost every key lookup.
func streamLifetime(d time.Duration) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if gated(info.FullMethodName) {
			return ctx, nil
		}
		ctx, cancel := context.WithTimeoutCause(ctx, d, errStreamLifetime)
		// The stream's context is canceled when the stream ends, and
		// cancels this one with it; the cancel function is left to say so.
		context.AfterFunc(ctx, cancel)
		return ctx, nil
	}
}

// streamLifetimeStatus gives a stream that streamLifetime ended after d
// DEADLINE_EXCEEDED, the status the transport gives a handler that was
// waiting for a message when the deadline passed (reflection), whatever a
// handler that was waiting for the context returned (health Watch returns
// CANCELED).
func streamLifetimeStatus(d time.Duration) grpc.StreamServerInterceptor {
	ended := status.Errorf(codes.DeadlineExceeded, "the stream reached its maximum duration (%s); open a new one", d)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err != nil && errors.Is(context.Cause(ss.Context()), errStreamLifetime) {
			return ended
		}
		return err
	}
}
