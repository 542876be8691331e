package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults and limits of a TokenClient.
const (
	// DefaultExpiryMargin is how long before its expiry a cached token
	// stops being handed out, so that a caller never gets one that expires
	// while it is in use.
	DefaultExpiryMargin = time.Minute
	// DefaultMaxTokens bounds the number of cached tokens.
	DefaultMaxTokens = 10_000
	// DefaultMaxExchanges bounds the exchanges in flight at once, each a
	// signature and an outbound request that outlive their callers.
	DefaultMaxExchanges = 64
	// DefaultFetchTimeout bounds one exchange: signing the assertion and
	// the HTTP request.
	DefaultFetchTimeout = 15 * time.Second
	// MaxTokenLifetime bounds the lifetime taken from expires_in: a larger
	// value is read as this one. 1EdTech recommends an hour.
	MaxTokenLifetime = 24 * time.Hour
	// MaxScopes bounds the scopes of one request, and MaxScopeBytes the
	// length of each, so that cache keys stay small.
	MaxScopes     = 20
	MaxScopeBytes = 256
	// MaxAccessTokenBytes bounds the access token a platform may return.
	MaxAccessTokenBytes = 8 << 10
)

// The constant parameters of the token request (1EdTech Security
// Framework 1.1, section 4.1; RFC 7523, section 2.2).
const (
	grantType     = "client_credentials"
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// TokenRequest asks for an access token for one registration.
type TokenRequest struct {
	// RegistrationID names the registration; tokens are cached under it,
	// and Invalidate drops them by it. Required.
	RegistrationID string
	// TokenEndpoint is the registration's token endpoint URL. It is part
	// of the cache key too, so a changed endpoint never gets a token from
	// the old one.
	TokenEndpoint string
	// KeyID names the key that signs the assertions (its kid). It is part
	// of the cache key as well, so that once another key signs for the
	// registration (a rotation, in whichever process it was made) no token
	// obtained with the previous one is reused. Optional.
	KeyID string
	// Scopes are the scopes asked for, in any order, possibly repeated;
	// see NormalizeScopes.
	Scopes []string
	// Assertion signs a fresh client assertion (RFC 7523) for the token
	// endpoint: iss and sub the client_id, aud TokenEndpoint, a new jti.
	// It is called once per outbound request, never for a cached token,
	// with a context detached from the caller's (see Token). Required.
	Assertion func(ctx context.Context) (string, error)
}

// Token is an access token from a platform. Its String, GoString and
// LogValue leave AccessToken out, so printing or logging a Token does not
// leak it.
type Token struct {
	// AccessToken is the bearer token, to send as "Authorization: Bearer
	// <AccessToken>". Secret.
	AccessToken string
	// TokenType is always "Bearer".
	TokenType string
	// ExpiresAt is when the token expires: the time the request was sent
	// plus expires_in (at most MaxTokenLifetime).
	ExpiresAt time.Time
	// Scopes are the scopes granted: the platform's scope member split at
	// spaces, in its order; the scopes requested (normalised) when it
	// sent none, as RFC 6749, section 5.1, has it.
	Scopes []string
	// FromCache is true when the token came from the cache and false when
	// a request made for this call (or shared with it) fetched it.
	FromCache bool
}

func (t Token) String() string {
	return fmt.Sprintf("platform.Token{TokenType: %s, ExpiresAt: %s, Scopes: %q, FromCache: %t, AccessToken: [redacted]}",
		t.TokenType, t.ExpiresAt.Format(time.RFC3339), t.Scopes, t.FromCache)
}

// GoString keeps %#v from printing the access token.
func (t Token) GoString() string { return t.String() }

// LogValue keeps log/slog from logging the access token.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", t.TokenType),
		slog.Time("expires_at", t.ExpiresAt),
		slog.Any("scopes", t.Scopes),
		slog.Bool("from_cache", t.FromCache),
	)
}

func (t *Token) clone() *Token {
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	return &c
}

