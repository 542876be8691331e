package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/storage"
)

// The reasons of the ErrorInfo of VerifyPlatformToken's refusals that are
// not checks of platform.VerifyToken (whose reasons are platform.Reasons):
// the request itself, the replay check, and the platform's keys.
const (
	// ReasonInvalidRequest: a request field is missing or malformed (the
	// BadRequest detail names it); nothing was verified.
	ReasonInvalidRequest = "INVALID_REQUEST"
	// ReasonNonceReplayed: the token verified, but its (issuer, nonce)
	// was accepted before, by this replica or another.
	ReasonNonceReplayed = "NONCE_REPLAYED"
	// ReasonRegistrationNotFound: no registration matches the lookup, or
	// the token's iss and aud (or azp) without one.
	ReasonRegistrationNotFound = "REGISTRATION_NOT_FOUND"
	// ReasonPlatformKeysUnavailable: the platform's key set could not be
	// fetched and no good copy is held.
	ReasonPlatformKeysUnavailable = "PLATFORM_KEYS_UNAVAILABLE"
	// ReasonJWKSURIRefused: ltikeys will not fetch the registration's
	// jwks_uri (a private address without --allow-private-platforms, a
	// redirect).
	ReasonJWKSURIRefused = "JWKS_URI_REFUSED"
)

// maxNonceBytes bounds VerifyPlatformTokenRequest.nonce: the size of the
// column that records it (storage.UseNonce).
const maxNonceBytes = 255

// VerifyPlatformToken implements ltikeysv1.KeyServiceServer. It is a thin
// adapter over the platform package, which owns the platforms' key sets
// and the checks: it validates the request, resolves the registration
// (from memory when warm, as signing does), verifies the token against
// the key set at the registration's jwks_uri with the registration's
// expectations, then records the (issuer, nonce) pair, so that a replay
// is refused by every replica. A warm verification runs one statement:
// that record.
func (s *KeyService) VerifyPlatformToken(ctx context.Context, req *ltikeysv1.VerifyPlatformTokenRequest) (*ltikeysv1.VerifyPlatformTokenResponse, error) {
	if s.platformKeys == nil {
		return nil, status.Error(codes.Unimplemented, "platform token verification is not configured on this server")
	}
	var v violations
	switch token := req.GetToken(); {
	case token == "":
		v.add("token", "required")
	case len(token) > platform.MaxPlatformTokenBytes:
		v.add("token", "at most %d bytes, got %d", platform.MaxPlatformTokenBytes, len(token))
	}
	v.requireText("nonce", req.GetNonce(), maxNonceBytes)
	if err := v.err(); err != nil {
		return nil, withReason(err, ReasonInvalidRequest)
	}

	id, ic := req.GetRegistrationId(), req.GetIssuerClient()
	if req.GetLookup() == nil {
		// Read before anything is verified, only to find the
		// registration whose expectations the token is then checked
		// against.
		u, err := platform.ParseUnverified(req.GetToken())
		if err != nil {
			return nil, s.verifyError(ctx, "", err)
		}
		clientID := u.AuthorizedParty
		if len(u.Audience) == 1 && clientID == "" {
			clientID = u.Audience[0]
		}
		if u.Issuer == "" || clientID == "" {
			// The reason VerifyToken would give the same token.
			reason := platform.ReasonAudienceMismatch
			switch {
			case u.Issuer == "":
				reason = platform.ReasonIssuerMismatch
			case len(u.Audience) > 1:
				reason = platform.ReasonAZPMissing
			}
			s.metrics.PlatformVerification(reason)
			return nil, verificationStatus(codes.InvalidArgument, reason,
				"token: without a registration lookup, its iss and its aud (or azp, when aud has several values) must name the registration")
		}
		ic = &ltikeysv1.IssuerClient{Issuer: u.Issuer, ClientId: clientID}
	}
	sk, err := s.signingKey(ctx, "VerifyPlatformToken", id, ic, true)
	if err != nil {
		switch code := status.Code(err); {
		case req.GetLookup() == nil && (code == codes.NotFound || code == codes.InvalidArgument):
			// The issuer and client_id came from the token's claims: the
			// message repeats neither, and names no request field. One
			// that is not valid text or is too long is no registration's.
			return nil, verificationStatus(codes.NotFound, ReasonRegistrationNotFound,
				"token: no registration has its iss as issuer and its aud (or azp) as client_id")
		case code == codes.NotFound:
			return nil, withReason(err, ReasonRegistrationNotFound)
		case code == codes.InvalidArgument:
			return nil, withReason(err, ReasonInvalidRequest)
		}
		return nil, err
	}
	reg := sk.reg
	claims, err := platform.VerifyToken(ctx, req.GetToken(), s.platformKeys.Source(reg.JWKSURI), platform.Expectations{
		Issuer:        reg.Issuer,
		ClientID:      reg.ClientID,
		Nonce:         req.GetNonce(),
		DeploymentIDs: reg.DeploymentIDs,
		// The package reads 0 as its default: a nanosecond is none.
		Leeway: cmp.Or(s.verifyLeeway, time.Nanosecond),
		Now:    s.now,
	})
	if err != nil {
		return nil, s.verifyError(ctx, reg.ID, err)
	}
	// Kept until the token expires, and the leeway after it, during which
	// the token would still verify.
	if err := s.store.UseNonce(ctx, reg.Issuer, claims.Nonce, claims.ExpiresAt.Add(s.verifyLeeway)); err != nil {
		if errors.Is(err, storage.ErrNonceUsed) {
			s.metrics.PlatformVerification(ReasonNonceReplayed)
			return nil, verificationStatus(codes.InvalidArgument, ReasonNonceReplayed,
				"token: its nonce was accepted before: a launch is verified once")
		}
		s.metrics.PlatformVerification(string(platform.OutcomeUnavailable))
		return nil, s.storeError(ctx, "VerifyPlatformToken", err)
	}
	s.metrics.PlatformVerification(string(platform.OutcomeOK))
	return &ltikeysv1.VerifyPlatformTokenResponse{
		Registration: s.registrationProto(reg, s.now()),
		ClaimsJson:   string(claims.JSON),
		DeploymentId: claims.DeploymentID,
		MessageType:  claims.MessageType,
		Kid:          claims.KeyID,
		ExpireTime:   timestamppb.New(claims.ExpiresAt),
	}, nil
}

