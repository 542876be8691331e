// Package platform is ltikeys' outbound side: the requests it makes to
// LMS platforms. It owns the HTTP client they go through and the LTI
// Advantage token exchange (1EdTech Security Framework 1.1, section 4.1:
// a client_credentials grant authenticated with an RFC 7523 client
// assertion), with a cache of the tokens it obtains.
//
// It knows nothing of gRPC, storage or keys: the caller resolves the
// registration, signs the assertion (TokenRequest.Assertion) and turns
// errors into gRPC status, as described below.
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
//     temporarily_unavailable or server_error): UNAVAILABLE, with a
//     RetryInfo of UnavailableError.RetryAfter when the platform sent
//     Retry-After;
//   - *OAuthError with code invalid_scope: INVALID_ARGUMENT, as the
//     caller's scopes are at fault, with the same details as below;
//   - any other *OAuthError (the platform's refusal: invalid_client,
//     invalid_grant, unauthorized_client…): FAILED_PRECONDITION, with the
//     sanitised code and description and the HTTP status in the message
//     or an ErrorInfo: the registration or the platform's configuration
//     must change before a retry can succeed;
//   - ErrRefused (*AddressError, *RedirectError, a token endpoint that is
//     not https): FAILED_PRECONDITION, naming the registration's
//     token_endpoint;
//   - anything else, which is the error of the caller's assertion
//     function wrapped (a storage error keeps its kind): as the caller maps
//     its own errors, INTERNAL for a fault.
//
// No error, log line, String or LogValue of this package contains an
// access token, a client assertion, or any of a response body but the
// sanitised OAuth error code and description; those are bounded, stripped
// of control and format characters, and redacted of any part of the
// assertion a platform echoed. Observer events carry only fixed labels,
// never registration ids or URLs; the optional Logger gets one debug line
// per exchange.
package platform
