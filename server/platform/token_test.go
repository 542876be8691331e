package platform_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

const (
	scopeLineItem = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
	scopeScore    = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
	scopeMembers  = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
)

func TestTokenExchange(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	sent := f.clock.Now()
	tok := f.token(t, scopeScore, scopeLineItem)

	reqs := f.p.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the platform got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Rejected != "" {
		t.Fatalf("the platform rejected the request: %s", r.Rejected)
	}
	for name, want := range map[string]string{
		"grant_type":            "client_credentials",
		"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		"scope":                 scopeLineItem + " " + scopeScore,
	} {
		if got := r.Form.Get(name); got != want {
			t.Errorf("form %s = %q, want %q", name, got, want)
		}
	}
	if len(r.Form) != 4 {
		t.Errorf("form has %d parameters, want 4: %v", len(r.Form), slices.Sorted(mapsKeys(r.Form)))
	}
	if want := "ltikeys/" + testVersion; r.UserAgent != want {
		t.Errorf("User-Agent %q, want %q", r.UserAgent, want)
	}
	if r.Method != http.MethodPost {
		t.Errorf("method %s", r.Method)
	}

	if tok.AccessToken != r.AccessToken || tok.AccessToken == "" {
		t.Errorf("access token is not the one the platform issued")
	}
	if tok.TokenType != "Bearer" {
		t.Errorf("TokenType %q", tok.TokenType)
	}
	if want := sent.Add(time.Hour); !tok.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt %v, want %v", tok.ExpiresAt, want)
	}
	if want := []string{scopeLineItem, scopeScore}; !slices.Equal(tok.Scopes, want) {
		t.Errorf("Scopes %q, want %q", tok.Scopes, want)
	}
	if tok.FromCache {
		t.Error("the first token came from the cache")
	}

	again := f.token(t, scopeLineItem, scopeScore)
	if !again.FromCache || again.AccessToken != tok.AccessToken {
		t.Errorf("second call: FromCache %t, same token %t; want the cached token", again.FromCache, again.AccessToken == tok.AccessToken)
	}
	if n := f.p.Count(); n != 1 {
		t.Errorf("the platform got %d requests, want 1", n)
	}
	// A caller changing what it got does not change the cache.
	again.Scopes[0] = "changed"
	if third := f.token(t, scopeLineItem, scopeScore); third.Scopes[0] != scopeLineItem {
		t.Errorf("the cached scopes changed to %q", third.Scopes)
	}
	if logs := f.logs.String(); strings.Count(logs, "platform token request") != 1 ||
		!strings.Contains(logs, "registration="+registrationID) || !strings.Contains(logs, "outcome=ok") {
		t.Errorf("want one debug line for the one exchange, got %q", logs)
	}
	if ok := f.obs.outcome(platform.OutcomeOK); ok != 1 {
		t.Errorf("%d ok outcomes reported, want 1", ok)
	}
	if hits, misses := f.obs.lookups(); hits != 2 || misses != 1 {
		t.Errorf("%d hits and %d misses reported, want 2 and 1", hits, misses)
	}
}

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestTokenGrantedScopes(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, c := range []struct {
		name  string
		scope any
		want  []string
	}{
		{"absent: the scopes requested", nil, []string{scopeLineItem, scopeScore}},
		{"empty: the scopes requested", "", []string{scopeLineItem, scopeScore}},
		{"fewer, in the platform's order", scopeScore, []string{scopeScore}},
		{"as given", scopeScore + "  " + scopeLineItem, []string{scopeScore, scopeLineItem}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.tc.Invalidate(registrationID)
			f.p.SetAnswer(platformtest.Answer{Fields: map[string]any{"scope": c.scope}})
			tok := f.token(t, scopeScore, scopeLineItem)
			if !slices.Equal(tok.Scopes, c.want) {
				t.Errorf("Scopes %q, want %q", tok.Scopes, c.want)
			}
		})
	}
}

