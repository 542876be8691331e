package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// The series GetPlatformAccessToken moves.
const (
	tokenCacheHits   = `ltikeys_cache_lookups_total{cache="platform_tokens",result="hit"}`
	tokenCacheMisses = `ltikeys_cache_lookups_total{cache="platform_tokens",result="miss"}`
)

// tokenRequests is the series of outbound token requests that ended with
// outcome.
func tokenRequests(outcome platform.Outcome) string {
	return `ltikeys_platform_token_requests_total{outcome="` + string(outcome) + `"}`
}

// byIssuerClient asks for a token for the registration reg names by its
// issuer and client_id.
func byIssuerClient(reg *ltikeysv1.Registration, scopes ...string) *ltikeysv1.GetPlatformAccessTokenRequest {
	return &ltikeysv1.GetPlatformAccessTokenRequest{
		Lookup: &ltikeysv1.GetPlatformAccessTokenRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
			Issuer: reg.GetIssuer(), ClientId: reg.GetClientId(),
		}},
		Scopes: scopes,
	}
}

// sortedSet returns scopes sorted, without repeats.
func sortedSet(scopes ...string) []string {
	return slices.Compact(slices.Sorted(slices.Values(scopes)))
}

// claimInt returns the NumericDate claim name of a verified assertion.
func claimInt(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %v, not a number", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %v: %v", name, n, err)
	}
	return v
}

// TestPlatformAccessToken follows one registration's tokens through the
// cache, concurrent callers, expiry, a rotation, an update and deletion,
// on every backend. The fake platform verifies each assertion against the
// JWK Set ltikeys publishes for the registration.
func TestPlatformAccessToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := startPlatformEnv(t, b.url(t), platformEnvOptions{})
			testPlatformAccessToken(t, e)
		})
	}
}