// TokenClientOptions configures NewTokenClient.
type TokenClientOptions struct {
	// HTTPClient sends the token requests: one NewHTTPClient made, whose
	// guarantees (address guard, no redirects, bounded bodies) the
	// exchange relies on. Required.
	HTTPClient *http.Client
	// Now is the clock of expiries; nil means time.Now.
	Now func() time.Time
	// ExpiryMargin is how long before ExpiresAt a cached token is dropped;
	// 0 means DefaultExpiryMargin. A token whose lifetime is not longer
	// than the margin is returned but not cached.
	ExpiryMargin time.Duration
	// MaxTokens bounds the cache; 0 means DefaultMaxTokens.
	MaxTokens int
	// MaxExchanges bounds the exchanges in flight at once, whatever their
	// keys: a call that would start one more fails with an
	// *UnavailableError, so that callers asking for ever new scope sets
	// cannot pile up signatures and requests to a platform. 0 means
	// DefaultMaxExchanges.
	MaxExchanges int
	// FetchTimeout bounds one exchange; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Observer, if not nil, receives cache lookups and exchange outcomes.
	Observer Observer
	// Logger, if not nil, gets one debug line per outbound exchange
	// (registration id, outcome, status, duration, the error message), and
	// nothing secret.
	Logger *slog.Logger
}

// TokenClient obtains access tokens from platforms' token endpoints and
// caches them. It is safe for concurrent use. See the package
// documentation for what it caches, for how long, and its errors.
type TokenClient struct {
	http         *http.Client
	now          func() time.Time
	margin       time.Duration
	max          int
	maxExchanges int
	fetchTimeout time.Duration
	obs          Observer
	log          *slog.Logger

	mu     sync.Mutex
	tokens map[cacheKey]cachedToken
	// calls are the exchanges in flight, one per key at most. Invalidate
	// removes a registration's, so a call after it starts a new one.
	calls map[cacheKey]*call
	// exchanges counts the exchanges running, those Invalidate removed
	// from calls included.
	exchanges int
}

// cacheKey names a cached token: the normalised scopes joined by spaces.
type cacheKey struct {
	registration, endpoint, kid, scopes string
}

type cachedToken struct {
	tok Token
	// staleAt is ExpiresAt less the margin: from then on tok is not
	// handed out.
	staleAt time.Time
}

// call is one exchange in flight and its result, which every caller
// waiting on it shares.
type call struct {
	done chan struct{}
	// stale, set under TokenClient.mu, keeps the result out of the cache:
	// the registration was invalidated while the exchange ran.
	stale bool

	// Set before done is closed.
	tok *Token
	err error
	// panicked is a panic of the exchange (in the caller's assertion
	// function, say), raised again in each waiter's goroutine, where the
	// caller's own recovery sees it.
	panicked *exchangePanic
}

// exchangePanic carries a panic of an exchange, and where it happened,
// to the callers waiting on it.
type exchangePanic struct {
	value any
	stack []byte
}

func (p *exchangePanic) String() string {
	return fmt.Sprintf("platform: token exchange panicked: %v\n\n%s", p.value, p.stack)
}