func TestTokenSingleFlight(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	f.p.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})
	var signed sync.Map
	req := f.request(scopeLineItem)
	sign := req.Assertion
	req.Assertion = func(ctx context.Context) (string, error) {
		a, err := sign(ctx)
		signed.Store(a, true)
		return a, err
	}

	const callers = 100
	tokens := make([]*platform.Token, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { tokens[i], errs[i] = f.tc.Token(t.Context(), req) })
	}
	f.obs.waitMisses(t, callers)
	<-arrived
	close(hold)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if tokens[i].AccessToken != tokens[0].AccessToken || tokens[i].FromCache {
			t.Errorf("caller %d: FromCache %t, same token %t; want the shared, fetched token", i, tokens[i].FromCache, tokens[i].AccessToken == tokens[0].AccessToken)
		}
	}
	if n := f.p.Count(); n != 1 {
		t.Errorf("%d callers made %d requests, want 1", callers, n)
	}
	n := 0
	signed.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d assertions signed, want 1", n)
	}
}

func TestTokenScopeSets(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	first := f.token(t, scopeLineItem, scopeScore)
	for _, c := range []struct {
		scopes    []string
		fromCache bool
	}{
		{[]string{scopeScore, scopeLineItem, scopeScore}, true},
		{[]string{scopeLineItem}, false},
		{[]string{scopeLineItem, scopeScore, scopeMembers}, false},
		{[]string{scopeLineItem}, true},
	} {
		tok := f.token(t, c.scopes...)
		if tok.FromCache != c.fromCache {
			t.Errorf("%q: FromCache %t, want %t", c.scopes, tok.FromCache, c.fromCache)
		}
		if !c.fromCache && tok.AccessToken == first.AccessToken {
			t.Errorf("%q: got the token of another scope set", c.scopes)
		}
	}
	if n := f.p.Count(); n != 3 {
		t.Errorf("the platform got %d requests, want 3", n)
	}

	// Another registration, or another endpoint, is another token too.
	req := f.request(scopeLineItem, scopeScore)
	req.RegistrationID = "reg-2"
	if tok, err := f.tc.Token(t.Context(), req); err != nil || tok.FromCache {
		t.Errorf("another registration: %v, %v", tok, err)
	}
	req = f.request(scopeLineItem, scopeScore)
	req.TokenEndpoint = strings.Replace(req.TokenEndpoint, "127.0.0.1", "localhost", 1)
	req.Assertion = f.tool.AssertionFunc(req.TokenEndpoint)
	if _, err := f.tc.Token(t.Context(), req); err == nil {
		t.Error("an assertion for localhost was accepted by a platform at 127.0.0.1")
	}
	if n := f.p.Count(); n != 5 {
		t.Errorf("the platform got %d requests, want 5", n)
	}
}

func TestTokenExpiry(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	first := f.token(t, scopeLineItem)

	f.clock.Add(time.Hour - platform.DefaultExpiryMargin - time.Second)
	if tok := f.token(t, scopeLineItem); !tok.FromCache || tok.AccessToken != first.AccessToken {
		t.Fatalf("a second before the margin: FromCache %t; want the cached token", tok.FromCache)
	}

	f.clock.Add(time.Second)
	renewedAt := f.clock.Now()
	second := f.token(t, scopeLineItem)
	if second.FromCache || second.AccessToken == first.AccessToken {
		t.Fatalf("at expiry less the margin: FromCache %t, same token %t; want a new one", second.FromCache, second.AccessToken == first.AccessToken)
	}
	if want := renewedAt.Add(time.Hour); !second.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt %v, want %v", second.ExpiresAt, want)
	}
	reqs := f.p.Requests()
	if len(reqs) != 2 {
		t.Fatalf("the platform got %d requests, want 2", len(reqs))
	}
	if reqs[0].Assertion == reqs[1].Assertion || reqs[0].Claims["jti"] == reqs[1].Claims["jti"] {
		t.Error("the second request reused the first's assertion")
	}
	if reqs[1].Rejected != "" {
		t.Errorf("the second request was rejected: %s", reqs[1].Rejected)
	}
}

func TestTokenLifetimes(t *testing.T) {
	for _, c := range []struct {
		name      string
		expiresIn any
		lifetime  time.Duration
		cached    bool
	}{
		{"the margin: returned, not cached", 60, time.Minute, false},
		{"below the margin: returned, not cached", 1, time.Second, false},
		{"just over the margin: cached", 61, 61 * time.Second, true},
		{"a day", 86400, 24 * time.Hour, true},
		{"over a day: a day", 86401, platform.MaxTokenLifetime, true},
		{"beyond int64: a day", rawJSON("123456789012345678901234567890"), platform.MaxTokenLifetime, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{})
			f.p.SetAnswer(platformtest.Answer{Fields: map[string]any{"expires_in": c.expiresIn}})
			tok := f.token(t, scopeLineItem)
			if want := f.clock.Now().Add(c.lifetime); !tok.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt %v, want %v", tok.ExpiresAt, want)
			}
			if again := f.token(t, scopeLineItem); again.FromCache != c.cached {
				t.Errorf("second call FromCache %t, want %t", again.FromCache, c.cached)
			}
		})
	}
}