func testPlatformAccessToken(t *testing.T, e *platformEnv) {
	id, oldKid := e.reg.GetId(), e.reg.GetKid()
	t0 := e.clock.Now()
	var hits, misses float64
	// call gets a token for scopes, and checks whether it came from the
	// cache and, if not, that exactly one request was made for it.
	call := func(what string, cached bool, scopes ...string) *ltikeysv1.GetPlatformAccessTokenResponse {
		t.Helper()
		before := e.platform.Count()
		resp := e.token(t, e.node, scopes...)
		made := e.platform.Count() - before
		switch {
		case resp.GetCached() != cached:
			t.Fatalf("%s: cached = %v, want %v", what, resp.GetCached(), cached)
		case cached && made != 0:
			t.Fatalf("%s: a cached token, and %d requests to the platform", what, made)
		case !cached && made != 1:
			t.Fatalf("%s: %d requests to the platform, want 1", what, made)
		}
		if cached {
			hits++
		} else {
			misses++
			if got := e.lastRequest(t).AccessToken; resp.GetAccessToken() != got {
				t.Fatalf("%s: access_token is not the one the platform issued", what)
			}
		}
		return resp
	}

	// The first call obtains a token, the second is answered from memory.
	first := call("first call", false, scopeScore, scopeLineItem)
	req := e.lastRequest(t)
	if first.GetTokenType() != "Bearer" {
		t.Errorf("token_type %q, want Bearer", first.GetTokenType())
	}
	if got := first.GetExpireTime().AsTime(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("expire_time %v, want %v (sent at %v, expires_in 3600)", got, t0.Add(time.Hour), t0)
	}
	if want := sortedSet(scopeScore, scopeLineItem); !slices.Equal(first.GetScopes(), want) {
		t.Errorf("scopes %q, want %q", first.GetScopes(), want)
	}
	if got, want := req.Form.Get("scope"), scopeLineItem+" "+scopeScore; got != want {
		t.Errorf("scope sent %q, want %q", got, want)
	}
	if req.KeyID != oldKid {
		t.Errorf("assertion signed by %q, want the registration's key %q", req.KeyID, oldKid)
	}
	if !strings.HasPrefix(req.UserAgent, "ltikeys/") {
		t.Errorf("User-Agent %q", req.UserAgent)
	}
	if iat := claimInt(t, req.Claims, "iat"); iat != t0.Unix() {
		t.Errorf("assertion iat %d, want the injected clock's %d", iat, t0.Unix())
	}
	if e.jwksFetches.Load() == 0 {
		t.Error("the platform verified the assertion without fetching the registration's JWK Set from ltikeys")
	}
	same := func(what string, got *ltikeysv1.GetPlatformAccessTokenResponse) {
		t.Helper()
		if got.GetAccessToken() != first.GetAccessToken() || !got.GetExpireTime().AsTime().Equal(first.GetExpireTime().AsTime()) ||
			!slices.Equal(got.GetScopes(), first.GetScopes()) || got.GetTokenType() != "Bearer" {
			t.Errorf("%s: not the first token (expire_time %v, scopes %q)", what, got.GetExpireTime().AsTime(), got.GetScopes())
		}
	}
	same("second call", call("second call", true, scopeScore, scopeLineItem))
	same("the same set in another order, repeated", call("the same set in another order", true, scopeLineItem, scopeScore, scopeLineItem))
	byPair, err := e.keys.GetPlatformAccessToken(e.as("platform"), byIssuerClient(e.reg, scopeScore, scopeLineItem))
	if err != nil {
		t.Fatalf("by issuer_client: %v", err)
	}
	hits++
	if !byPair.GetCached() {
		t.Error("by issuer_client: not cached")
	}
	same("by issuer_client", byPair)

	// 100 concurrent callers of one scope set, named in four ways, share
	// one request. The platform holds its answer until every caller has
	// missed the cache, so that all of them wait on the exchange.
	concurrent := [][]string{
		{scopeResult, scopeMembership},
		{scopeMembership, scopeResult},
		{scopeResult, scopeMembership, scopeResult},
		{scopeMembership, scopeMembership, scopeResult, scopeResult},
	}
	const callers = 100
	for len(e.misses) > 0 {
		<-e.misses
	}
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseAll()
	e.platform.SetAnswer(platformtest.Answer{Hold: release})
	before := e.platform.Count()
	resps := make([]*ltikeysv1.GetPlatformAccessTokenResponse, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			resps[i], errs[i] = e.keys.GetPlatformAccessToken(e.as("platform"), byID(id, concurrent[i%len(concurrent)]...))
		})
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i := range callers {
		select {
		case <-e.misses:
		case <-timeout.C:
			t.Fatalf("%d of %d callers missed the cache before the timeout", i, callers)
		}
	}
	releaseAll()
	wg.Wait()
	e.platform.SetAnswer(platformtest.Answer{})
	misses += callers
	if n := e.platform.Count() - before; n != 1 {
		t.Fatalf("%d concurrent callers made %d requests to the platform, want 1", callers, n)
	}
	shared := e.lastRequest(t).AccessToken
	for i := range callers {
		switch {
		case errs[i] != nil:
			t.Fatalf("concurrent caller %d: %v", i, errs[i])
		case resps[i].GetAccessToken() != shared:
			t.Fatalf("concurrent caller %d got another token than the one issued", i)
		case resps[i].GetCached():
			t.Errorf("concurrent caller %d: cached, but it waited on the request", i)
		case !slices.Equal(resps[i].GetScopes(), sortedSet(scopeResult, scopeMembership)):
			t.Errorf("concurrent caller %d: scopes %q", i, resps[i].GetScopes())
		}
	}
	if shared == first.GetAccessToken() {
		t.Error("another scope set got the first set's token")
	}

	// Another scope set makes its own request; the first is still cached.
	other := call("a third scope set", false, scopeScore)
	if other.GetAccessToken() == first.GetAccessToken() || other.GetAccessToken() == shared {
		t.Error("a third scope set got another set's token")
	}
	same("the first set again", call("the first set again", true, scopeLineItem, scopeScore))

	// Expiry: the token is reused until its expiry less the margin, then a
	// new one is obtained with a new assertion.
	e.clock.Advance(time.Hour - platform.DefaultExpiryMargin - time.Second)
	same("a second before the margin", call("a second before the margin", true, scopeLineItem, scopeScore))
	e.clock.Advance(time.Second)
	renewed := call("at the margin", false, scopeLineItem, scopeScore)
	renewal := e.lastRequest(t)
	if renewed.GetAccessToken() == first.GetAccessToken() {
		t.Error("the renewed token is the expired one")
	}
	if got, want := renewed.GetExpireTime().AsTime(), e.clock.Now().Add(time.Hour); !got.Equal(want) {
		t.Errorf("renewed expire_time %v, want %v", got, want)
	}
	if renewal.Assertion == req.Assertion || renewal.Claims["jti"] == req.Claims["jti"] {
		t.Error("the renewal reused the first assertion or its jti")
	}
	if iat := claimInt(t, renewal.Claims, "iat"); iat != e.clock.Now().Unix() {
		t.Errorf("renewal assertion iat %d, want %d", iat, e.clock.Now().Unix())
	}
	call("after the renewal", true, scopeLineItem, scopeScore)

	// A rotation that signs at once drops the tokens: the next one is
	// obtained with an assertion signed by the new key, which the platform
	// found in the registration's JWK Set.
	rotated, err := e.keys.RotateKey(e.as("manager"), rotateNow(id))
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	newKid := rotated.GetNewKey().GetKid()
	fetches := e.jwksFetches.Load()
	afterRotation := call("after the rotation", false, scopeLineItem, scopeScore)
	if got := e.lastRequest(t).KeyID; got != newKid || got == oldKid {
		t.Errorf("after the rotation, the assertion is signed by %q, want the new key %q (old %q)", got, newKid, oldKid)
	}
	if e.jwksFetches.Load() == fetches {
		t.Error("the platform verified the new key's assertion without fetching the JWK Set again")
	}
	if afterRotation.GetAccessToken() == renewed.GetAccessToken() {
		t.Error("after the rotation, the token obtained with the old key was returned")
	}
	resp, err := http.Get(e.reg.GetToolJwksUrl())
	if err != nil {
		t.Fatal(err)
	}
	var served struct{ Keys []struct{ Kid string } }
	err = json.NewDecoder(resp.Body).Decode(&served)
	resp.Body.Close()
	if err != nil || !slices.ContainsFunc(served.Keys, func(k struct{ Kid string }) bool { return k.Kid == newKid }) {
		t.Errorf("the registration's JWK Set lacks the new key %s (%v)", newKid, err)
	}
	call("after the rotation, again", true, scopeScore, scopeLineItem)

	// Updating the registration drops its tokens too.
	if _, err := e.keys.UpdateRegistration(e.as("manager"), &ltikeysv1.UpdateRegistrationRequest{
		Registration: &ltikeysv1.Registration{Id: id, JwksUri: "https://lms.example/jwks-2"},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"jwks_uri"}},
	}); err != nil {
		t.Fatalf("UpdateRegistration: %v", err)
	}
	call("after an update", false, scopeScore, scopeLineItem)

	// Once the registration is deleted, no token is handed out and no
	// request is made.
	if _, err := e.keys.DeleteRegistration(e.as("manager"), &ltikeysv1.DeleteRegistrationRequest{Id: id}); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	count := e.platform.Count()
	for name, req := range map[string]*ltikeysv1.GetPlatformAccessTokenRequest{
		"by id":            byID(id, scopeScore, scopeLineItem),
		"by issuer_client": byIssuerClient(e.reg, scopeScore, scopeLineItem),
	} {
		if _, err := e.keys.GetPlatformAccessToken(e.as("platform"), req); status.Code(err) != codes.NotFound {
			t.Errorf("after deletion, %s: %v, want NotFound", name, err)
		}
	}
	if n := e.platform.Count() - count; n != 0 {
		t.Errorf("after deletion, %d requests to the platform", n)
	}

	// Every request verified, each with its own assertion and jti.
	jtis := map[any]bool{}
	for i, r := range e.platform.Requests() {
		if r.Rejected != "" {
			t.Errorf("request %d refused by the platform: %s", i, r.Rejected)
		}
		jtis[r.Claims["jti"]] = true
	}
	if len(jtis) != e.platform.Count() {
		t.Errorf("%d distinct jti in %d requests", len(jtis), e.platform.Count())
	}

	for series, want := range map[string]float64{
		tokenRequests(platform.OutcomeOK): float64(e.platform.Count()),
		tokenCacheHits:                    hits,
		tokenCacheMisses:                  misses,
	} {
		if got := metricValue(t, e.metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, o := range platform.Outcomes {
		if o == platform.OutcomeOK {
			continue
		}
		if got := metricValue(t, e.metrics, tokenRequests(o)); got != 0 {
			t.Errorf("%s = %v, want 0", tokenRequests(o), got)
		}
	}
}

// platformStatus is what an error of GetPlatformAccessToken must carry.
type platformStatus struct {
	code   codes.Code
	reason string
	// metadata is the ErrorInfo's metadata, exactly.
	metadata map[string]string
	// retry is the RetryInfo's delay; 0 when there must be none.
	retry time.Duration
}

// checkPlatformStatus fails unless err is want: its code, one ErrorInfo
// of the platform domain with want's reason and metadata, and a RetryInfo
// of want.retry if that is set, and none otherwise.
func checkPlatformStatus(t *testing.T, err error, want platformStatus) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want.code {
		t.Fatalf("code %v (%v), want %v", st.Code(), err, want.code)
	}
	var infos []*errdetails.ErrorInfo
	var retries []*errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			infos = append(infos, d)
		case *errdetails.RetryInfo:
			retries = append(retries, d)
		default:
			t.Errorf("unexpected detail %T", d)
		}
	}
	if len(infos) != 1 {
		t.Fatalf("%d ErrorInfo details, want 1: %v", len(infos), err)
	}
	info := infos[0]
	if info.GetReason() != want.reason || info.GetDomain() != server.PlatformErrorDomain {
		t.Errorf("ErrorInfo %s/%s, want %s/%s", info.GetDomain(), info.GetReason(), server.PlatformErrorDomain, want.reason)
	}
	if !maps.Equal(info.GetMetadata(), want.metadata) {
		t.Errorf("ErrorInfo metadata %v, want %v", info.GetMetadata(), want.metadata)
	}
	switch {
	case want.retry == 0 && len(retries) != 0:
		t.Errorf("a RetryInfo of %v, want none", retries[0].GetRetryDelay().AsDuration())
	case want.retry != 0 && len(retries) != 1:
		t.Errorf("%d RetryInfo details, want one of %v", len(retries), want.retry)
	case want.retry != 0 && retries[0].GetRetryDelay().AsDuration() != want.retry:
		t.Errorf("RetryInfo %v, want %v", retries[0].GetRetryDelay().AsDuration(), want.retry)
	}
}

