// Package platform is ltikeys' outbound side: the requests it makes to
// LMS platforms. It owns the HTTP client they go through and the LTI
// Advantage token exchange (1EdTech Security Framework 1.1, section 4.1:
// a client_credentials grant authenticated with an RFC 7523 client
// assertion), with a cache of the tokens it obtains; and the platforms'
// own keys, fetched from their jwks_uri and cached, with the verification
// of the tokens they sign (an LTI launch's id_token).
//
// It knows nothing of gRPC, storage or ltikeys' keys: the caller resolves
// the registration, signs the assertion (TokenRequest.Assertion), gives
// the expectations a platform's token must meet, and turns errors into
// gRPC status, as described below.
//
// # The HTTP client
//
// NewHTTPClient builds the one *http.Client for every outbound request,
// token exchanges and fetches of platforms' key sets alike: https only
// (http only to an endpoint whose host is itself loopback), timeouts on
// connecting, the TLS handshake and the whole request, a bound on response
// bodies that fails rather than truncates, no redirects, HTTPS_PROXY and
// NO_PROXY honoured, and a User-Agent of "ltikeys/<version>".
//
// Its address guard runs at dial time, on the addresses the host resolves
// to, and the connection goes to an address it checked, so a name cannot
// pass the check with one answer and connect with another. It refuses
// every address that is not global unicast: private (10/8, 172.16/12,
// 192.168/16, fc00::/7), loopback, link-local (169.254/16, where cloud
// metadata services live, and fe80::/10), shared (100.64/10), the
// unspecified address, multicast and broadcast, and the other
// special-purpose blocks of the IANA registries. A name with one refused
// address among several is refused as a whole. Loopback is allowed when
// the endpoint's own host is localhost or a loopback literal (a platform
// on a developer's machine), never when another name resolves to it.
// HTTPOptions.AllowPrivate lifts the guard for every class but
// unspecified, multicast and broadcast.
//
// Through a proxy, the proxy's address is not checked (the operator chose
// it) and the proxy, not ltikeys, resolves the target's name: the guard
// then checks only a target written as an IP literal, and egress policy
// for names is the proxy's to enforce.
//
// # Tokens and their cache
//
// TokenClient.Token posts grant_type=client_credentials, the assertion
// and the requested scopes to the registration's token endpoint, once per
// outbound request with a fresh assertion (platforms refuse a jti seen
// before), and validates the answer strictly: access_token a bearer token
// (RFC 6750 characters, at most MaxAccessTokenBytes), token_type Bearer
// in any case, expires_in a positive whole number of seconds written as a
// JSON number (a string such as "3600" is refused; a value above
// MaxTokenLifetime is read as MaxTokenLifetime), scope optional (absent,
// it is the scopes requested).
//
// Tokens are cached in memory, per registration id, token endpoint,
// signing key (TokenRequest.KeyID) and scope set (NormalizeScopes: sorted,
// without repeats), until their
// expiry less the expiry margin (default one minute); a token that does
// not outlive the margin is returned but not cached. The expiry counts
// from when the request was sent. The cache holds at most MaxTokens
// tokens; when it is full, stale tokens go first, then the one that goes
// stale soonest. Errors are never cached.
//
// Concurrent calls for the same key share one outbound request, which
// runs detached from the callers' cancellation and bounded by the fetch
// timeout, so that one caller giving up fails no other; every caller
// still returns when its own context ends. Invalidate drops a
// registration's tokens and keeps the exchanges in flight for it from
// caching theirs; call it when the registration's key, client_id or token
// endpoint changes and when it is deleted.
//
// # Platform key sets
//
// A KeySetCache holds platforms' JWK Sets in memory, one per jwks_uri
// (every registration naming the URI shares it), at most MaxKeySets of
// them (past that, the one used least recently is forgotten), each
// fetched through the client above.
//
// A set is fresh for its response's Cache-Control max-age, less its Age,
// bounded to [MinFreshness, MaxFreshness] (5 minutes and 24 hours by
// default; no-store and no-cache mean the minimum), and for Freshness (an
// hour) when the response gives none; freshness counts from when the
// request was sent. Refreshing is done ahead, on access, rather than by
// a loop the server would run: a lookup that a set answers past three
// quarters of its freshness starts a refresh in the background and is
// answered at once, so a set in use is replaced before it expires and
// the lookups on it never wait. A set not used in that last quarter
// expires, and the next lookup waits for a fetch.
//
// KeySetCache.Key(ctx, uri, kid) answers from a fresh set without
// touching the network. It waits for a fetch when the URI has no set
// (cold) or an expired one, and when the set has no key with the kid: a
// refetch that unknown kids cause is made at most once per Cooldown (30
// seconds by default) per URI, so a flood of tokens with made-up kids
// costs the platform one request per cooldown, and a rotation is picked
// up by the first token that names the new key. Callers waiting on one
// URI share one fetch (single flight), which runs detached from their
// cancellation, bounded by FetchTimeout; each caller still returns when
// its own context ends.
//
// When a fetch fails (no answer, a timeout, a status other than 200, a
// set that is malformed or larger than the client's limit, a refused
// address), the last good set keeps serving for up to MaxStale (24 hours)
// past its expiry, without the callers waiting: the next attempt is made
// in the background once a cooldown has passed since the last. A failure
// episode, from the first failed fetch to the next good one, logs one
// warning; the KeySetObserver sees every fetch and every stale key served. With
// no set to serve, Key fails with an *UnavailableError, whose RetryAfter,
// within the cooldown of the last failed attempt, is the time until the
// next may be made.
//
// Sets are parsed strictly, with jwx: the body is one JSON object, with
// no member named twice, whose "keys" array has at most MaxKeys entries
// (100). Only keys usable to verify a platform's signature are kept: kty
// RSA, public (no private members), a kid, use absent or "sig", key_ops
// absent or with "verify", alg absent or an RSA signature algorithm, a
// modulus of 2048 to 8192 bits. Other keys (EC, symmetric, encryption
// keys…) are ignored, and so are keys that share a kid, as ambiguous. A
// set with no usable key is malformed. LTI requires RS256, so RSA keys
// are the only ones supported.
//
// KeySetObserver, separate from Observer, receives the fetches (by
// outcome, one of KeySetOutcomes, and FetchReason) and the age of the
// sets keys are served from, flagged when stale; its labels are fixed,
// never a URL or a kid.
//
// # Verifying platform tokens
//
// VerifyToken verifies a JWT a platform signed against the key a
// KeySource gives for its kid (KeySetCache.Source binds a registration's
// jwks_uri) and the Expectations of the registration: issuer, client_id,
// the nonce issued at login, the deployment ids allowed (none: any), a
// leeway (a minute by default) and a clock. Its checks, in order, each
// failing with a *VerificationError of its own Reason:
//
//   - MALFORMED_TOKEN: more than MaxPlatformTokenBytes (64 KiB, checked
//     before parsing); not a JWS in compact serialization (the JSON
//     serializations, and so several signatures, are refused); a header
//     or payload that is not base64url of a JSON object with distinct
//     member names; crit or b64 in the header. jku, jwk, x5u and x5c are
//     ignored: keys come only from the KeySource.
//   - ALG_NOT_ALLOWED: alg is not RS256, RS384, RS512, PS256, PS384 or
//     PS512 (none and HMAC never are, so HS256 keyed with the platform's
//     public key gets nowhere); or the key is not an RSA key; or its alg
//     member names another algorithm than the header's (a key without
//     one allows RS256 only).
//   - KID_MISSING: the header has no kid.
//   - KID_UNKNOWN: the KeySource has no key with it (ErrUnknownKey).
//     Any other error of the KeySource (an *UnavailableError, the
//     context's) is returned as it is, not as a *VerificationError.
//   - BAD_SIGNATURE: the signature does not verify with that key.
//   - ISSUER_MISMATCH: iss is not the issuer, byte for byte.
//   - AUDIENCE_MISMATCH: aud, a string or an array of strings, neither
//     is nor contains the client_id.
//   - AZP_MISSING: aud has several values and azp is absent.
//   - AZP_MISMATCH: azp is present and not the client_id.
//   - EXP_MISSING, EXPIRED: exp is required, a NumericDate, and after
//     now less the leeway.
//   - IAT_MISSING, ISSUED_IN_FUTURE: iat is required, a NumericDate, and
//     not after now plus the leeway.
//   - NOT_YET_VALID: nbf, if present, is a NumericDate not after now plus
//     the leeway.
//   - NONCE_MISMATCH: nonce is not the expected one (compared in constant
//     time).
//   - DEPLOYMENT_ID_MISSING, DEPLOYMENT_ID_NOT_ALLOWED: the LTI
//     deployment_id claim is a non-empty string, and one of those allowed
//     if the registration lists any.
//   - MESSAGE_TYPE_MISSING, VERSION_MISSING: the LTI message_type and
//     version claims are non-empty strings.
//
// A verified token's Claims hold the payload as signed (JSON) and the
// fields read from it: deployment_id, message_type, version, nonce, exp,
// iat, and the kid and alg used. VerifyToken does not remember nonces:
// accepting each (issuer, nonce) once is the caller's.
//
// ParseUnverified reads iss, aud and azp without verifying anything, to
// find the registration a token claims to be for when the caller names
// none; what it returns is untrusted until VerifyToken has checked the
// token against that registration.
//
// # Errors
//
// Every error says which kind it is, for errors.Is and errors.As, and the
// intended gRPC mapping is, checked in this order:
//
//   - the caller's context ending: ctx.Err() itself, CANCELED or
//     DEADLINE_EXCEEDED;
//   - ErrInvalidRequest (*RequestError, naming the TokenRequest field):
//     INVALID_ARGUMENT, naming the matching request field;
//   - ErrUnavailable (*UnavailableError: no connection, a timeout, 429,
//     5xx, or an answer that is malformed, ErrMalformed, or too large,
//     ErrResponseTooLarge; and an *OAuthError with code
//     temporarily_unavailable or server_error; for key sets, any status
//     but 200 and no set to serve): UNAVAILABLE, with a RetryInfo of
//     UnavailableError.RetryAfter when the platform sent Retry-After or
//     the key set cache gave one;
//   - *OAuthError with code invalid_scope: INVALID_ARGUMENT, as the
//     caller's scopes are at fault, with the same details as below;
//   - any other *OAuthError (the platform's refusal: invalid_client,
//     invalid_grant, unauthorized_client…): FAILED_PRECONDITION, with the
//     sanitised code and description and the HTTP status in the message
//     or an ErrorInfo: the registration or the platform's configuration
//     must change before a retry can succeed;
//   - ErrInvalidToken (*VerificationError, from VerifyToken and
//     ParseUnverified): INVALID_ARGUMENT, with a google.rpc.ErrorInfo
//     whose reason is VerificationError.Reason;
//   - ErrRefused (*AddressError, *RedirectError, a token endpoint or
//     jwks_uri that is not https): FAILED_PRECONDITION, naming the
//     registration's token_endpoint or jwks_uri;
//   - ErrUnknownKey, from KeySetCache.Key only (VerifyToken turns it
//     into KID_UNKNOWN): the set has no usable key with the kid;
//   - anything else, which is the error of the caller's assertion
//     function wrapped (a storage error keeps its kind), or Expectations
//     VerifyToken cannot use (no issuer, client_id or nonce): as the
//     caller maps its own errors, INTERNAL for a fault.
//
// No error, log line, String or LogValue of this package contains an
// access token, a client assertion, a platform's token or the values of
// its claims (but the times of exp, iat and nbf), or any of a response
// body but the sanitised OAuth error code and description; those are
// bounded, stripped of control and format characters, and redacted of any
// part of the assertion a platform echoed. Observer and KeySetObserver
// events carry only fixed labels, never registration ids, URLs or kids;
// the optional Loggers get one debug line per exchange or key set fetch,
// and the key set cache one warning per failure episode, naming the
// jwks_uri.
package platform