// NewTokenClient returns a TokenClient with an empty cache.
func NewTokenClient(opts TokenClientOptions) (*TokenClient, error) {
	switch {
	case opts.HTTPClient == nil:
		return nil, errors.New("platform: token client: HTTPClient is required (see NewHTTPClient)")
	case opts.ExpiryMargin < 0:
		return nil, errors.New("platform: token client: ExpiryMargin must not be negative")
	case opts.MaxTokens < 0:
		return nil, errors.New("platform: token client: MaxTokens must not be negative")
	case opts.MaxExchanges < 0:
		return nil, errors.New("platform: token client: MaxExchanges must not be negative")
	case opts.FetchTimeout < 0:
		return nil, errors.New("platform: token client: FetchTimeout must not be negative")
	}
	c := &TokenClient{
		http:         opts.HTTPClient,
		now:          opts.Now,
		margin:       cmpOr(opts.ExpiryMargin, DefaultExpiryMargin),
		max:          cmpOr(opts.MaxTokens, DefaultMaxTokens),
		maxExchanges: cmpOr(opts.MaxExchanges, DefaultMaxExchanges),
		fetchTimeout: cmpOr(opts.FetchTimeout, DefaultFetchTimeout),
		obs:          opts.Observer,
		log:          opts.Logger,
		tokens:       make(map[cacheKey]cachedToken),
		calls:        make(map[cacheKey]*call),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Token returns an access token for req: a cached one while it is more
// than the expiry margin from its expiry, and otherwise a new one from
// req.TokenEndpoint.
//
// Concurrent calls for the same registration, endpoint and scope set
// share one outbound request. That request runs on a context detached
// from the caller's (its values kept, its cancellation not) and bounded
// by the fetch timeout, so a caller that gives up does not fail the
// others; each caller still returns as soon as its own ctx is done, with
// ctx.Err(). The first caller's Assertion signs for all of them.
//
// Errors: a *RequestError for a bad req (nothing sent); an error matching
// ErrRefused for a token endpoint this client will not reach; an
// *OAuthError when the platform refuses; an *UnavailableError when it
// cannot be reached or gives no usable answer; ctx.Err() when ctx ends
// first; the error of req.Assertion, wrapped, when signing fails. Errors
// are not cached: the next call tries again.
func (c *TokenClient) Token(ctx context.Context, req TokenRequest) (*Token, error) {
	scopes, err := NormalizeScopes(req.Scopes)
	switch {
	case err != nil:
		return nil, err
	case req.RegistrationID == "":
		return nil, &RequestError{Field: "RegistrationID", Reason: "required"}
	case req.Assertion == nil:
		return nil, &RequestError{Field: "Assertion", Reason: "required"}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := cacheKey{registration: req.RegistrationID, endpoint: req.TokenEndpoint, kid: req.KeyID, scopes: strings.Join(scopes, " ")}
	// A cached token's endpoint passed the check below when it was
	// fetched, and the endpoint is part of its key: a hit needs no check.
	if tok := c.fresh(key); tok != nil {
		c.obs.CacheLookup(TokenCacheName, true)
		return tok, nil
	}
	endpoint, err := url.Parse(req.TokenEndpoint)
	if err != nil {
		return nil, fmt.Errorf("token endpoint: %w: not a valid URL", ErrRefused)
	}
	if err := checkEndpoint(endpoint); err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	tok, cl, err := c.lookup(ctx, key, req, scopes)
	if err != nil {
		return nil, err
	}
	c.obs.CacheLookup(TokenCacheName, tok != nil)
	if tok != nil {
		return tok, nil
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch {
	case cl.panicked != nil:
		panic(cl.panicked)
	case cl.err != nil:
		return nil, cl.err
	}
	return cl.tok.clone(), nil
}

// fresh returns a copy of the cached token for key if it is fresh, or nil.
func (c *TokenClient) fresh(key cacheKey) *Token {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.tokens[key]; ok && now.Before(e.staleAt) {
		tok := e.tok.clone()
		tok.FromCache = true
		return tok
	}
	return nil
}

// lookup returns the cached token for key if it is fresh, and otherwise
// the exchange in flight for key, which it starts if there is none and
// fewer than maxExchanges are in flight.
func (c *TokenClient) lookup(ctx context.Context, key cacheKey, req TokenRequest, scopes []string) (*Token, *call, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.tokens[key]; ok {
		if now.Before(e.staleAt) {
			tok := e.tok.clone()
			tok.FromCache = true
			return tok, nil, nil
		}
		delete(c.tokens, key)
	}
	cl, ok := c.calls[key]
	if !ok {
		if c.exchanges >= c.maxExchanges {
			return nil, nil, &UnavailableError{Reason: fmt.Sprintf("%d token requests already in flight", c.exchanges)}
		}
		c.exchanges++
		cl = &call{done: make(chan struct{})}
		c.calls[key] = cl
		go c.run(ctx, key, cl, req, scopes)
	}
	return nil, cl, nil
}

// run performs the exchange of cl, caches its token unless the
// registration was invalidated meanwhile, and hands the result to the
// waiters.
func (c *TokenClient) run(parent context.Context, key cacheKey, cl *call, req TokenRequest, scopes []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.fetchTimeout)
	defer cancel()
	tok, err, panicked := c.exchangeRecover(ctx, req, scopes)

	c.mu.Lock()
	if err == nil && panicked == nil && !cl.stale {
		c.store(key, tok)
	}
	if c.calls[key] == cl {
		delete(c.calls, key)
	}
	c.exchanges--
	cl.tok, cl.err, cl.panicked = tok, err, panicked
	c.mu.Unlock()
	close(cl.done)
}

func (c *TokenClient) exchangeRecover(ctx context.Context, req TokenRequest, scopes []string) (tok *Token, err error, panicked *exchangePanic) {
	defer func() {
		if v := recover(); v != nil {
			panicked = &exchangePanic{value: v, stack: debug.Stack()}
		}
	}()
	tok, err = c.exchange(ctx, req, scopes)
	return tok, err, nil
}

// store caches tok under key. Called with c.mu held.
func (c *TokenClient) store(key cacheKey, tok *Token) {
	now := c.now()
	staleAt := tok.ExpiresAt.Add(-c.margin)
	if !now.Before(staleAt) {
		return
	}
	if _, ok := c.tokens[key]; !ok && len(c.tokens) >= c.max {
		c.evict(now)
	}
	c.tokens[key] = cachedToken{tok: *tok.clone(), staleAt: staleAt}
}

// evict makes room for one token: it drops every stale token and, if
// the cache is still full, the one that goes stale soonest. Called with
// c.mu held; it scans the cache, which happens only on a miss that
// fetched a token.
func (c *TokenClient) evict(now time.Time) {
	var soonest cacheKey
	var soonestAt time.Time
	found := false
	for k, e := range c.tokens {
		if !now.Before(e.staleAt) {
			delete(c.tokens, k)
			continue
		}
		if !found || e.staleAt.Before(soonestAt) {
			soonest, soonestAt, found = k, e.staleAt, true
		}
	}
	if found && len(c.tokens) >= c.max {
		delete(c.tokens, soonest)
	}
}

// Invalidate drops every cached token of the registration, and keeps the
// exchanges for it now in flight from caching theirs: call it when the
// registration's key, client_id or token endpoint changes, and when it
// is deleted. Callers already waiting on such an exchange still get its
// result; calls after Invalidate start a new exchange. It does nothing on
// a nil *TokenClient.
func (c *TokenClient) Invalidate(registrationID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.tokens {
		if k.registration == registrationID {
			delete(c.tokens, k)
		}
	}
	for k, cl := range c.calls {
		if k.registration == registrationID {
			cl.stale = true
			delete(c.calls, k)
		}
	}
}

// exchange signs an assertion, posts the token request and reads the
// answer.
func (c *TokenClient) exchange(ctx context.Context, req TokenRequest, scopes []string) (*Token, error) {
	assertion, err := req.Assertion(ctx)
	if err == nil && assertion == "" {
		err = errors.New("the assertion function returned an empty assertion")
	}
	if err != nil {
		err = fmt.Errorf("platform: sign the client assertion: %w", err)
		c.report(ctx, req, OutcomeAssertionError, 0, 0, err)
		return nil, err
	}
	form := url.Values{
		"grant_type":            {grantType},
		"client_assertion_type": {assertionType},
		"client_assertion":      {assertion},
		"scope":                 {strings.Join(scopes, " ")},
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		err = fmt.Errorf("token endpoint: %w: not a valid URL", ErrRefused)
		c.report(ctx, req, OutcomeRefused, 0, 0, err)
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("Accept", "application/json")

	sent := c.now()
	start := time.Now()
	tok, status, err := c.send(hreq, sent, scopes, assertion)
	c.report(ctx, req, outcomeOf(err), time.Since(start), status, err)
	return tok, err
}

func (c *TokenClient) report(ctx context.Context, req TokenRequest, outcome Outcome, d time.Duration, status int, err error) {
	c.obs.PlatformTokenRequest(outcome, d)
	attrs := []any{"registration", req.RegistrationID, "outcome", string(outcome), "duration", d}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	c.log.DebugContext(ctx, "platform token request", attrs...)
}

// send sends hreq and turns the answer into a token or an error, with
// the HTTP status (0 if none came).
func (c *TokenClient) send(hreq *http.Request, sent time.Time, scopes []string, assertion string) (*Token, int, error) {
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, 0, transportError(err)
	}
	status := resp.StatusCode
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		return nil, status, &UnavailableError{Reason: "the platform answered " + statusText(status), StatusCode: status, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	case err != nil:
		return nil, status, readError(status, err)
	}

	switch {
	case status == http.StatusOK:
		tok, err := parseToken(body, sent, scopes)
		if err != nil {
			return nil, status, &UnavailableError{Reason: "the platform answered " + statusText(status), StatusCode: status, Err: err}
		}
		return tok, status, nil
	case status == http.StatusTooManyRequests || status >= 500:
		return nil, status, &UnavailableError{Reason: "the platform answered " + statusText(status), StatusCode: status, RetryAfter: c.retryAfter(resp.Header)}
	case status >= 400:
		if oe := parseOAuthError(body, status, assertion); oe != nil {
			return nil, status, oe
		}
		return nil, status, &UnavailableError{Reason: "the platform answered " + statusText(status), StatusCode: status, Err: fmt.Errorf("%w: not an OAuth error response", ErrMalformed)}
	}
	return nil, status, &UnavailableError{Reason: "the platform answered " + statusText(status), StatusCode: status, Err: fmt.Errorf("%w: a token response has status 200", ErrMalformed)}
}

// transportError classifies a failed http.Client.Do.
func transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // the URL is the caller's own
	}
	switch {
	case errors.Is(err, ErrRefused):
		return err
	case errors.Is(err, ErrResponseTooLarge):
		return &UnavailableError{Reason: "the platform's answer is too large", Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	case isTimeout(err):
		return &UnavailableError{Reason: "the token endpoint did not answer in time"}
	}
	return &UnavailableError{Reason: "no answer from the token endpoint", Err: err}
}

// readError classifies a failure to read the body of an answer.
func readError(status int, err error) error {
	if isTimeout(err) {
		return &UnavailableError{Reason: "the token endpoint did not finish its answer in time", StatusCode: status}
	}
	return &UnavailableError{Reason: "reading the platform's answer", StatusCode: status, Err: err}
}

// isTimeout reports whether err is a deadline: the client's timeout or
// the fetch timeout. Its cause is then not kept, so that callers do not
// take it for their own context's deadline.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &t) && t.Timeout()
}

// retryAfter reads a Retry-After header (seconds or an HTTP date),
// bounded by MaxRetryAfter; 0 if there is none.
func (c *TokenClient) retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(c.now())
	}
	return min(max(d, 0), MaxRetryAfter)
}

