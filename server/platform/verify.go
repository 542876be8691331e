package platform

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Limits and defaults of VerifyToken.
const (
	// MaxPlatformTokenBytes bounds a token VerifyToken or ParseUnverified
	// reads; a longer one is refused before it is parsed.
	MaxPlatformTokenBytes = 64 << 10
	// DefaultLeeway is how far exp and iat may be off the verifier's
	// clock.
	DefaultLeeway = time.Minute
)

// The LTI claims VerifyToken requires (LTI Core 1.3, section 5.3).
const (
	ClaimDeploymentID = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
	ClaimMessageType  = "https://purl.imsglobal.org/spec/lti/claim/message_type"
	ClaimVersion      = "https://purl.imsglobal.org/spec/lti/claim/version"
)

// ErrInvalidToken: a platform's token failed a check of VerifyToken or
// could not be parsed (*VerificationError).
var ErrInvalidToken = errors.New("invalid platform token")

// The reasons of a VerificationError, one per check, in the order
// VerifyToken makes them. They are machine-readable and stable, for a
// google.rpc.ErrorInfo.
const (
	// ReasonMalformedToken: not a JWS in compact serialization with one
	// signature, a JSON object for header and payload (each member named
	// once), or larger than MaxPlatformTokenBytes; or a header with crit
	// or b64, which are not supported.
	ReasonMalformedToken = "MALFORMED_TOKEN"
	// ReasonAlgNotAllowed: the header's alg is not an RSA signature
	// algorithm (none and HMAC never are), or the platform's key is not an
	// RSA key, or its alg member names another algorithm (without one,
	// only RS256 is allowed).
	ReasonAlgNotAllowed = "ALG_NOT_ALLOWED"
	// ReasonKIDMissing: the header has no kid.
	ReasonKIDMissing = "KID_MISSING"
	// ReasonKIDUnknown: the platform's key set has no usable key with the
	// header's kid.
	ReasonKIDUnknown = "KID_UNKNOWN"
	// ReasonBadSignature: the signature does not verify with that key.
	ReasonBadSignature = "BAD_SIGNATURE"
	// ReasonIssuerMismatch: iss is missing or not the expected issuer,
	// byte for byte.
	ReasonIssuerMismatch = "ISSUER_MISMATCH"
	// ReasonAudienceMismatch: aud is missing, not a string or an array of
	// strings, or neither is nor contains the client_id.
	ReasonAudienceMismatch = "AUDIENCE_MISMATCH"
	// ReasonAZPMissing: aud has several values and azp is missing.
	ReasonAZPMissing = "AZP_MISSING"
	// ReasonAZPMismatch: azp is present and not the client_id.
	ReasonAZPMismatch = "AZP_MISMATCH"
	// ReasonExpMissing: exp is missing or not a NumericDate.
	ReasonExpMissing = "EXP_MISSING"
	// ReasonExpired: exp is not after now less the leeway.
	ReasonExpired = "EXPIRED"
	// ReasonIATMissing: iat is missing or not a NumericDate.
	ReasonIATMissing = "IAT_MISSING"
	// ReasonIssuedInFuture: iat is after now plus the leeway.
	ReasonIssuedInFuture = "ISSUED_IN_FUTURE"
	// ReasonNotYetValid: nbf, which is optional, is not a NumericDate or
	// is after now plus the leeway.
	ReasonNotYetValid = "NOT_YET_VALID"
	// ReasonNonceMismatch: nonce is missing, not a string, or not the
	// expected nonce.
	ReasonNonceMismatch = "NONCE_MISMATCH"
	// ReasonDeploymentIDMissing: the LTI deployment_id claim is missing or
	// not a non-empty string.
	ReasonDeploymentIDMissing = "DEPLOYMENT_ID_MISSING"
	// ReasonDeploymentIDNotAllowed: the deployment_id is not one of those
	// allowed.
	ReasonDeploymentIDNotAllowed = "DEPLOYMENT_ID_NOT_ALLOWED"
	// ReasonMessageTypeMissing: the LTI message_type claim is missing or
	// not a non-empty string.
	ReasonMessageTypeMissing = "MESSAGE_TYPE_MISSING"
	// ReasonVersionMissing: the LTI version claim is missing or not a
	// non-empty string.
	ReasonVersionMissing = "VERSION_MISSING"
)