// rawJSON is a JSON literal for an Answer field, written as is.
type rawJSON string

func (j rawJSON) MarshalJSON() ([]byte, error) { return []byte(j), nil }

func TestTokenInvalidate(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	first := f.token(t, scopeLineItem)
	f.token(t, scopeScore)

	f.tc.Invalidate("another registration")
	if tok := f.token(t, scopeLineItem); !tok.FromCache {
		t.Error("invalidating another registration dropped this one's token")
	}

	f.tc.Invalidate(registrationID)
	for _, scope := range []string{scopeLineItem, scopeScore} {
		if tok := f.token(t, scope); tok.FromCache || tok.AccessToken == first.AccessToken {
			t.Errorf("%s after Invalidate: FromCache %t; want a new token", scope, tok.FromCache)
		}
	}
	if n := f.p.Count(); n != 4 {
		t.Errorf("the platform got %d requests, want 4", n)
	}
}

func TestTokenInvalidateInFlight(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hold, arrived := make(chan struct{}), make(chan struct{}, 2)
	f.p.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})

	type result struct {
		tok *platform.Token
		err error
	}
	before := make(chan result)
	go func() {
		tok, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
		before <- result{tok, err}
	}()
	<-arrived
	f.tc.Invalidate(registrationID)

	// A call after Invalidate does not join the exchange that began
	// before it.
	after := make(chan result)
	go func() {
		tok, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
		after <- result{tok, err}
	}()
	<-arrived
	close(hold)
	r1, r2 := <-before, <-after
	if r1.err != nil || r2.err != nil {
		t.Fatalf("Token: %v, %v", r1.err, r2.err)
	}
	if r1.tok.AccessToken == r2.tok.AccessToken {
		t.Error("a call after Invalidate got the token fetched before it")
	}
	f.p.SetAnswer(platformtest.Answer{})
	if tok := f.token(t, scopeLineItem); !tok.FromCache || tok.AccessToken != r2.tok.AccessToken {
		t.Errorf("FromCache %t, the token fetched after Invalidate %t; want that one, cached",
			tok.FromCache, tok.AccessToken == r2.tok.AccessToken)
	}

	// With no call after it, the exchange that began before Invalidate
	// caches nothing.
	f.tc.Invalidate(registrationID)
	hold = make(chan struct{})
	f.p.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})
	go func() {
		tok, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
		before <- result{tok, err}
	}()
	<-arrived
	f.tc.Invalidate(registrationID)
	close(hold)
	if r := <-before; r.err != nil || r.tok.FromCache {
		t.Fatalf("the caller waiting across Invalidate: %v, %v; want its token", r.tok, r.err)
	}
	f.p.SetAnswer(platformtest.Answer{})
	n := f.p.Count()
	if tok := f.token(t, scopeLineItem); tok.FromCache {
		t.Error("the exchange that began before Invalidate cached its token")
	}
	if got := f.p.Count(); got != n+1 {
		t.Errorf("%d requests, want %d", got, n+1)
	}
}

func TestTokenCallerGivesUp(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	f.p.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})
	req := f.request(scopeLineItem)
	sign := req.Assertion
	signCtx := make(chan context.Context, 1)
	req.Assertion = func(ctx context.Context) (string, error) {
		signCtx <- ctx
		return sign(ctx)
	}

	firstCtx, cancel := context.WithCancel(t.Context())
	first := make(chan error)
	go func() {
		_, err := f.tc.Token(firstCtx, req)
		first <- err
	}()
	<-arrived
	second := make(chan error)
	var secondTok *platform.Token
	go func() {
		var err error
		secondTok, err = f.tc.Token(t.Context(), req)
		second <- err
	}()
	f.obs.waitMisses(t, 2)

	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
	}
	if ctx := <-signCtx; ctx.Err() != nil {
		t.Errorf("the exchange's context ended with the first caller's: %v", ctx.Err())
	}
	close(hold)
	if err := <-second; err != nil {
		t.Fatalf("the caller still waiting: %v", err)
	}
	if tok := f.token(t, scopeLineItem); !tok.FromCache || tok.AccessToken != secondTok.AccessToken {
		t.Errorf("the shared token was not cached")
	}
	if n := f.p.Count(); n != 1 {
		t.Errorf("the platform got %d requests, want 1", n)
	}

	// A context already done sends nothing.
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.tc.Token(done, f.request(scopeScore)); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled context: %v", err)
	}
	if n := f.p.Count(); n != 1 {
		t.Errorf("the platform got %d requests, want 1", n)
	}
}

