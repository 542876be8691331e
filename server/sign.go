package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// Limits of the signing methods.
const (
	// MaxClaimsJSON bounds SignJwt's claims_json, in bytes. LTI messages,
	// deep-linking responses included, are far smaller; the bound keeps a
	// caller from making the service parse and sign arbitrary volumes.
	MaxClaimsJSON = 64 << 10
	// MaxJWTLifetime bounds SignJwt's expires_in. A signature is the
	// registration's word to a platform: a longer-lived one belongs in a
	// separate, deliberate design, not in a default.
	MaxJWTLifetime = 24 * time.Hour
	// DefaultAssertionLifetime is a client assertion's lifetime when the
	// request gives none: long enough for one token request and its retries.
	DefaultAssertionLifetime = 5 * time.Minute
	// MaxAssertionLifetime bounds CreateClientAssertion's expires_in.
	MaxAssertionLifetime = time.Hour
)

// SignJwt implements ltikeysv1.KeyServiceServer.
//
// The protected header is built here, never from the request, and is
// exactly {"alg":"RS256","kid":…,"typ":"JWT"}. The payload is claims_json
// compacted (insignificant whitespace removed, member order and values
// kept), with "iat" and "exp" appended when expires_in is set. Nothing is
// signed unless the whole request is valid.
func (s *KeyService) SignJwt(ctx context.Context, req *ltikeysv1.SignJwtRequest) (*ltikeysv1.SignJwtResponse, error) {
	var v violations
	names, ok := v.claimsObject("claims_json", req.GetClaimsJson())
	lifetime, hasLifetime := v.lifetime("expires_in", req.GetExpiresIn(), MaxJWTLifetime)
	if ok && hasLifetime {
		for _, name := range []string{"iat", "exp"} {
			if names[name] {
				v.add("claims_json", "must not contain %q when expires_in is set: the service sets iat and exp", name)
			}
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}

	sk, err := s.signingKey(ctx, "SignJwt", req.GetRegistrationId(), req.GetIssuerClient(), req.GetLookup() != nil)
	if err != nil {
		return nil, err
	}
	var payload bytes.Buffer
	if err := json.Compact(&payload, []byte(req.GetClaimsJson())); err != nil {
		// claimsObject accepted it: compacting cannot fail.
		return nil, storeError(ctx, s.log, "SignJwt", fmt.Errorf("compact claims: %w", err))
	}
	if hasLifetime {
		iat := s.now().Unix()
		appendTimes(&payload, iat, iat+int64(lifetime/time.Second))
	}
	token, err := sk.sign(payload.Bytes())
	if err != nil {
		return nil, storeError(ctx, s.log, "SignJwt", err)
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
	lifetime, ok := v.lifetime("expires_in", req.GetExpiresIn(), MaxAssertionLifetime)
	if !ok {
		lifetime = DefaultAssertionLifetime
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
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return nil, storeError(ctx, s.log, "CreateClientAssertion", fmt.Errorf("jti: %w", err))
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
		return nil, storeError(ctx, s.log, "CreateClientAssertion", fmt.Errorf("marshal claims: %w", err))
	}
	token, err := sk.sign(payload)
	if err != nil {
		return nil, storeError(ctx, s.log, "CreateClientAssertion", err)
	}
	return &ltikeysv1.CreateClientAssertionResponse{
		ClientAssertion: token,
		Kid:             sk.kid,
		ExpireTime:      timestamppb.New(exp),
	}, nil
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

// claimsObject checks that text is one JSON object of at most MaxClaimsJSON
// bytes whose top-level member names are unique, and returns those names.
// Duplicates are refused because verifiers disagree about which one wins,
// so the claims a platform reads could differ from those the caller
// checked. Messages never quote the input.
func (v *violations) claimsObject(field, text string) (map[string]bool, bool) {
	switch {
	case strings.TrimSpace(text) == "":
		v.add(field, "required: a JSON object")
		return nil, false
	case len(text) > MaxClaimsJSON:
		v.add(field, "must be at most %d bytes, got %d", MaxClaimsJSON, len(text))
		return nil, false
	}
	if !json.Valid([]byte(text)) {
		var syntax *json.SyntaxError
		if err := json.Unmarshal([]byte(text), new(any)); errors.As(err, &syntax) {
			v.add(field, "is not valid JSON (at byte %d)", syntax.Offset)
		} else {
			v.add(field, "is not valid JSON")
		}
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(text))
	tok, err := dec.Token()
	if err != nil {
		v.add(field, "is not valid JSON")
		return nil, false
	}
	if tok != json.Delim('{') {
		v.add(field, "must be a JSON object, got %s", jsonKind(tok))
		return nil, false
	}
	names := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			v.add(field, "is not valid JSON")
			return nil, false
		}
		if names[name] {
			v.add(field, "a member name appears more than once")
			return nil, false
		}
		names[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			v.add(field, "is not valid JSON")
			return nil, false
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		v.add(field, "is not valid JSON")
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		v.add(field, "must hold exactly one JSON value")
		return nil, false
	}
	return names, true
}

// jsonKind names the kind of JSON value a first token starts.
func jsonKind(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '[' {
			return "an array"
		}
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "something else"
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

// appendTimes adds "iat" and "exp" members to the compact JSON object in
// buf.
func appendTimes(buf *bytes.Buffer, iat, exp int64) {
	buf.Truncate(buf.Len() - 1) // the closing brace
	if buf.Len() > 1 {
		buf.WriteByte(',')
	}
	fmt.Fprintf(buf, `"iat":%d,"exp":%d}`, iat, exp)
}