// Reasons lists every reason of a VerificationError, in the order of the
// checks.
var Reasons = []string{
	ReasonMalformedToken, ReasonAlgNotAllowed, ReasonKIDMissing, ReasonKIDUnknown,
	ReasonBadSignature, ReasonIssuerMismatch, ReasonAudienceMismatch, ReasonAZPMissing,
	ReasonAZPMismatch, ReasonExpMissing, ReasonExpired, ReasonIATMissing,
	ReasonIssuedInFuture, ReasonNotYetValid, ReasonNonceMismatch,
	ReasonDeploymentIDMissing, ReasonDeploymentIDNotAllowed, ReasonMessageTypeMissing,
	ReasonVersionMissing,
}

// VerificationError is a platform's token that failed a check. Neither
// field ever holds the token, a part of it or a claim's value, except the
// times of exp, iat and nbf.
type VerificationError struct {
	// Reason is the check that failed: one of the Reason constants.
	Reason string
	// Detail says what is wrong, for people.
	Detail string
}

func (e *VerificationError) Error() string {
	return "platform token rejected: " + e.Reason + ": " + e.Detail
}

// Is makes a *VerificationError match ErrInvalidToken.
func (e *VerificationError) Is(target error) bool { return target == ErrInvalidToken }

func reject(reason, format string, args ...any) *VerificationError {
	return &VerificationError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// KeySource gives the platform key a token's kid names: a KeySetCache
// with a registration's jwks_uri bound (KeySetCache.Source), or keys a
// test holds.
type KeySource interface {
	// Key returns the key with kid. It returns an error matching
	// ErrUnknownKey when there is none; any other error (an
	// *UnavailableError, say) is the caller's to map, and VerifyToken
	// returns it as it is.
	Key(ctx context.Context, kid string) (jwk.Key, error)
}

// KeySourceFunc is a function that is a KeySource.
type KeySourceFunc func(ctx context.Context, kid string) (jwk.Key, error)

// Key calls f.
func (f KeySourceFunc) Key(ctx context.Context, kid string) (jwk.Key, error) { return f(ctx, kid) }

// Expectations are what a platform's token must say: the registration's
// issuer and client_id, the nonce the tool issued at login, and the
// deployment ids the registration allows.
type Expectations struct {
	// Issuer is the registration's issuer, which iss must equal byte for
	// byte. Required.
	Issuer string
	// ClientID is the client_id, which aud must be or contain. Required.
	ClientID string
	// Nonce is the nonce the token's nonce claim must equal. Required.
	Nonce string
	// DeploymentIDs, if not empty, are the deployment_ids allowed.
	DeploymentIDs []string
	// Leeway is how far exp, iat and nbf may be off Now; 0 means
	// DefaultLeeway.
	Leeway time.Duration
	// Now is the clock exp, iat and nbf are checked against; nil means
	// time.Now.
	Now func() time.Time
}

// Claims are the claims of a verified token. Their String, GoString and
// LogValue leave out the payload, the subject and the nonce.
type Claims struct {
	// JSON is the payload the platform signed: a JSON object, as it came.
	JSON []byte
	// Issuer, Audience, AuthorizedParty and Subject are iss, aud (as a
	// list), azp and sub ("" when absent).
	Issuer          string
	Audience        []string
	AuthorizedParty string
	Subject         string
	// Nonce is the nonce claim, which equals the expected one.
	Nonce string
	// DeploymentID, MessageType and Version are the LTI claims.
	DeploymentID string
	MessageType  string
	Version      string
	// ExpiresAt and IssuedAt are exp and iat.
	ExpiresAt time.Time
	IssuedAt  time.Time
	// KeyID is the kid of the key that verified the signature, and
	// Algorithm the header's alg.
	KeyID     string
	Algorithm string
}

func (c *Claims) String() string {
	return fmt.Sprintf("platform.Claims{MessageType: %q, Version: %q, KeyID: %q, Algorithm: %s, ExpiresAt: %s, IssuedAt: %s}",
		c.MessageType, c.Version, c.KeyID, c.Algorithm, c.ExpiresAt.Format(time.RFC3339), c.IssuedAt.Format(time.RFC3339))
}

// GoString keeps %#v from printing the payload.
func (c *Claims) GoString() string { return c.String() }

// LogValue keeps log/slog from logging the payload.
func (c *Claims) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("message_type", c.MessageType),
		slog.String("version", c.Version),
		slog.String("kid", c.KeyID),
		slog.String("alg", c.Algorithm),
		slog.Time("exp", c.ExpiresAt),
		slog.Time("iat", c.IssuedAt),
	)
}