func TestTokenFetchTimeout(t *testing.T) {
	f := newFixture(t, fixtureOptions{tc: platform.TokenClientOptions{FetchTimeout: 200 * time.Millisecond}})
	f.p.SetAnswer(platformtest.Answer{Hold: make(chan struct{})})
	_, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
	var ue *platform.UnavailableError
	if !errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an *UnavailableError that is not context.DeadlineExceeded", err)
	}
	if got := f.obs.outcome(platform.OutcomeUnavailable); got != 1 {
		t.Errorf("%d unavailable outcomes, want 1", got)
	}
}

func TestTokenCacheBound(t *testing.T) {
	f := newFixture(t, fixtureOptions{tc: platform.TokenClientOptions{MaxTokens: 2}})
	for _, c := range []struct {
		scope     string
		expiresIn int
	}{{"a", 3600}, {"b", 7200}, {"c", 5400}} {
		f.p.SetAnswer(platformtest.Answer{Fields: map[string]any{"expires_in": c.expiresIn}})
		f.token(t, c.scope)
	}
	// c made room by dropping a, which went stale soonest.
	if n := f.p.Count(); n != 3 {
		t.Fatalf("the platform got %d requests, want 3", n)
	}
	for _, c := range []struct {
		scope     string
		fromCache bool
	}{{"b", true}, {"c", true}, {"a", false}} {
		if tok := f.token(t, c.scope); tok.FromCache != c.fromCache {
			t.Errorf("%s: FromCache %t, want %t", c.scope, tok.FromCache, c.fromCache)
		}
	}

	// A token too short-lived to cache does not make room.
	f.p.SetAnswer(platformtest.Answer{Fields: map[string]any{"expires_in": 30}})
	f.token(t, "short")
	for _, scope := range []string{"a", "b"} {
		if tok := f.token(t, scope); !tok.FromCache {
			t.Errorf("%s was dropped for a token that was not cached", scope)
		}
	}
}

func TestTokenRequestErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	long := strings.Repeat("s", platform.MaxScopeBytes+1)
	many := make([]string, platform.MaxScopes+1)
	for i := range many {
		many[i] = fmt.Sprint("scope", i)
	}
	for _, c := range []struct {
		name  string
		edit  func(*platform.TokenRequest)
		field string
	}{
		{"no scopes", func(r *platform.TokenRequest) { r.Scopes = nil }, "Scopes"},
		{"an empty scope", func(r *platform.TokenRequest) { r.Scopes = []string{scopeScore, ""} }, "Scopes"},
		{"a scope with a space", func(r *platform.TokenRequest) { r.Scopes = []string{scopeScore + " " + scopeLineItem} }, "Scopes"},
		{"a scope with a newline", func(r *platform.TokenRequest) { r.Scopes = []string{"a\nb"} }, "Scopes"},
		{"a scope with a quote", func(r *platform.TokenRequest) { r.Scopes = []string{`a"b`} }, "Scopes"},
		{"a non-ASCII scope", func(r *platform.TokenRequest) { r.Scopes = []string{"portée"} }, "Scopes"},
		{"a scope too long", func(r *platform.TokenRequest) { r.Scopes = []string{long} }, "Scopes"},
		{"too many scopes", func(r *platform.TokenRequest) { r.Scopes = many }, "Scopes"},
		{"no registration", func(r *platform.TokenRequest) { r.RegistrationID = "" }, "RegistrationID"},
		{"no assertion function", func(r *platform.TokenRequest) { r.Assertion = nil }, "Assertion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := f.request(scopeLineItem)
			c.edit(&req)
			_, err := f.tc.Token(t.Context(), req)
			var re *platform.RequestError
			if !errors.As(err, &re) || !errors.Is(err, platform.ErrInvalidRequest) || re.Field != c.field {
				t.Fatalf("got %v, want a *RequestError for %s", err, c.field)
			}
			if errors.Is(err, platform.ErrUnavailable) || errors.Is(err, platform.ErrRefused) {
				t.Errorf("%v has another kind too", err)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("the message quotes the scope: %q", err)
			}
		})
	}
	for _, endpoint := range []string{
		"",
		"http://platform.example/token",
		"ftp://platform.example/token",
		"https://user:secret@platform.example/token",
		"https:///token",
		"https://platform.example:bad/token",
	} {
		t.Run("endpoint "+endpoint, func(t *testing.T) {
			req := f.request(scopeLineItem)
			req.TokenEndpoint = endpoint
			_, err := f.tc.Token(t.Context(), req)
			if !errors.Is(err, platform.ErrRefused) || errors.Is(err, platform.ErrUnavailable) {
				t.Fatalf("got %v, want an error matching ErrRefused", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the message repeats the URL's credentials: %v", err)
			}
		})
	}
	if n := f.p.Count(); n != 0 {
		t.Errorf("the platform got %d requests, want none", n)
	}
}

