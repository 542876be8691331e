package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/claims"
)

// Limits of the signing methods.
const (
	// MaxClaimsJSON bounds SignJwt's claims_json, in bytes. LTI messages,
	// deep-linking responses included, are far smaller; the bound keeps a
	// caller from making the service parse and sign arbitrary volumes.
	MaxClaimsJSON = 64 << 10
	// DefaultMaxTokenLifetime is how long after signing a token may expire,
	// unless KeyServiceConfig.MaxTokenLifetime (serve's
	// --max-token-lifetime) says otherwise. It bounds SignJwt's expires_in
	// and a caller's exp claim, and CreateClientAssertion's expires_in. A
	// signature is the registration's word to a platform: a longer-lived
	// one belongs in a separate, deliberate design, not in a default.
	DefaultMaxTokenLifetime = 24 * time.Hour
	// DefaultJWTLifetime is the lifetime SignJwt gives a token when the
	// request has neither expires_in nor an exp claim, so that no token is
	// signed without an expiry: like a client assertion's, long enough for
	// one exchange and its retries.
	DefaultJWTLifetime = 5 * time.Minute
	// MaxClockSkew is how far after now a caller's nbf and iat claims may
	// lie, for a caller whose clock runs a little ahead of the service's.
	MaxClockSkew = time.Minute
	// DefaultAssertionLifetime is a client assertion's lifetime when the
	// request gives none: long enough for one token request and its retries.
	DefaultAssertionLifetime = 5 * time.Minute
	// MaxAssertionLifetime bounds CreateClientAssertion's expires_in (and so
	// does the maximum token lifetime, when it is shorter).
	MaxAssertionLifetime = time.Hour
)

// SignJwt implements ltikeysv1.KeyServiceServer.
//
// The protected header is built here, never from the request, and is
// exactly {"alg":"RS256","kid":…,"typ":"JWT"}. The payload is claims_json
// compacted (insignificant whitespace removed, member order and values
// kept), with "iat" and "exp" appended when expires_in is set. Without
// expires_in, a caller's exp must lie within the maximum token lifetime;
// without either, "exp" (and "iat", unless the claims hold one) is
// appended, DefaultJWTLifetime after now. A caller's nbf and iat may lie at
// most MaxClockSkew ahead and must come before exp. Nothing is signed
// unless the whole request is valid.
func (s *KeyService) SignJwt(ctx context.Context, req *ltikeysv1.SignJwtRequest) (*ltikeysv1.SignJwtResponse, error) {
	now := s.now()
	var v violations
	set, ok := v.claimsObject("claims_json", req.GetClaimsJson())
	lifetime, hasLifetime := v.lifetime("expires_in", req.GetExpiresIn(), s.maxTokenLifetime)
	var added []dateClaim
	if ok {
		times := &set.Times
		iat := now.Unix()
		switch {
		case hasLifetime:
			for _, c := range []struct {
				name string
				set  bool
			}{{"iat", times.Iat.Set}, {"exp", times.Exp.Set}} {
				if c.set {
					v.add("claims_json", "must not contain %q when expires_in is set: the service sets iat and exp", c.name)
				}
			}
			exp := iat + int64(lifetime/time.Second)
			added = []dateClaim{{"iat", iat}, {"exp", exp}}
			times.Iat, times.Exp = claims.Date(iat), claims.Date(exp)
		case !times.Exp.Set:
			exp := iat + int64(min(DefaultJWTLifetime, s.maxTokenLifetime)/time.Second)
			if !times.Iat.Set {
				added, times.Iat = append(added, dateClaim{"iat", iat}), claims.Date(iat)
			}
			added, times.Exp = append(added, dateClaim{"exp", exp}), claims.Date(exp)
		}
		window := claims.Window{Now: now, MaxLifetime: s.maxTokenLifetime, Skew: MaxClockSkew}
		if err := window.Check(*times); err != nil {
			v.add("claims_json", "%v", err)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}

	sk, err := s.signingKey(ctx, "SignJwt", req.GetRegistrationId(), req.GetIssuerClient(), req.GetLookup() != nil)
	if err != nil {
		return nil, err
	}
	token, err := sk.sign(appendDates(set.Compact, added))
	if err != nil {
		return nil, s.storeError(ctx, "SignJwt", err)
	}
	return &ltikeysv1.SignJwtResponse{Jwt: token, Kid: sk.kid}, nil
}

// clientAssertion is the claims set of an LTI Advantage client assertion,
// in the order it is serialized.
type clientAssertion struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
}