// UnverifiedClaims are what ParseUnverified reads of a token, to find the
// registration it is for. Nothing in them is to be trusted until
// VerifyToken has verified the token against that registration.
type UnverifiedClaims struct {
	// Issuer is iss, "" if absent.
	Issuer string
	// Audience is aud as a list, nil if absent.
	Audience []string
	// AuthorizedParty is azp, "" if absent.
	AuthorizedParty string
}

// ParseUnverified reads iss, aud and azp of a platform's token WITHOUT
// verifying it: they are untrusted, fit only to find the registration the
// token claims to be for, whose expectations VerifyToken then checks.
// Its errors are *VerificationError of ReasonMalformedToken, for a token
// that is not a well-formed compact JWS (as VerifyToken has it) or whose
// iss, aud or azp have the wrong JSON type.
func ParseUnverified(token string) (*UnverifiedClaims, error) {
	t, err := parseCompact(token)
	if err != nil {
		return nil, err
	}
	var out UnverifiedClaims
	var ok bool
	if out.Issuer, ok = optionalString(t.claims, "iss"); !ok {
		return nil, reject(ReasonMalformedToken, "iss is not a string")
	}
	if out.AuthorizedParty, ok = optionalString(t.claims, "azp"); !ok {
		return nil, reject(ReasonMalformedToken, "azp is not a string")
	}
	if raw, present := t.claims["aud"]; present {
		if out.Audience, ok = audience(raw); !ok {
			return nil, reject(ReasonMalformedToken, "aud is not a string or an array of strings")
		}
	}
	return &out, nil
}

// VerifyToken verifies token, a JWT a platform signed (an LTI launch's
// id_token, say), against the platform key keys gives for its kid and the
// expectations want, and returns its claims.
//
// It checks, in this order, failing with a *VerificationError of the
// first check's reason: the size, and that it is a compact JWS with a
// JSON object as header and payload, without crit or b64 (jku, jwk, x5u
// and x5c are ignored: only keys gives keys); alg an RSA signature
// algorithm; kid present; the key of that kid (keys' ErrUnknownKey is
// ReasonKIDUnknown), an RSA key whose alg member, if any, is the
// header's alg (without one, only RS256); the signature; iss; aud and
// azp; exp, iat and nbf within the leeway; nonce; the LTI deployment_id,
// message_type and version claims.
//
// Any other error of keys (an *UnavailableError from a KeySetCache, or
// ctx's) is returned as it is, not as a *VerificationError. A want
// without Issuer, ClientID or Nonce, or with a negative Leeway, is the
// caller's error and fails at once.
func VerifyToken(ctx context.Context, token string, keys KeySource, want Expectations) (*Claims, error) {
	switch {
	case want.Issuer == "":
		return nil, errors.New("platform: verify token: Expectations.Issuer is required")
	case want.ClientID == "":
		return nil, errors.New("platform: verify token: Expectations.ClientID is required")
	case want.Nonce == "":
		return nil, errors.New("platform: verify token: Expectations.Nonce is required")
	case want.Leeway < 0:
		return nil, errors.New("platform: verify token: Expectations.Leeway must not be negative")
	case keys == nil:
		return nil, errors.New("platform: verify token: a KeySource is required")
	}
	leeway := cmpOr(want.Leeway, DefaultLeeway)
	now := time.Now
	if want.Now != nil {
		now = want.Now
	}

	t, err := parseCompact(token)
	if err != nil {
		return nil, err
	}
	alg, ok := optionalString(t.header, "alg")
	switch {
	case !ok || alg == "":
		return nil, reject(ReasonAlgNotAllowed, "the header has no alg")
	case !rsaAlgorithms[jwa.SignatureAlgorithm(alg)]:
		return nil, reject(ReasonAlgNotAllowed, "alg %s is not an RSA signature algorithm", algName(alg))
	}
	kid, ok := optionalString(t.header, "kid")
	if !ok || kid == "" {
		return nil, reject(ReasonKIDMissing, "the header has no kid")
	}

	key, err := keys.Key(ctx, kid)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return nil, reject(ReasonKIDUnknown, "the platform's key set has no usable key with the token's kid")
	case err != nil:
		return nil, err
	case key == nil:
		return nil, reject(ReasonKIDUnknown, "the platform's key set has no usable key with the token's kid")
	}
	if _, isRSA := key.(jwk.RSAPublicKey); !isRSA {
		return nil, reject(ReasonAlgNotAllowed, "the platform's key with that kid is not an RSA public key")
	}
	keyAlg := key.Algorithm().String()
	switch {
	case keyAlg == "" && alg != string(jwa.RS256):
		return nil, reject(ReasonAlgNotAllowed, "alg %s, but the platform's key has no alg member, which allows RS256 only", alg)
	case keyAlg != "" && keyAlg != alg:
		return nil, reject(ReasonAlgNotAllowed, "alg %s, but the platform's key is for %s", alg, algName(keyAlg))
	}
	// The header and payload checked above are the ones signed: jws
	// verifies over the same segments, decoded the same way.
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKey(jwa.SignatureAlgorithm(alg), key), jws.WithValidateKey(true))
	if err != nil || !bytes.Equal(payload, t.payload) {
		return nil, reject(ReasonBadSignature, "the signature does not verify with the platform's key")
	}

	c := &Claims{JSON: t.payload, KeyID: kid, Algorithm: alg}
	if err := checkClaims(c, t.claims, want, now(), leeway); err != nil {
		return nil, err
	}
	return c, nil
}