// malformed is the error of a 200 answer that is not a token response.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// parseToken reads a successful token response (RFC 6749, section 5.1),
// strictly: a JSON object with access_token (a bearer token of at most
// MaxAccessTokenBytes), token_type "Bearer" in any case, expires_in a
// positive whole number of seconds written as a JSON number (not a
// string), and an optional scope. Other members are ignored. The errors
// name the member at fault and never quote a value.
func parseToken(body []byte, sent time.Time, requested []string) (*Token, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, malformed("the body is not a JSON object")
	}
	access, err := stringField(fields, "access_token")
	switch {
	case err != nil:
		return nil, err
	case access == "":
		return nil, malformed("access_token is missing")
	case len(access) > MaxAccessTokenBytes:
		return nil, malformed("access_token is longer than %d bytes", MaxAccessTokenBytes)
	case !isBearerToken(access):
		return nil, malformed("access_token has characters a bearer token cannot have (RFC 6750, section 2.1)")
	}
	tokenType, err := stringField(fields, "token_type")
	switch {
	case err != nil:
		return nil, err
	case tokenType == "":
		return nil, malformed("token_type is missing")
	case !strings.EqualFold(tokenType, "bearer"):
		return nil, malformed("token_type is not Bearer")
	}
	lifetime, err := parseExpiresIn(fields["expires_in"])
	if err != nil {
		return nil, err
	}
	scope, err := stringField(fields, "scope")
	if err != nil {
		return nil, err
	}
	granted := slices.Clone(requested)
	if strings.TrimSpace(scope) != "" {
		granted = nil
		for s := range strings.SplitSeq(scope, " ") {
			if s == "" {
				continue
			}
			if scopeProblem(s) != "" {
				return nil, malformed("scope is not a space-separated list of scope tokens (RFC 6749, section 3.3)")
			}
			granted = append(granted, s)
		}
	}
	return &Token{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresAt:   sent.Add(lifetime),
		Scopes:      granted,
	}, nil
}

