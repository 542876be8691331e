package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ltikeys/ltikeys/storage"
)

// errInternal is what a caller sees of a server fault: the detail goes to the
// log, never to the client.
var errInternal = status.Error(codes.Internal, "internal error")

// UnavailableRetryDelay is the delay that the RetryInfo of an UNAVAILABLE
// answer suggests before a retry.
const UnavailableRetryDelay = time.Second

// UnavailableMessage is the message of an UNAVAILABLE answer to a call the
// database could not serve.
const UnavailableMessage = "database unavailable; retry later"

// errUnavailable is what a caller sees of a call the database could not
// serve for now. Like errInternal it says nothing of the cause.
var errUnavailable = unavailableError(UnavailableMessage)

// unavailableError returns UNAVAILABLE, which gRPC clients and their retry
// policies treat as worth retrying, with msg and a google.rpc.RetryInfo of
// UnavailableRetryDelay saying when.
func unavailableError(msg string) error {
	st, err := status.New(codes.Unavailable, msg).
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(UnavailableRetryDelay)})
	if err != nil {
		panic(err) // a RetryInfo always marshals
	}
	return st.Err()
}

// storeError turns an error from storage or crypto that the method does not
// handle itself into a gRPC status; every such error of KeyService leaves
// through here. Callers handle the sentinels they expect (not found,
// already exists) first, so that each message can name what was not found.
//
//   - A canceled call is CANCELED, and one whose own deadline passed is
//     DEADLINE_EXCEEDED; neither is logged.
//   - An error storage.Unavailable recognizes (the database unreachable,
//     or a transaction that kept conflicting) is UNAVAILABLE with
//     UnavailableMessage and a RetryInfo of UnavailableRetryDelay. It is
//     reported through the service's outage log, which writes a bounded
//     number of lines however many calls fail (see outageLog).
//   - Anything else is a fault: logged at error level, with attrs (slog
//     key-value pairs, never secrets) after the error, and INTERNAL
//     without detail.
func (s *KeyService) storeError(ctx context.Context, method string, err error, attrs ...any) error {
	if st := callEnded(ctx, err); st != nil {
		return st
	}
	switch {
	case storage.Unavailable(err):
		s.outage.failed(ctx, method, err)
		return errUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.log.ErrorContext(ctx, "request failed", append([]any{"method", method, "err", err}, attrs...)...)
	return errInternal
}

// DefaultOutageLogInterval is how often, at most, a KeyService logs how
// many calls failed UNAVAILABLE while the database is away, unless
// KeyServiceConfig.OutageLogInterval says otherwise.
const DefaultOutageLogInterval = 10 * time.Second

// Messages of the outage log's lines.
const (
	OutageStartMessage   = "database unavailable: calls that need it fail with UNAVAILABLE"
	OutageSummaryMessage = "database still unavailable"
	OutageEndMessage     = "database available again"
)

// outageLog reports the calls that fail because the database is
// unavailable, so that an outage costs a bounded number of log lines
// however many calls fail: the first failure is logged at warn at once,
// with its method and error (OutageStartMessage); later ones are counted,
// and a failure at least interval after the latest line logs the count
// since it (OutageSummaryMessage, at warn); when the database is known to
// have answered after the latest failure (answered), one info line ends
// the outage with the count since the latest line and the total
// (OutageEndMessage). An outage of duration d thus writes at most
// 2 + d/interval lines. Safe for concurrent use.
type outageLog struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu sync.Mutex
	// open is true from a failure until the database answers again.
	open bool
	// since and last are the times of the outage's first and latest
	// failures; reported is when its latest line was written.
	since, last, reported time.Time
	// pending counts the failures since the latest line, total all of
	// the outage's.
	pending, total int
}

// failed records a call of method that failed with err, an error
// storage.Unavailable recognizes.
func (o *outageLog) failed(ctx context.Context, method string, err error) {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last = now
	if !o.open {
		o.open, o.since, o.reported, o.pending, o.total = true, now, now, 0, 1
		o.log.WarnContext(ctx, OutageStartMessage, "method", method, "err", err)
		return
	}
	o.pending++
	o.total++
	if now.Sub(o.reported) < o.interval {
		return
	}
	o.log.Warn(OutageSummaryMessage, "failed_calls", o.pending, "since", o.since, "err", err)
	o.reported, o.pending = now, 0
}

// answered records that the database answered at the given time, and ends
// the outage if that was after its latest failure (an answer from before
// it says nothing about the database since).
func (o *outageLog) answered(at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.open || !at.After(o.last) {
		return
	}
	o.open = false
	o.log.Info(OutageEndMessage, "failed_calls", o.pending, "total_failed_calls", o.total,
		"since", o.since, "duration", at.Sub(o.since))
}
