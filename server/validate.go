package server

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxClientIDLen bounds client_id, as the LTI registration schema does.
const maxClientIDLen = 255

// maxFieldLen bounds every other free-text field, so a request cannot make
// the service store arbitrarily large rows.
const maxFieldLen = 2048

// violations collects the problems of one request, so a caller learns about
// every bad field at once.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: fmt.Sprintf(format, args...),
	})
}

// err returns nil when there are no violations, and otherwise an
// INVALID_ARGUMENT status whose message names every offending field and whose
// details carry a google.rpc.BadRequest.
func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	parts := make([]string, len(v))
	for i, fv := range v {
		parts[i] = fv.Field + ": " + fv.Description
	}
	st := status.New(codes.InvalidArgument, strings.Join(parts, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// requireText checks a required free-text field.
func (v *violations) requireText(field, value string, maxLen int) {
	switch {
	case strings.TrimSpace(value) == "":
		v.add(field, "required")
	case len(value) > maxLen:
		v.add(field, "must be at most %d characters", maxLen)
	case strings.ContainsFunc(value, isControl):
		v.add(field, "must not contain control characters")
	}
}

// requireEndpoint checks a required platform endpoint: an absolute https URL,
// or http for a loopback host (a platform running on the developer's
// machine). URLs with credentials are refused: they would end up in logs and
// API responses.
func (v *violations) requireEndpoint(field, value string) {
	if strings.TrimSpace(value) == "" {
		v.add(field, "required")
		return
	}
	if len(value) > maxFieldLen {
		v.add(field, "must be at most %d characters", maxFieldLen)
		return
	}
	u, err := url.Parse(value)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		v.add(field, "must be an absolute URL")
		return
	}
	if u.User != nil {
		v.add(field, "must not contain credentials")
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			v.add(field, "must use https (http is allowed only for localhost)")
		}
	default:
		v.add(field, "must use https")
	}
}

// requireUUID checks a required registration id.
func (v *violations) requireUUID(field, value string) {
	if value == "" {
		v.add(field, "required")
		return
	}
	if _, err := uuid.Parse(value); err != nil || len(value) != 36 {
		v.add(field, "must be a UUID")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
