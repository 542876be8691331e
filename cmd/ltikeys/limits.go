package main

import (
	"fmt"
	"math"
	"time"

	"github.com/spf13/pflag"

	"github.com/ltikeys/ltikeys/server"
)

// limitOptions are the flags that bound what clients of the gRPC listener
// can make serve hold or spend, authenticated or not.
type limitOptions struct {
	maxRecvMsgSize               int
	maxHeaderListSize            int
	maxConcurrentStreams         int
	maxConnections               int
	keepaliveMinTime             time.Duration
	keepalivePermitWithoutStream bool
	maxConnectionIdle            time.Duration
	maxStreamDuration            time.Duration
	authFailureRate              float64
	authFailureBurst             int
}

func (o *limitOptions) register(f *pflag.FlagSet) {
	d := server.DefaultLimits()
	f.IntVar(&o.maxRecvMsgSize, "grpc-max-recv-msg-size", d.MaxRecvMsgSize, "largest gRPC request message, in bytes; a larger one is refused with RESOURCE_EXHAUSTED before it is read (claims_json is at most 64 KiB)")
	f.IntVar(&o.maxHeaderListSize, "grpc-max-header-list-size", int(d.MaxHeaderListSize), "largest gRPC request header list (metadata), in bytes as HTTP/2 counts them; gRPC clients fail a larger call with INTERNAL, and the server resets the stream")
	f.IntVar(&o.maxConcurrentStreams, "grpc-max-concurrent-streams", int(d.MaxConcurrentStreams), "how many calls one gRPC connection may have open at once; gRPC clients queue further calls, and a stream over the limit is refused with REFUSED_STREAM")
	f.IntVar(&o.maxConnections, "grpc-max-connections", d.MaxConnections, "how many connections the gRPC listener holds at once; further ones wait until one closes; 0: no limit")
	f.DurationVar(&o.keepaliveMinTime, "grpc-keepalive-min-time", d.KeepaliveMinTime, "shortest interval at which a gRPC client may send keepalive pings; one that pings more often is sent GOAWAY (ENHANCE_YOUR_CALM, too_many_pings)")
	f.BoolVar(&o.keepalivePermitWithoutStream, "grpc-keepalive-permit-without-stream", d.KeepalivePermitWithoutStream, "allow keepalive pings on a gRPC connection without open calls (no more often than --grpc-keepalive-min-time)")
	f.DurationVar(&o.maxConnectionIdle, "grpc-max-connection-idle", d.MaxConnectionIdle, "close, with GOAWAY, a gRPC connection that has had no open call for this long (clients reconnect when they next call); 0: never")
	f.DurationVar(&o.maxStreamDuration, "grpc-max-stream-duration", d.MaxStreamDuration, "longest a health Watch or reflection stream stays open; it then ends with DEADLINE_EXCEEDED and the client opens a new one (ltikeys calls are bounded by --request-timeout); 0: no limit")
	f.Float64Var(&o.authFailureRate, "auth-failure-rate", server.DefaultFailureRate, "failed authentications per second, on average, allowed from one client address (IPv4 address or IPv6 /64); beyond them every KeyService call from that address, valid tokens too, is RESOURCE_EXHAUSTED until its budget refills; 0 turns the throttle off")
	f.IntVar(&o.authFailureBurst, "auth-failure-burst", server.DefaultFailureBurst, "failed authentications allowed in a row from one client address before --auth-failure-rate applies")
}

// limits returns the gRPC limits the flags set, or the first flag out of
// range.
func (o *limitOptions) limits() (server.Limits, error) {
	positive := []struct {
		flag  string
		value int
	}{
		{"--grpc-max-recv-msg-size", o.maxRecvMsgSize},
		{"--grpc-max-header-list-size", o.maxHeaderListSize},
		{"--grpc-max-concurrent-streams", o.maxConcurrentStreams},
	}
	for _, p := range positive {
		if p.value <= 0 || p.value > math.MaxUint32 {
			return server.Limits{}, fmt.Errorf("%s: must be between 1 and %d, got %d", p.flag, uint32(math.MaxUint32), p.value)
		}
	}
	switch {
	case o.maxConnections < 0:
		return server.Limits{}, fmt.Errorf("--grpc-max-connections: must not be negative, got %d", o.maxConnections)
	case o.keepaliveMinTime <= 0:
		return server.Limits{}, fmt.Errorf("--grpc-keepalive-min-time: must be positive, got %s", o.keepaliveMinTime)
	case o.maxConnectionIdle < 0:
		return server.Limits{}, fmt.Errorf("--grpc-max-connection-idle: must not be negative, got %s", o.maxConnectionIdle)
	case o.maxStreamDuration < 0:
		return server.Limits{}, fmt.Errorf("--grpc-max-stream-duration: must not be negative, got %s", o.maxStreamDuration)
	}
	l := server.Limits{
		MaxRecvMsgSize:               o.maxRecvMsgSize,
		MaxHeaderListSize:            uint32(o.maxHeaderListSize),
		MaxConcurrentStreams:         uint32(o.maxConcurrentStreams),
		MaxConnections:               o.maxConnections,
		KeepaliveMinTime:             o.keepaliveMinTime,
		KeepalivePermitWithoutStream: o.keepalivePermitWithoutStream,
		MaxConnectionIdle:            o.maxConnectionIdle,
		MaxStreamDuration:            o.maxStreamDuration,
	}
	return l, l.Check()
}

// failureLimit returns the throttle of failed authentications the flags
// set, as AuthConfig's FailureRate and FailureBurst, or the first flag out
// of range.
func (o *limitOptions) failureLimit() (rate float64, burst int, err error) {
	switch {
	case math.IsNaN(o.authFailureRate) || math.IsInf(o.authFailureRate, 0) || o.authFailureRate < 0:
		return 0, 0, fmt.Errorf("--auth-failure-rate: want a number of at least 0, got %v", o.authFailureRate)
	case o.authFailureBurst < 1:
		return 0, 0, fmt.Errorf("--auth-failure-burst: must be at least 1, got %d", o.authFailureBurst)
	case o.authFailureRate == 0:
		return -1, o.authFailureBurst, nil // off
	}
	return o.authFailureRate, o.authFailureBurst, nil
}