func TestNormalizeScopes(t *testing.T) {
	got, err := platform.NormalizeScopes([]string{"c", "a", "b", "a", "c"})
	if err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("NormalizeScopes = %q, %v; want [a b c]", got, err)
	}
}

func TestTokenAssertionErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	errSign := errors.New("the key is gone")
	for _, c := range []struct {
		name   string
		sign   func(context.Context) (string, error)
		wantIs error
	}{
		{"an error", func(context.Context) (string, error) { return "", errSign }, errSign},
		{"an empty assertion", func(context.Context) (string, error) { return "", nil }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := f.request(scopeLineItem)
			req.Assertion = c.sign
			_, err := f.tc.Token(t.Context(), req)
			switch {
			case err == nil:
				t.Fatal("no error")
			case c.wantIs != nil && !errors.Is(err, c.wantIs):
				t.Errorf("%v does not wrap the assertion function's error", err)
			case errors.Is(err, platform.ErrUnavailable), errors.Is(err, platform.ErrRefused), errors.Is(err, platform.ErrInvalidRequest):
				t.Errorf("%v has a kind of this package", err)
			}
		})
	}
	if n := f.p.Count(); n != 0 {
		t.Errorf("the platform got %d requests, want none", n)
	}
	if got := f.obs.outcome(platform.OutcomeAssertionError); got != 2 {
		t.Errorf("%d assertion_error outcomes, want 2", got)
	}
}

func TestTokenAssertionPanics(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	req := f.request(scopeLineItem)
	req.Assertion = func(context.Context) (string, error) { panic("signing exploded") }
	defer func() {
		v := recover()
		if v == nil || !strings.Contains(fmt.Sprint(v), "signing exploded") {
			t.Errorf("recovered %v, want the assertion function's panic", v)
		}
	}()
	f.tc.Token(t.Context(), req)
	t.Error("Token returned")
}