// checkClaims makes the claim checks of VerifyToken, in order, filling c.
func checkClaims(c *Claims, claims map[string]json.RawMessage, want Expectations, now time.Time, leeway time.Duration) error {
	var ok bool
	if c.Issuer, ok = optionalString(claims, "iss"); !ok || c.Issuer != want.Issuer {
		return reject(ReasonIssuerMismatch, "iss is missing or not the registration's issuer")
	}

	raw, present := claims["aud"]
	if !present {
		return reject(ReasonAudienceMismatch, "aud is missing")
	}
	if c.Audience, ok = audience(raw); !ok {
		return reject(ReasonAudienceMismatch, "aud is not a string or an array of strings")
	}
	if !slices.Contains(c.Audience, want.ClientID) {
		return reject(ReasonAudienceMismatch, "aud does not contain the registration's client_id")
	}
	_, azpPresent := claims["azp"]
	c.AuthorizedParty, ok = optionalString(claims, "azp")
	switch {
	case !ok:
		return reject(ReasonAZPMismatch, "azp is not a string")
	case len(c.Audience) > 1 && !azpPresent:
		return reject(ReasonAZPMissing, "aud has %d values and there is no azp", len(c.Audience))
	case azpPresent && c.AuthorizedParty != want.ClientID:
		return reject(ReasonAZPMismatch, "azp is not the registration's client_id")
	}

	if c.ExpiresAt, ok = numericDate(claims["exp"]); !ok {
		return reject(ReasonExpMissing, "exp is missing or not a NumericDate")
	}
	if !now.Add(-leeway).Before(c.ExpiresAt) {
		return reject(ReasonExpired, "exp %s is not after now (%s) less the leeway of %s",
			c.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if c.IssuedAt, ok = numericDate(claims["iat"]); !ok {
		return reject(ReasonIATMissing, "iat is missing or not a NumericDate")
	}
	if c.IssuedAt.After(now.Add(leeway)) {
		return reject(ReasonIssuedInFuture, "iat %s is after now (%s) plus the leeway of %s",
			c.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if raw, present := claims["nbf"]; present {
		nbf, ok := numericDate(raw)
		switch {
		case !ok:
			return reject(ReasonNotYetValid, "nbf is not a NumericDate")
		case nbf.After(now.Add(leeway)):
			return reject(ReasonNotYetValid, "nbf %s is after now (%s) plus the leeway of %s",
				nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
		}
	}

	c.Nonce, ok = optionalString(claims, "nonce")
	if !ok || c.Nonce == "" || subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(want.Nonce)) != 1 {
		return reject(ReasonNonceMismatch, "nonce is missing or not the one issued at login")
	}

	if c.DeploymentID, ok = optionalString(claims, ClaimDeploymentID); !ok || c.DeploymentID == "" {
		return reject(ReasonDeploymentIDMissing, "the LTI deployment_id claim is missing or not a non-empty string")
	}
	if len(want.DeploymentIDs) > 0 && !slices.Contains(want.DeploymentIDs, c.DeploymentID) {
		return reject(ReasonDeploymentIDNotAllowed, "the deployment_id is not one the registration allows")
	}
	if c.MessageType, ok = optionalString(claims, ClaimMessageType); !ok || c.MessageType == "" {
		return reject(ReasonMessageTypeMissing, "the LTI message_type claim is missing or not a non-empty string")
	}
	if c.Version, ok = optionalString(claims, ClaimVersion); !ok || c.Version == "" {
		return reject(ReasonVersionMissing, "the LTI version claim is missing or not a non-empty string")
	}
	if c.Subject, ok = optionalString(claims, "sub"); !ok {
		c.Subject = ""
	}
	return nil
}

// compactToken is a token split and decoded, not verified.
type compactToken struct {
	header  map[string]json.RawMessage
	payload []byte
	claims  map[string]json.RawMessage
}

// b64 is base64url without padding, refusing non-zero trailing bits, so
// that one token has one decoding.
var b64 = base64.RawURLEncoding.Strict()

// parseCompact checks the form of a token: at most MaxPlatformTokenBytes,
// three base64url segments, a header and a payload that are JSON objects
// with distinct member names, no crit or b64 in the header.
func parseCompact(token string) (*compactToken, error) {
	if len(token) > MaxPlatformTokenBytes {
		return nil, reject(ReasonMalformedToken, "the token is longer than %d bytes", MaxPlatformTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		if strings.HasPrefix(strings.TrimSpace(token), "{") {
			return nil, reject(ReasonMalformedToken, "the token is a JWS in JSON serialization; only the compact serialization is accepted")
		}
		return nil, reject(ReasonMalformedToken, "the token is not a JWS in compact serialization (three base64url parts)")
	}
	header, err := b64.DecodeString(parts[0])
	if err != nil || len(parts[0]) == 0 {
		return nil, reject(ReasonMalformedToken, "the header is not base64url")
	}
	hdr, err := objectMembers(header)
	if err != nil {
		return nil, reject(ReasonMalformedToken, "the header is not a JSON object with distinct member names")
	}
	for _, name := range []string{"crit", "b64"} {
		if _, present := hdr[name]; present {
			return nil, reject(ReasonMalformedToken, "the header has %s, which is not supported", name)
		}
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil || len(parts[1]) == 0 {
		return nil, reject(ReasonMalformedToken, "the payload is not base64url")
	}
	claims, err := objectMembers(payload)
	if err != nil {
		return nil, reject(ReasonMalformedToken, "the payload is not a JSON object with distinct member names")
	}
	// An empty signature is well-formed (alg none has one), and fails
	// later, at the alg check.
	if _, err := b64.DecodeString(parts[2]); err != nil {
		return nil, reject(ReasonMalformedToken, "the signature is not base64url")
	}
	return &compactToken{header: hdr, payload: payload, claims: claims}, nil
}

// optionalString returns the string member name of m: "" and true if it
// is absent, false if it is not a string (null included).
func optionalString(m map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := m[name]
	if !ok {
		return "", true
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// audience reads aud: a string, or a non-empty array of strings.
func audience(raw json.RawMessage) ([]string, bool) {
	var one string
	if len(raw) > 0 && raw[0] == '"' {
		if json.Unmarshal(raw, &one) != nil {
			return nil, false
		}
		return []string{one}, true
	}
	var many []json.RawMessage
	if json.Unmarshal(raw, &many) != nil || len(many) == 0 {
		return nil, false
	}
	out := make([]string, 0, len(many))
	for _, r := range many {
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, &one) != nil {
			return nil, false
		}
		out = append(out, one)
	}
	return out, true
}

// maxNumericDate bounds a NumericDate (the year 5138), so that the
// conversion to a time cannot overflow.
const maxNumericDate = 1e11

// numericDate reads a JWT NumericDate (RFC 7519, section 2): a JSON
// number of seconds since the epoch, possibly fractional, not negative.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || !(raw[0] >= '0' && raw[0] <= '9') {
		return time.Time{}, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// algName returns alg for a message if it looks like an algorithm name
// (short, letters and digits), and a placeholder otherwise: the header is
// the sender's, and its text is not repeated.
func algName(alg string) string {
	if len(alg) > 16 {
		return "(unrecognised)"
	}
	for i := 0; i < len(alg); i++ {
		c := alg[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '_') {
			return "(unrecognised)"
		}
	}
	return strconv.Quote(alg)
}