// stringField returns the string member name of fields, "" if it is
// absent or null.
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", malformed("%s is not a string", name)
	}
	return s, nil
}

// parseExpiresIn reads expires_in: digits only, from 1 up. A value above
// MaxTokenLifetime is read as MaxTokenLifetime.
func parseExpiresIn(raw json.RawMessage) (time.Duration, error) {
	s := string(raw)
	switch {
	case s == "" || s == "null":
		return 0, malformed("expires_in is missing")
	case s[0] == '"':
		return 0, malformed("expires_in is a string, not a number")
	case !json.Valid(raw) || strings.ContainsAny(s[:1], "{[tf"):
		return 0, malformed("expires_in is not a number")
	case s[0] == '-':
		return 0, malformed("expires_in is not positive")
	case strings.ContainsAny(s, ".eE"):
		return 0, malformed("expires_in is not a whole number of seconds")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return MaxTokenLifetime, nil
	case err != nil:
		return 0, malformed("expires_in is not a number")
	case n == 0:
		return 0, malformed("expires_in is not positive")
	case n >= uint64(MaxTokenLifetime/time.Second):
		return MaxTokenLifetime, nil
	}
	return time.Duration(n) * time.Second, nil
}

// isBearerToken reports whether s is an RFC 6750 b64token: 1*( ALPHA /
// DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". It is what goes into
// an Authorization header, so nothing else may pass.
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~+/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parseOAuthError reads an error response (RFC 6749, section 5.2), or
// returns nil if body is not one: a JSON object whose error member is a
// string with something left once sanitised. A non-string
// error_description is ignored.
func parseOAuthError(body []byte, status int, assertion string) *OAuthError {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil
	}
	var code, desc string
	if err := json.Unmarshal(fields["error"], &code); err != nil {
		return nil
	}
	if code = sanitizeCode(redact(code, assertion)); code == "" {
		return nil
	}
	if err := json.Unmarshal(fields["error_description"], &desc); err != nil {
		desc = ""
	}
	return &OAuthError{Code: code, Description: sanitizeDescription(desc, assertion), HTTPStatus: status}
}

