package server

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform"
)

// PlatformErrorDomain is the domain of the google.rpc.ErrorInfo that
// GetPlatformAccessToken attaches to a platform's refusal, an unreachable
// platform and a refused token endpoint.
const PlatformErrorDomain = "platform.ltikeys.v1"

// The reasons of those ErrorInfo details. An OAuth error's code
// (invalid_client…) is in the metadata under "error", its description
// under "error_description" and the HTTP status under "http_status".
const (
	// ReasonPlatformOAuthError: the platform refused the token request
	// with an OAuth 2.0 error (RFC 6749, section 5.2).
	ReasonPlatformOAuthError = "PLATFORM_OAUTH_ERROR"
	// ReasonPlatformUnavailable: the platform could not be reached, timed
	// out, answered 429 or 5xx, or did not answer with a usable token.
	ReasonPlatformUnavailable = "PLATFORM_UNAVAILABLE"
	// ReasonTokenEndpointRefused: ltikeys will not send the request where
	// the registration's token_endpoint leads (a private address without
	// --allow-private-platforms, a redirect).
	ReasonTokenEndpointRefused = "TOKEN_ENDPOINT_REFUSED"
)

// GetPlatformAccessToken implements ltikeysv1.KeyServiceServer. It is a
// thin adapter over platform.TokenClient, which owns the exchange, its
// cache and its single flight: this method validates the request,
// resolves the registration and its signing key (from memory when warm),
// hands the token client a function that signs a fresh client assertion
// for the token endpoint, and maps its errors to gRPC status.
func (s *KeyService) GetPlatformAccessToken(ctx context.Context, req *ltikeysv1.GetPlatformAccessTokenRequest) (*ltikeysv1.GetPlatformAccessTokenResponse, error) {
	if s.platformTokens == nil {
		return nil, status.Error(codes.Unimplemented, "platform access tokens are not configured on this server")
	}
	var v violations
	scopes, err := platform.NormalizeScopes(req.GetScopes())
	if err != nil {
		var re *platform.RequestError
		reason := err.Error()
		if errors.As(err, &re) {
			reason = re.Reason
		}
		v.add("scopes", "%s", reason)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	sk, err := s.signingKey(ctx, "GetPlatformAccessToken", req.GetRegistrationId(), req.GetIssuerClient(), req.GetLookup() != nil)
	if err != nil {
		return nil, err
	}
	endpoint := sk.reg.TokenEndpoint
	if endpoint == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "registration %q has no token_endpoint", sk.reg.ID)
	}
	lifetime := min(DefaultAssertionLifetime, s.maxTokenLifetime)
	tok, err := s.platformTokens.Token(ctx, platform.TokenRequest{
		RegistrationID: sk.reg.ID,
		TokenEndpoint:  endpoint,
		KeyID:          sk.kid,
		Scopes:         scopes,
		Assertion: func(context.Context) (string, error) {
			assertion, _, err := s.clientAssertion(sk, endpoint, lifetime)
			return assertion, err
		},
	})
	if err != nil {
		return nil, s.platformError(ctx, sk.reg.ID, err)
	}
	return &ltikeysv1.GetPlatformAccessTokenResponse{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		ExpireTime:  timestamppb.New(tok.ExpiresAt),
		Scopes:      tok.Scopes,
		Cached:      tok.FromCache,
	}, nil
}

// platformError maps an error of platform.TokenClient.Token to the status
// GetPlatformAccessToken answers with, following the mapping the platform
// package documents. Its messages are the package's, which hold no token,
// assertion or response body beyond the platform's sanitised OAuth error;
// none of them is logged here (the audit line has the message, and an
// unreachable platform is not a fault of ltikeys).
func (s *KeyService) platformError(ctx context.Context, registrationID string, err error) error {
	var (
		oauth *platform.OAuthError
		unav  *platform.UnavailableError
	)
	if st := callEnded(ctx, err); st != nil {
		return st
	}
	switch {
	case errors.Is(err, platform.ErrInvalidRequest):
		// The scopes were checked before, and the rest is this method's
		// own doing: a fault here.
		return s.storeError(ctx, "GetPlatformAccessToken", err, "registration_id", registrationID)
	case errors.Is(err, platform.ErrUnavailable):
		md := map[string]string{}
		if errors.As(err, &unav) && unav.StatusCode != 0 {
			md["http_status"] = strconv.Itoa(unav.StatusCode)
		}
		if errors.As(err, &oauth) {
			md = oauthMetadata(oauth)
		}
		return platformUnavailable(err.Error(), ReasonPlatformUnavailable, md, err)
	case errors.As(err, &oauth):
		code := codes.FailedPrecondition
		if oauth.Code == "invalid_scope" {
			code = codes.InvalidArgument
		}
		return withDetails(status.New(code, err.Error()),
			&errdetails.ErrorInfo{Reason: ReasonPlatformOAuthError, Domain: PlatformErrorDomain, Metadata: oauthMetadata(oauth)},
		)
	case errors.Is(err, platform.ErrRefused):
		return withDetails(status.Newf(codes.FailedPrecondition, "registration %q: token_endpoint: %v", registrationID, err),
			&errdetails.ErrorInfo{Reason: ReasonTokenEndpointRefused, Domain: PlatformErrorDomain},
		)
	}
	// The assertion could not be signed: a fault of the key or its data.
	return s.storeError(ctx, "GetPlatformAccessToken", err, "registration_id", registrationID)
}

// callEnded returns the status of a call whose own context ended, the
// cause of err, or nil.
func callEnded(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return nil
}

// platformUnavailable is UNAVAILABLE with msg, an ErrorInfo of reason and
// md, and a RetryInfo of the platform's Retry-After if err (a
// *platform.UnavailableError) carries one, else UnavailableRetryDelay.
func platformUnavailable(msg, reason string, md map[string]string, err error) error {
	delay := UnavailableRetryDelay
	if unav := (*platform.UnavailableError)(nil); errors.As(err, &unav) && unav.RetryAfter > 0 {
		delay = unav.RetryAfter
	}
	return withDetails(status.New(codes.Unavailable, msg),
		&errdetails.ErrorInfo{Reason: reason, Domain: PlatformErrorDomain, Metadata: md},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)},
	)
}

// oauthMetadata is the ErrorInfo metadata of a platform's OAuth error.
func oauthMetadata(e *platform.OAuthError) map[string]string {
	md := map[string]string{"error": e.Code, "http_status": strconv.Itoa(e.HTTPStatus)}
	if e.Description != "" {
		md["error_description"] = e.Description
	}
	return md
}

// withDetails returns st with details attached, or st alone should they
// not marshal (they always do: they are generated messages).
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if withDetails, err := st.WithDetails(details...); err == nil {
		return withDetails.Err()
	}
	return st.Err()
}
