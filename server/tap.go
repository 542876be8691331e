package server

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
)

// TapHandle returns the tap handle that refuses, before the call's request
// is read, a call of a method in the access-control table whose
// credentials could not pass: no authorization metadata and no verified
// client certificate (or no certificate identities configured), more than
// one authorization value, or one that is not "Bearer <token>" with a token
// of at most MaxTokenLen bytes. Such a call is UNAUTHENTICATED with the
// interceptors' message and has its audit line, without the request's ids,
// which are never read; it gets no request log line. A call from a peer
// address over its budget of failed authentications is refused likewise,
// with RESOURCE_EXHAUSTED (see AuthConfig.FailureRate). Nothing is hashed
// here and nothing allocated for a call that passes: the token and the
// certificate's identities are checked by the interceptors, as before.
//
// A tap handle runs on the connection's reading goroutine, before the
// stream exists, so a refusal there costs no stream and no goroutine; the
// request's DATA frames are dropped as they arrive. But grpc-go (v1.85)
// does not cancel the context of a stream its tap handle refuses, so the
// timer of the client's deadline would live, with the context, until the
// deadline: some 460 bytes for every refused call with a deadline, for as
// long as the client chooses. A call with a deadline is therefore let
// through, marked as refused, and answered before its request is read by
// the method handlers of services registered through EarlyRefusals (or by
// the interceptors, after it is read, for services that are not); its
// stream's context is then canceled as usual.
func (a *Authenticator) TapHandle() tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if _, ok := RequiredScope(info.FullMethodName); !ok {
			// Public methods need nothing; unknown ones are answered
			// UNIMPLEMENTED by grpc-go without reading their request.
			return ctx, nil
		}
		err := errUnauthenticated
		if addr, ok := peerAddr(ctx); ok && a.failures.blocked(addr) {
			err = errThrottled
		} else if a.creds.Load().mayAuthenticate(ctx, info.Header["authorization"]) {
			return ctx, nil
		}
		a.refuse(ctx, info.FullMethodName, time.Now(), err, nil)
		if _, ok := ctx.Deadline(); ok {
			return context.WithValue(ctx, tapRefusalKey{}, err), nil
		}
		return ctx, err
	}
}

type tapRefusalKey struct{}

// refusedByTap returns the error of a call that TapHandle refused but let
// through, or nil.
func refusedByTap(ctx context.Context) error {
	err, _ := ctx.Value(tapRefusalKey{}).(error)
	return err
}

// EarlyRefusals returns r as a registrar whose method handlers answer a
// call that TapHandle refused but let through before they read its
// request. The services guarded by an Authenticator are registered
// through it; on a server without its tap handle it changes nothing.
func EarlyRefusals(r grpc.ServiceRegistrar) grpc.ServiceRegistrar {
	return earlyRefusals{r}
}

type earlyRefusals struct{ grpc.ServiceRegistrar }

func (e earlyRefusals) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = slices.Clone(desc.Methods)
	for i := range d.Methods {
		handler := d.Methods[i].Handler
		// grpc-go reads a unary call's request when the handler calls dec.
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			if err := refusedByTap(ctx); err != nil {
				return nil, err
			}
			return handler(srv, ctx, dec, interceptor)
		}
	}
	d.Streams = slices.Clone(desc.Streams)
	for i := range d.Streams {
		handler := d.Streams[i].Handler
		d.Streams[i].Handler = func(srv any, ss grpc.ServerStream) error {
			if err := refusedByTap(ss.Context()); err != nil {
				return err
			}
			return handler(srv, ss)
		}
	}
	e.ServiceRegistrar.RegisterService(&d, impl)
}

// mayAuthenticate reports whether a call with these authorization values
// could pass authenticate: a single bearer token of sane length while
// tokens are configured, or none and a verified client certificate while
// certificate identities are. It hashes and allocates nothing; whether the token is known,
// or the certificate mapped, is for authenticate.
func (s *credentialSet) mayAuthenticate(ctx context.Context, authorization []string) bool {
	switch len(authorization) {
	case 0:
		return len(s.certs) > 0 && hasVerifiedCert(ctx)
	case 1:
		_, ok := bearerToken(authorization[0])
		return ok && len(s.tokens) > 0
	default:
		return false
	}
}

// hasVerifiedCert reports whether the call's connection presented a client
// certificate that verified. The peer, with the TLS state of its
// handshake, is in the context from the connection's start, the tap
// handle's included.
func hasVerifiedCert(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(tlsInfo.State.VerifiedChains) > 0 && len(tlsInfo.State.VerifiedChains[0]) > 0
}
