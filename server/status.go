package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errInternal is what a caller sees of a server fault: the detail goes to the
// log, never to the client.
var errInternal = status.Error(codes.Internal, "internal error")

// storeError turns an unexpected error from storage or crypto into a gRPC
// status. Context errors keep their meaning; anything else is logged at error
// level, with attrs (slog key-value pairs, never secrets) after the error,
// and reported as INTERNAL without detail. Callers handle the sentinels
// they expect (not found, already exists) before calling it, so that each
// message can name what was not found.
func storeError(ctx context.Context, log *slog.Logger, method string, err error, attrs ...any) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.ErrorContext(ctx, "request failed", append([]any{"method", method, "err", err}, attrs...)...)
	return errInternal
}