// TestTokenErrorKinds checks each way an exchange fails: its kind, its
// outcome, and that neither its message nor the log shows a secret.
func TestTokenErrorKinds(t *testing.T) {
	const leaked = "LEAKEDaccessTOKENvalue0123456789abcdefghij"
	type want struct {
		outcome    platform.Outcome
		oauth      string // the OAuth error code
		status     int
		retryAfter time.Duration
		malformed  bool
		tooLarge   bool
		redirect   bool
	}
	oauth := func(status int, code string) want {
		return want{outcome: platform.OutcomeOAuthError, oauth: code, status: status}
	}
	bad := func(status int) want {
		return want{outcome: platform.OutcomeMalformed, status: status, malformed: true}
	}
	clk := newClock() // the fixtures' clocks start at the same time
	for _, c := range []struct {
		name   string
		answer platformtest.Answer
		want   want
	}{
		{"invalid_scope", platformtest.Answer{Error: "invalid_scope", Description: "scope not granted"}, oauth(400, "invalid_scope")},
		{"invalid_client 401", platformtest.Answer{Status: 401, Error: "invalid_client"}, oauth(401, "invalid_client")},
		{"unauthorized_client 403", platformtest.Answer{Status: 403, Error: "unauthorized_client"}, oauth(403, "unauthorized_client")},
		{"temporarily_unavailable", platformtest.Answer{Error: "temporarily_unavailable"}, oauth(400, "temporarily_unavailable")},
		{"500", platformtest.Answer{Status: 500}, want{outcome: platform.OutcomeUnavailable, status: 500}},
		{"500 with an OAuth body", platformtest.Answer{Status: 500, Error: "server_error"}, want{outcome: platform.OutcomeUnavailable, status: 500}},
		{"503 Retry-After seconds", platformtest.Answer{Status: 503, Header: http.Header{"Retry-After": {"120"}}}, want{outcome: platform.OutcomeUnavailable, status: 503, retryAfter: 2 * time.Minute}},
		{"429 Retry-After date", platformtest.Answer{Status: 429, Header: http.Header{"Retry-After": {clk.Now().Add(30 * time.Second).Format(http.TimeFormat)}}}, want{outcome: platform.OutcomeUnavailable, status: 429, retryAfter: 30 * time.Second}},
		{"429 Retry-After huge", platformtest.Answer{Status: 429, Header: http.Header{"Retry-After": {"99999999999"}}}, want{outcome: platform.OutcomeUnavailable, status: 429, retryAfter: platform.MaxRetryAfter}},
		{"429 Retry-After past", platformtest.Answer{Status: 429, Header: http.Header{"Retry-After": {clk.Now().Add(-time.Hour).Format(http.TimeFormat)}}}, want{outcome: platform.OutcomeUnavailable, status: 429}},
		{"200 not JSON", platformtest.Answer{Body: []byte("<html>" + leaked + "</html>")}, bad(200)},
		{"200 a JSON array", platformtest.Answer{Body: []byte(`["` + leaked + `"]`)}, bad(200)},
		{"200 null", platformtest.Answer{Body: []byte(`null`)}, bad(200)},
		{"200 trailing data", platformtest.Answer{Body: []byte(`{"access_token":"` + leaked + `","token_type":"Bearer","expires_in":3600} {}`)}, bad(200)},
		{"no access_token", platformtest.Answer{Fields: map[string]any{"access_token": nil}}, bad(200)},
		{"empty access_token", platformtest.Answer{Fields: map[string]any{"access_token": ""}}, bad(200)},
		{"access_token a number", platformtest.Answer{Fields: map[string]any{"access_token": 12345}}, bad(200)},
		{"access_token with a header break", platformtest.Answer{Fields: map[string]any{"access_token": leaked + "\r\nX-Injected: 1"}}, bad(200)},
		{"access_token too long", platformtest.Answer{Fields: map[string]any{"access_token": strings.Repeat(leaked, 1000)}}, bad(200)},
		{"token_type mac", platformtest.Answer{Fields: map[string]any{"access_token": leaked, "token_type": "mac"}}, bad(200)},
		{"no token_type", platformtest.Answer{Fields: map[string]any{"access_token": leaked, "token_type": nil}}, bad(200)},
		{"expires_in a string", platformtest.Answer{Fields: map[string]any{"access_token": leaked, "expires_in": "3600"}}, bad(200)},
		{"expires_in 0", platformtest.Answer{Fields: map[string]any{"expires_in": 0}}, bad(200)},
		{"expires_in negative", platformtest.Answer{Fields: map[string]any{"expires_in": -60}}, bad(200)},
		{"expires_in a fraction", platformtest.Answer{Fields: map[string]any{"expires_in": 3600.5}}, bad(200)},
		{"expires_in an exponent", platformtest.Answer{Fields: map[string]any{"expires_in": rawJSON("3.6e3")}}, bad(200)},
		{"expires_in true", platformtest.Answer{Fields: map[string]any{"expires_in": true}}, bad(200)},
		{"no expires_in", platformtest.Answer{Fields: map[string]any{"expires_in": nil}}, bad(200)},
		{"scope not a string", platformtest.Answer{Fields: map[string]any{"scope": []string{scopeLineItem}}}, bad(200)},
		{"scope with a tab", platformtest.Answer{Fields: map[string]any{"scope": scopeLineItem + "\t" + scopeScore}}, bad(200)},
		{"404 text", platformtest.Answer{Status: 404}, bad(404)},
		{"400 not an OAuth error", platformtest.Answer{Status: 400, Body: []byte(`{"message":"` + leaked + `"}`)}, bad(400)},
		{"400 error not a string", platformtest.Answer{Status: 400, Body: []byte(`{"error":42}`)}, bad(400)},
		{"400 error of nothing usable", platformtest.Answer{Status: 400, Body: []byte(`{"error":"\u0007\""}`)}, bad(400)},
		{"204", platformtest.Answer{Status: 204}, bad(204)},
		{"oversized", platformtest.Answer{Fields: map[string]any{"padding": strings.Repeat("x", platform.DefaultMaxResponseBytes)}}, want{outcome: platform.OutcomeMalformed, malformed: true, tooLarge: true}},
		{"302", platformtest.Answer{Location: "/token"}, want{outcome: platform.OutcomeRefused, redirect: true}},
		{"307", platformtest.Answer{Status: 307, Location: "/token"}, want{outcome: platform.OutcomeRefused, redirect: true}},
		{"308 elsewhere", platformtest.Answer{Status: 308, Location: "https://169.254.169.254/latest/meta-data/"}, want{outcome: platform.OutcomeRefused, redirect: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{})
			f.p.SetAnswer(c.answer)
			_, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
			if err == nil {
				t.Fatal("no error")
			}
			w := c.want

			var oe *platform.OAuthError
			if got := errors.As(err, &oe); got != (w.oauth != "") {
				t.Errorf("%v: *OAuthError %t, want %t", err, got, w.oauth != "")
			} else if got && (oe.Code != w.oauth || oe.HTTPStatus != w.status) {
				t.Errorf("OAuth error %q %d, want %q %d", oe.Code, oe.HTTPStatus, w.oauth, w.status)
			}
			unavailable := w.outcome == platform.OutcomeUnavailable || w.outcome == platform.OutcomeMalformed ||
				w.oauth == "temporarily_unavailable"
			if got := errors.Is(err, platform.ErrUnavailable); got != unavailable {
				t.Errorf("%v: ErrUnavailable %t, want %t", err, got, unavailable)
			}
			var ue *platform.UnavailableError
			if errors.As(err, &ue) && (ue.StatusCode != w.status || ue.RetryAfter != w.retryAfter) {
				t.Errorf("%v: status %d, retry after %v; want %d, %v", err, ue.StatusCode, ue.RetryAfter, w.status, w.retryAfter)
			}
			if got := errors.Is(err, platform.ErrMalformed); got != w.malformed {
				t.Errorf("%v: ErrMalformed %t, want %t", err, got, w.malformed)
			}
			if got := errors.Is(err, platform.ErrResponseTooLarge); got != w.tooLarge {
				t.Errorf("%v: ErrResponseTooLarge %t, want %t", err, got, w.tooLarge)
			}
			var re *platform.RedirectError
			if got := errors.As(err, &re); got != w.redirect || got != errors.Is(err, platform.ErrRefused) {
				t.Errorf("%v: *RedirectError %t, ErrRefused %t; want %t", err, got, errors.Is(err, platform.ErrRefused), w.redirect)
			}
			if n := f.p.Count(); n != 1 {
				t.Errorf("the platform got %d requests, want 1", n)
			}
			if got := f.obs.outcome(w.outcome); got != 1 {
				t.Errorf("%d %s outcomes reported, want 1", got, w.outcome)
			}
			checkNoSecrets(t, append(f.secrets(), leaked), append(describe(err), f.logs.String())...)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the message has a line break: %q", err)
			}
		})
	}
}