// CreateClientAssertion implements ltikeysv1.KeyServiceServer.
//
// The assertion follows the 1EdTech Security Framework 1.1, section 4.1.1:
// iss and sub are the registration's client_id, aud is its token endpoint
// unless the request names another audience, iat is now, exp is iat plus
// the lifetime, and jti is 128 random bits (base64url), so a platform that
// tracks jti can refuse a replay.
func (s *KeyService) CreateClientAssertion(ctx context.Context, req *ltikeysv1.CreateClientAssertionRequest) (*ltikeysv1.CreateClientAssertionResponse, error) {
	var v violations
	if aud := req.GetAudience(); aud != "" {
		v.requireText("audience", aud, maxFieldLen)
	}
	lifetime, ok := v.lifetime("expires_in", req.GetExpiresIn(), min(MaxAssertionLifetime, s.maxTokenLifetime))
	if !ok {
		lifetime = min(DefaultAssertionLifetime, s.maxTokenLifetime)
	}
	if err := v.err(); err != nil {
		return nil, err
	}

	sk, err := s.signingKey(ctx, "CreateClientAssertion", req.GetRegistrationId(), req.GetIssuerClient(), req.GetLookup() != nil)
	if err != nil {
		return nil, err
	}
	aud := req.GetAudience()
	if aud == "" {
		aud = sk.reg.TokenEndpoint
	}
	if aud == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "registration %q has no token endpoint: give an audience", sk.reg.ID)
	}
	token, exp, err := s.clientAssertion(sk, aud, lifetime)
	if err != nil {
		return nil, s.storeError(ctx, "CreateClientAssertion", err)
	}
	return &ltikeysv1.CreateClientAssertionResponse{
		ClientAssertion: token,
		Kid:             sk.kid,
		ExpireTime:      timestamppb.New(exp),
	}, nil
}

// clientAssertion signs a client assertion with sk for the audience aud
// (1EdTech Security Framework 1.1, section 4.1.1): iss and sub the
// registration's client_id, iat now, exp lifetime later, and a random
// 128-bit jti, so that no two assertions are alike. It returns the
// assertion and its exp.
func (s *KeyService) clientAssertion(sk *signingKey, aud string, lifetime time.Duration) (string, time.Time, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("jti: %w", err)
	}
	iat := s.now().Truncate(time.Second)
	exp := iat.Add(lifetime)
	payload, err := json.Marshal(clientAssertion{
		Iss: sk.reg.ClientID,
		Sub: sk.reg.ClientID,
		Aud: aud,
		Iat: iat.Unix(),
		Exp: exp.Unix(),
		Jti: base64.RawURLEncoding.EncodeToString(jti),
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("marshal claims: %w", err)
	}
	token, err := sk.sign(payload)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, exp, nil
}

// sign returns payload signed with the key as a compact JWS whose protected
// header is exactly alg RS256, typ JWT and the key's kid.
func (sk *signingKey) sign(payload []byte) (string, error) {
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{
		jws.AlgorithmKey: jwa.RS256,
		jws.TypeKey:      "JWT",
		jws.KeyIDKey:     sk.kid,
	} {
		if err := hdr.Set(k, v); err != nil {
			return "", fmt.Errorf("set header %s: %w", k, err)
		}
	}
	if kid := sk.key.KeyID(); kid != "" && kid != sk.kid {
		// The signer would write the JWK's own kid into the header.
		return "", fmt.Errorf("key %s: private JWK carries kid %s", sk.kid, kid)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256, sk.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		// jwx errors never quote the key, but keep the detail in the log.
		return "", fmt.Errorf("sign with key %s: %w", sk.kid, err)
	}
	return string(out), nil
}

// claimsObject checks that text is a claims set of at most MaxClaimsJSON
// bytes that claims.Parse accepts: one I-JSON object, its member names
// unique at every depth, its time claims numbers. Duplicates are refused
// because verifiers disagree about which one wins, so the claims a platform
// reads could differ from those the caller checked; lone surrogates and
// invalid UTF-8 because verifiers replace or refuse them. Messages never
// quote more of the input than the start of a member name.
func (v *violations) claimsObject(field, text string) (*claims.Set, bool) {
	switch {
	case strings.TrimSpace(text) == "":
		v.add(field, "required: a JSON object")
		return nil, false
	case len(text) > MaxClaimsJSON:
		v.add(field, "must be at most %d bytes, got %d", MaxClaimsJSON, len(text))
		return nil, false
	}
	set, err := claims.Parse(text)
	if err != nil {
		v.add(field, "%v", err)
		return nil, false
	}
	return set, true
}

// lifetime checks an optional lifetime: whole seconds, from one second to
// limit. ok is false when it is absent or invalid.
func (v *violations) lifetime(field string, d *durationpb.Duration, limit time.Duration) (lifetime time.Duration, ok bool) {
	if d == nil {
		return 0, false
	}
	switch {
	case d.CheckValid() != nil:
		v.add(field, "is not a valid duration")
	case d.GetNanos() != 0:
		v.add(field, "must be whole seconds")
	case d.GetSeconds() < 1:
		v.add(field, "must be positive")
	case d.GetSeconds() > int64(limit/time.Second):
		v.add(field, "must be at most %s", limit)
	default:
		return d.AsDuration(), true
	}
	return 0, false
}

// dateClaim is a NumericDate claim the service adds to a payload.
type dateClaim struct {
	name  string
	value int64
}

// appendDates adds the claims to obj, a compact JSON object, in order.
func appendDates(obj []byte, dates []dateClaim) []byte {
	if len(dates) == 0 {
		return obj
	}
	obj = obj[:len(obj)-1] // the closing brace
	for _, d := range dates {
		if len(obj) > 1 {
			obj = append(obj, ',')
		}
		obj = fmt.Appendf(obj, "%q:%d", d.name, d.value)
	}
	return append(obj, '}')
}