// NormalizeScopes checks the scopes of a request and returns them
// sorted, without repeats: the form tokens are cached under, so the same
// set in any order shares one token. It refuses, with a *RequestError of
// Field "Scopes", an empty list, more than MaxScopes scopes, and a scope
// that is empty, longer than MaxScopeBytes or not an RFC 6749 scope
// token (printable ASCII but space, '"' and '\').
func NormalizeScopes(scopes []string) ([]string, error) {
	switch {
	case len(scopes) == 0:
		return nil, &RequestError{Field: "Scopes", Reason: "at least one scope is required"}
	case len(scopes) > MaxScopes:
		return nil, &RequestError{Field: "Scopes", Reason: fmt.Sprintf("at most %d scopes, not %d", MaxScopes, len(scopes))}
	}
	for i, s := range scopes {
		if p := scopeProblem(s); p != "" {
			return nil, &RequestError{Field: "Scopes", Reason: fmt.Sprintf("scope %d %s", i, p)}
		}
	}
	out := slices.Clone(scopes)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// scopeProblem describes why s is not a scope token, or returns "".
func scopeProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxScopeBytes:
		return fmt.Sprintf("is longer than %d bytes", MaxScopeBytes)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
			return fmt.Sprintf("contains a space at byte %d: give each scope separately", i)
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("contains a control character at byte %d", i)
		case c >= 0x80:
			return fmt.Sprintf("contains a non-ASCII byte at byte %d", i)
		case c == '"' || c == '\\':
			return fmt.Sprintf("contains %q at byte %d, which a scope cannot (RFC 6749, section 3.3)", c, i)
		}
	}
	return ""
}