// verifyError maps an error of platform.VerifyToken (or ParseUnverified)
// to the status VerifyPlatformToken answers with, and counts it. The
// messages are the package's: a reason and a detail that holds no token
// or claim value.
func (s *KeyService) verifyError(ctx context.Context, registrationID string, err error) error {
	var ve *platform.VerificationError
	if st := callEnded(ctx, err); st != nil {
		return st
	}
	switch {
	case errors.As(err, &ve):
		s.metrics.PlatformVerification(ve.Reason)
		return verificationStatus(codes.InvalidArgument, ve.Reason, "token: "+ve.Error())
	case errors.Is(err, platform.ErrUnavailable):
		s.metrics.PlatformVerification(string(platform.OutcomeUnavailable))
		return platformUnavailable(fmt.Sprintf("registration %q: the platform's keys (jwks_uri) cannot be had: %v", registrationID, err),
			ReasonPlatformKeysUnavailable, nil, err)
	case errors.Is(err, platform.ErrRefused):
		s.metrics.PlatformVerification(string(platform.OutcomeRefused))
		return withDetails(status.Newf(codes.FailedPrecondition, "registration %q: jwks_uri: %v", registrationID, err),
			&errdetails.ErrorInfo{Reason: ReasonJWKSURIRefused, Domain: PlatformErrorDomain},
		)
	}
	return s.storeError(ctx, "VerifyPlatformToken", err, "registration_id", registrationID)
}

// verificationStatus is a refusal of VerifyPlatformToken: code, msg and
// an ErrorInfo with reason.
func verificationStatus(code codes.Code, reason, msg string) error {
	return withDetails(status.New(code, msg),
		&errdetails.ErrorInfo{Reason: reason, Domain: PlatformErrorDomain})
}

// withReason adds an ErrorInfo with reason to the status err, keeping its
// code, message and other details.
func withReason(err error, reason string) error {
	st := status.Convert(err)
	return withDetails(st, &errdetails.ErrorInfo{Reason: reason, Domain: PlatformErrorDomain})
}