// closedPort returns an address on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestPlatformAccessTokenErrors maps each way a platform can fail to its
// status: code, ErrorInfo reason and metadata, RetryInfo. None is cached.
func TestPlatformAccessTokenErrors(t *testing.T) {
	e := startPlatformEnv(t, storagetest.SQLiteURL(t), platformEnvOptions{})
	id := e.reg.GetId()
	retryAt := e.clock.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	unavailable := func(md map[string]string, retry time.Duration) platformStatus {
		return platformStatus{codes.Unavailable, server.ReasonPlatformUnavailable, md, retry}
	}
	for _, tc := range []struct {
		name   string
		answer platformtest.Answer
		// endpoint, if set, replaces the registration's token_endpoint.
		endpoint string
		want     platformStatus
		outcome  platform.Outcome
		// notInMessage is a part of the answer the message must not quote.
		notInMessage string
	}{
		{
			name:   "invalid_client, 401",
			answer: platformtest.Answer{Status: 401, Error: "invalid_client", Description: "unknown client"},
			want: platformStatus{codes.FailedPrecondition, server.ReasonPlatformOAuthError,
				map[string]string{"error": "invalid_client", "error_description": "unknown client", "http_status": "401"}, 0},
			outcome: platform.OutcomeOAuthError,
		},
		{
			name:   "invalid_grant",
			answer: platformtest.Answer{Error: "invalid_grant"},
			want: platformStatus{codes.FailedPrecondition, server.ReasonPlatformOAuthError,
				map[string]string{"error": "invalid_grant", "http_status": "400"}, 0},
			outcome: platform.OutcomeOAuthError,
		},
		{
			name:   "invalid_scope",
			answer: platformtest.Answer{Error: "invalid_scope", Description: "not granted to this tool"},
			want: platformStatus{codes.InvalidArgument, server.ReasonPlatformOAuthError,
				map[string]string{"error": "invalid_scope", "error_description": "not granted to this tool", "http_status": "400"}, 0},
			outcome: platform.OutcomeOAuthError,
		},
		{
			name:    "temporarily_unavailable",
			answer:  platformtest.Answer{Error: "temporarily_unavailable"},
			want:    unavailable(map[string]string{"error": "temporarily_unavailable", "http_status": "400"}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeOAuthError,
		},
		{
			name:    "500",
			answer:  platformtest.Answer{Status: 500},
			want:    unavailable(map[string]string{"http_status": "500"}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeUnavailable,
		},
		{
			name:    "429 with Retry-After in seconds",
			answer:  platformtest.Answer{Status: 429, Header: http.Header{"Retry-After": {"7"}}},
			want:    unavailable(map[string]string{"http_status": "429"}, 7*time.Second),
			outcome: platform.OutcomeUnavailable,
		},
		{
			name:    "503 with Retry-After as a date",
			answer:  platformtest.Answer{Status: 503, Header: http.Header{"Retry-After": {retryAt}}},
			want:    unavailable(map[string]string{"http_status": "503"}, 90*time.Second),
			outcome: platform.OutcomeUnavailable,
		},
		{
			name:         "malformed JSON",
			answer:       platformtest.Answer{Body: []byte(`{"access_token": "half-written`)},
			want:         unavailable(map[string]string{"http_status": "200"}, server.UnavailableRetryDelay),
			outcome:      platform.OutcomeMalformed,
			notInMessage: "half-written",
		},
		{
			name:    "no access_token",
			answer:  platformtest.Answer{Fields: map[string]any{"access_token": nil}},
			want:    unavailable(map[string]string{"http_status": "200"}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeMalformed,
		},
		{
			name:    "token_type not Bearer",
			answer:  platformtest.Answer{Fields: map[string]any{"token_type": "mac"}},
			want:    unavailable(map[string]string{"http_status": "200"}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeMalformed,
		},
		{
			name:    "expires_in a string",
			answer:  platformtest.Answer{Fields: map[string]any{"expires_in": "3600"}},
			want:    unavailable(map[string]string{"http_status": "200"}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeMalformed,
		},
		{
			name:         "a 400 that is not an OAuth error",
			answer:       platformtest.Answer{Status: 400, Body: []byte("<html>proxy error page</html>")},
			want:         unavailable(map[string]string{"http_status": "400"}, server.UnavailableRetryDelay),
			outcome:      platform.OutcomeMalformed,
			notInMessage: "proxy error page",
		},
		{
			name:    "a body larger than the bound",
			answer:  platformtest.Answer{Fields: map[string]any{"padding": strings.Repeat("p", platform.DefaultMaxResponseBytes)}},
			want:    unavailable(map[string]string{}, server.UnavailableRetryDelay),
			outcome: platform.OutcomeMalformed,
		},
		{
			name:         "redirect",
			answer:       platformtest.Answer{Location: "https://elsewhere.example/token"},
			want:         platformStatus{codes.FailedPrecondition, server.ReasonTokenEndpointRefused, map[string]string{}, 0},
			outcome:      platform.OutcomeRefused,
			notInMessage: "elsewhere.example",
		},
		{
			name:     "nothing listening",
			endpoint: "https://" + closedPort(t) + "/token",
			want:     unavailable(map[string]string{}, server.UnavailableRetryDelay),
			outcome:  platform.OutcomeUnavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.endpoint != "" {
				setTokenEndpoint(t, e, tc.endpoint)
				defer setTokenEndpoint(t, e, e.platform.TokenURL)
			}
			e.platform.SetAnswer(tc.answer)
			defer e.platform.SetAnswer(platformtest.Answer{})
			requests, outcomes := e.platform.Count(), metricValue(t, e.metrics, tokenRequests(tc.outcome))
			_, err := e.keys.GetPlatformAccessToken(e.as("platform"), byID(id, scopeScore))
			checkPlatformStatus(t, err, tc.want)
			msg := status.Convert(err).Message()
			if tc.notInMessage != "" && strings.Contains(msg, tc.notInMessage) {
				t.Errorf("the message quotes the platform's answer: %s", msg)
			}
			wantRequests := 1
			if tc.endpoint != "" {
				wantRequests = 0
			}
			if n := e.platform.Count() - requests; n != wantRequests {
				t.Errorf("%d requests reached the platform, want %d", n, wantRequests)
			}
			if got := metricValue(t, e.metrics, tokenRequests(tc.outcome)); got != outcomes+1 {
				t.Errorf("%s moved from %v to %v, want one more", tokenRequests(tc.outcome), outcomes, got)
			}
		})
	}

	// No error was cached: the next call obtains a token.
	if resp := e.token(t, e.node, scopeScore); resp.GetCached() || resp.GetAccessToken() != e.lastRequest(t).AccessToken {
		t.Errorf("after the errors: cached %v, or not the token issued", resp.GetCached())
	}

	// A platform slower than the HTTP timeout (serve --platform-timeout).
	t.Run("slow answer", func(t *testing.T) {
		slow := e.sibling(t, platform.HTTPOptions{Timeout: time.Second})
		hold, arrived := make(chan struct{}), make(chan struct{}, 1)
		defer close(hold)
		e.platform.SetAnswer(platformtest.Answer{Hold: hold, Arrived: arrived})
		defer e.platform.SetAnswer(platformtest.Answer{})
		_, err := slow.keys.GetPlatformAccessToken(e.as("platform"), byID(id, scopeScore))
		checkPlatformStatus(t, err, unavailable(map[string]string{}, server.UnavailableRetryDelay))
		select {
		case <-arrived:
		default:
			t.Error("the request did not reach the platform: the timeout hit before its answer")
		}
		if got := metricValue(t, slow.metrics, tokenRequests(platform.OutcomeUnavailable)); got != 1 {
			t.Errorf("%s = %v, want 1", tokenRequests(platform.OutcomeUnavailable), got)
		}
	})

	// Requests refused before anything is sent.
	legacy := registrationWithoutTokenEndpoint(t, e)
	count, sent := e.platform.Count(), metricValue(t, e.metrics, tokenCacheMisses)
	for _, tc := range []struct {
		name  string
		req   *ltikeysv1.GetPlatformAccessTokenRequest
		code  codes.Code
		field string
	}{
		{"no scopes", byID(id), codes.InvalidArgument, "scopes"},
		{"an empty scope", byID(id, scopeScore, ""), codes.InvalidArgument, "scopes"},
		{"a scope with a space", byID(id, scopeScore+" "+scopeLineItem), codes.InvalidArgument, "scopes"},
		{"a scope with a double quote", byID(id, `a"b`), codes.InvalidArgument, "scopes"},
		{"a scope with a backslash", byID(id, `a\b`), codes.InvalidArgument, "scopes"},
		{"a scope with a control character", byID(id, "a\x01b"), codes.InvalidArgument, "scopes"},
		{"a non-ASCII scope", byID(id, "scöpe"), codes.InvalidArgument, "scopes"},
		{"a scope too long", byID(id, strings.Repeat("s", platform.MaxScopeBytes+1)), codes.InvalidArgument, "scopes"},
		{"too many scopes", byID(id, slices.Repeat([]string{scopeScore}, platform.MaxScopes+1)...), codes.InvalidArgument, "scopes"},
		{"no lookup", &ltikeysv1.GetPlatformAccessTokenRequest{Scopes: []string{scopeScore}}, codes.InvalidArgument, "lookup"},
		{"a malformed id", byID("not-a-uuid", scopeScore), codes.InvalidArgument, "registration_id"},
		{"an unknown id", byID("0190a5c0-0000-7000-8000-00000000abcd", scopeScore), codes.NotFound, ""},
		{"an unknown issuer and client_id", byIssuerClient(&ltikeysv1.Registration{Issuer: e.reg.GetIssuer(), ClientId: "someone-else"}, scopeScore), codes.NotFound, ""},
		{"no token_endpoint", byID(legacy, scopeScore), codes.FailedPrecondition, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.keys.GetPlatformAccessToken(e.as("platform"), tc.req)
			if tc.field != "" {
				wantFieldViolation(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("%v, want %v", err, tc.code)
			}
		})
	}
	if n := e.platform.Count() - count; n != 0 {
		t.Errorf("refused requests made %d requests to the platform", n)
	}
	if got := metricValue(t, e.metrics, tokenCacheMisses); got != sent {
		t.Errorf("refused requests looked up the token cache %v times", got-sent)
	}
}

// setTokenEndpoint points e's registration at endpoint.
func setTokenEndpoint(t *testing.T, e *platformEnv, endpoint string) {
	t.Helper()
	if _, err := e.keys.UpdateRegistration(e.as("manager"), &ltikeysv1.UpdateRegistrationRequest{
		Registration: &ltikeysv1.Registration{Id: e.reg.GetId(), TokenEndpoint: endpoint},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"token_endpoint"}},
	}); err != nil {
		t.Fatalf("UpdateRegistration token_endpoint %s: %v", endpoint, err)
	}
}

// registrationWithoutTokenEndpoint creates a registration through e and
// then empties its token endpoint beneath the API, as only an old row can
// have it, and returns its id.
func registrationWithoutTokenEndpoint(t *testing.T, e *platformEnv) string {
	t.Helper()
	req := validCreate("legacy-" + strconv.FormatInt(uniqueSuffix.Add(1), 10))
	created, err := e.keys.CreateRegistration(e.as("manager"), req)
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetRegistration().GetId()
	if _, err := e.store.UpdateRegistration(context.Background(), id, func(r storage.Registration) (storage.Registration, error) {
		r.TokenEndpoint = ""
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPlatformAccessTokenAddressGuard resolves the token endpoint's name
// to a private address and to loopback: both are refused before any
// request is sent, unless private platforms are allowed.
func TestPlatformAccessTokenAddressGuard(t *testing.T) {
	loopback := platformtest.Resolver{"platform.example": {netip.MustParseAddr("127.0.0.1")}}
	e := startPlatformEnv(t, storagetest.SQLiteURL(t), platformEnvOptions{
		host: "platform.example",
		http: platform.HTTPOptions{Resolver: loopback, AllowPrivate: true},
	})
	if !strings.HasPrefix(e.reg.GetTokenEndpoint(), "https://platform.example:") {
		t.Fatalf("token_endpoint %s", e.reg.GetTokenEndpoint())
	}
	for _, tc := range []struct {
		name     string
		resolver platformtest.Resolver
		class    string
	}{
		{"a private address", platformtest.Resolver{"platform.example": {netip.MustParseAddr("10.0.0.1")}}, "private"},
		{"loopback under a name that is not loopback", loopback, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guarded := e.sibling(t, platform.HTTPOptions{Resolver: tc.resolver})
			count := e.platform.Count()
			_, err := guarded.keys.GetPlatformAccessToken(e.as("platform"), byID(e.reg.GetId(), scopeScore))
			checkPlatformStatus(t, err, platformStatus{codes.FailedPrecondition, server.ReasonTokenEndpointRefused, map[string]string{}, 0})
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "token_endpoint") || !strings.Contains(msg, tc.class) {
				t.Errorf("message %q names neither token_endpoint nor the %s address", msg, tc.class)
			}
			if n := e.platform.Count() - count; n != 0 {
				t.Errorf("%d requests reached the platform", n)
			}
			if got := metricValue(t, guarded.metrics, tokenRequests(platform.OutcomeRefused)); got != 1 {
				t.Errorf("%s = %v, want 1", tokenRequests(platform.OutcomeRefused), got)
			}
		})
	}
	// With private platforms allowed, the same name is reached.
	resp := e.token(t, e.node, scopeScore)
	if resp.GetCached() || resp.GetAccessToken() != e.lastRequest(t).AccessToken {
		t.Errorf("allowed: cached %v, or not the token issued", resp.GetCached())
	}
}

// TestPlatformAccessTokenAccessControl: the platform.token scope allows
// GetPlatformAccessToken and nothing else, and no other scope allows it.
func TestPlatformAccessTokenAccessControl(t *testing.T) {
	e := startPlatformEnv(t, storagetest.SQLiteURL(t), platformEnvOptions{})
	id := e.reg.GetId()
	if _, err := e.keys.GetPlatformAccessToken(e.as("platform"), byID(id, scopeScore)); err != nil {
		t.Fatalf("with platform.token: %v", err)
	}
	for _, m := range keyServiceMethods(t) {
		if fullMethod(m) == ltikeysv1.KeyService_GetPlatformAccessToken_FullMethodName {
			continue
		}
		if err := invoke(e.as("platform"), e.conn, m, dynamicpb.NewMessage(m.Input())); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s with only platform.token: %v, want PermissionDenied", m.Name(), err)
		}
	}
	count := e.platform.Count()
	for _, tok := range platformEnvTokens {
		if tok.name == "platform" {
			continue
		}
		if _, err := e.keys.GetPlatformAccessToken(e.as(tok.name), byID(id, scopeLineItem)); status.Code(err) != codes.PermissionDenied {
			t.Errorf("GetPlatformAccessToken as %s (%v): %v, want PermissionDenied", tok.name, tok.scopes, err)
		}
	}
	if _, err := e.keys.GetPlatformAccessToken(context.Background(), byID(id, scopeLineItem)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetPlatformAccessToken without a token: %v, want Unauthenticated", err)
	}
	if n := e.platform.Count() - count; n != 0 {
		t.Errorf("refused callers made %d requests to the platform", n)
	}

	// The audit names the caller and the registration of each call.
	checkScopeAudit(t, e.logs.String(), ltikeysv1.KeyService_GetPlatformAccessToken_FullMethodName, "platform", id)
}

// TestPlatformAccessTokenReplicas: two ltikeys processes on one database.
// A rotation through the first reaches the second's tokens once its JWKS
// cache is refreshed: the key that signs is part of the token cache's
// key, so its next token is obtained with the new key.
func TestPlatformAccessTokenReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			e := startPlatformEnv(t, url, platformEnvOptions{})
			second := e.replica(t, url, platform.HTTPOptions{})
			id, oldKid := e.reg.GetId(), e.reg.GetKid()

			before := e.token(t, second, scopeScore)
			if before.GetCached() || e.lastRequest(t).KeyID != oldKid {
				t.Fatalf("second replica's first token: cached %v, signed by %s; want a new one signed by %s", before.GetCached(), e.lastRequest(t).KeyID, oldKid)
			}
			rotated, err := e.keys.RotateKey(e.as("manager"), rotateNow(id))
			if err != nil {
				t.Fatalf("RotateKey: %v", err)
			}
			newKid := rotated.GetNewKey().GetKid()

			// Until it refreshes, the second replica signs with the key it
			// knows, and its token for that key stands.
			if stale := e.token(t, second, scopeScore); !stale.GetCached() || stale.GetAccessToken() != before.GetAccessToken() {
				t.Errorf("before its refresh, the second replica: cached %v, same token %v", stale.GetCached(), stale.GetAccessToken() == before.GetAccessToken())
			}
			if err := second.jwks.Refresh(context.Background()); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			count := e.platform.Count()
			after := e.token(t, second, scopeScore)
			if after.GetCached() || e.platform.Count() != count+1 {
				t.Fatalf("after its refresh, the second replica: cached %v, %d requests; want a new token", after.GetCached(), e.platform.Count()-count)
			}
			if got := e.lastRequest(t).KeyID; got != newKid {
				t.Errorf("after its refresh, the second replica's assertion is signed by %s, want the new key %s", got, newKid)
			}
			if after.GetAccessToken() == before.GetAccessToken() {
				t.Error("after its refresh, the second replica returned the token of the old key")
			}
			// The first replica, which rotated, uses the new key as well.
			e.token(t, e.node, scopeScore)
			if got := e.lastRequest(t).KeyID; got != newKid {
				t.Errorf("the first replica's assertion is signed by %s, want %s", got, newKid)
			}
		})
	}
}