func TestTokenReplayAndForeignKey(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	assertion, err := f.tool.Assertion(f.p.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	req := f.request(scopeLineItem)
	req.Assertion = func(context.Context) (string, error) { return assertion, nil }
	if _, err := f.tc.Token(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	f.tc.Invalidate(registrationID)
	_, err = f.tc.Token(t.Context(), req)
	var oe *platform.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" || oe.HTTPStatus != 400 {
		t.Fatalf("a replayed assertion: %v, want invalid_grant", err)
	}

	other := platformtest.NewClient(t, f.tool.ID)
	req.Assertion = other.AssertionFunc(f.p.TokenURL)
	_, err = f.tc.Token(t.Context(), req)
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.HTTPStatus != 401 {
		t.Fatalf("an assertion signed with another key: %v, want invalid_client", err)
	}
	checkNoSecrets(t, f.secrets(), append(describe(err), f.logs.String())...)
}

func TestOAuthErrorSanitised(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	var assertion string
	req := f.request(scopeLineItem)
	sign := req.Assertion
	for _, c := range []struct {
		name      string
		code      string
		desc      func(assertion string) string
		wantCode  string
		wantDesc  func(assertion string) string
		checkDesc func(t *testing.T, desc string)
	}{
		{
			name: "echoes the assertion", code: "invalid_grant",
			desc:     func(a string) string { return "bad assertion " + a },
			wantCode: "invalid_grant",
			wantDesc: func(string) string { return "bad assertion [redacted]" },
		},
		{
			name: "echoes a part of the assertion", code: "invalid_grant",
			desc:     func(a string) string { return "signature " + a[strings.LastIndexByte(a, '.')+1:][:40] + "… is wrong" },
			wantCode: "invalid_grant",
			wantDesc: func(string) string { return "signature [redacted]… is wrong" },
		},
		{
			name: "control and format characters", code: "invalid_client\r\n",
			desc:     func(string) string { return "line one\nline two\u202e\u200b\x00end\u2028" },
			wantCode: "invalid_client",
			wantDesc: func(string) string { return "line one line two end" },
		},
		{
			name: "characters outside the code's set", code: "invalid\"_\\scopé",
			desc:     func(string) string { return "ok" },
			wantCode: "invalid_scop",
			wantDesc: func(string) string { return "ok" },
		},
		{
			name: "too long", code: strings.Repeat("c", 300),
			desc:     func(string) string { return strings.Repeat("é", 150) },
			wantCode: strings.Repeat("c", 200),
			wantDesc: func(string) string { return strings.Repeat("é", 100) },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			req.Assertion = func(ctx context.Context) (string, error) {
				a, err := sign(ctx)
				assertion = a
				f.p.SetAnswer(platformtest.Answer{Error: c.code, Description: c.desc(a)})
				return a, err
			}
			_, err := f.tc.Token(t.Context(), req)
			var oe *platform.OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("got %v, want an *OAuthError", err)
			}
			if oe.Code != c.wantCode {
				t.Errorf("Code %q, want %q", oe.Code, c.wantCode)
			}
			if want := c.wantDesc(assertion); oe.Description != want {
				t.Errorf("Description %q, want %q", oe.Description, want)
			}
			checkNoSecrets(t, f.secrets(), append(describe(err), f.logs.String())...)
		})
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok := f.token(t, scopeLineItem)
	var logged syncBuffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("got", "token", tok, "value", *tok)
	texts := []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", *tok, *tok, *tok, *tok), fmt.Sprintf("%+v %#v", tok, tok), logged.String(), f.logs.String()}
	checkNoSecrets(t, f.secrets(), texts...)
	if !strings.Contains(logged.String(), "expires_at") || !strings.Contains(texts[0], "ExpiresAt") {
		t.Errorf("the token's other fields are not shown: %q", texts)
	}
}

// TestTokenMaxExchanges: a call that would start one exchange more than
// MaxExchanges allows fails unavailable and sends nothing, whatever its
// scopes; calls that join an exchange in flight still may, and once one
// ends another can start.
func TestTokenMaxExchanges(t *testing.T) {
	f := newFixture(t, fixtureOptions{tc: platform.TokenClientOptions{MaxExchanges: 2}})
	hold, arrived := make(chan struct{}), make(chan struct{}, 2)
	f.p.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, scope := range []string{scopeLineItem, scopeScore} {
		wg.Go(func() { _, errs[i] = f.tc.Token(t.Context(), f.request(scope)) })
	}
	<-arrived
	<-arrived
	_, err := f.tc.Token(t.Context(), f.request(scopeLineItem, scopeScore))
	var unav *platform.UnavailableError
	if !errors.As(err, &unav) || !errors.Is(err, platform.ErrUnavailable) {
		t.Errorf("a third scope set with two exchanges in flight: %v, want an *UnavailableError", err)
	}
	// Joining an exchange in flight starts none.
	joined := make(chan error, 1)
	go func() { _, err := f.tc.Token(t.Context(), f.request(scopeScore)); joined <- err }()
	f.obs.waitMisses(t, 3)
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("exchange %d: %v", i, err)
		}
	}
	if err := <-joined; err != nil {
		t.Errorf("a call joining an exchange in flight: %v", err)
	}
	if n := f.p.Count(); n != 2 {
		t.Errorf("the platform got %d requests, want 2", n)
	}
	f.token(t, scopeLineItem, scopeScore)
	if n := f.p.Count(); n != 3 {
		t.Errorf("after the exchanges ended, the platform got %d requests, want 3", n)
	}
}
