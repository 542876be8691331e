package platform_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// testVersion is the version the clients here send in their User-Agent.
const testVersion = "1.2.3-test"

// registrationID is the registration the fixtures' tokens are for.
const registrationID = "reg-1"

var (
	toolOnce   sync.Once
	toolClient *platformtest.Client
)

// tool returns the client every test signs its assertions with: one RSA
// key for the whole package keeps the tests fast.
func tool(t *testing.T) *platformtest.Client {
	t.Helper()
	toolOnce.Do(func() { toolClient = platformtest.NewClient(t, "tool-client") })
	if toolClient == nil {
		t.Fatal("no test client")
	}
	return toolClient
}

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// observer records what a TokenClient reports. Every miss is also sent
// on misses, for tests that wait for callers to be waiting.
type observer struct {
	mu       sync.Mutex
	hits     int
	outcomes map[platform.Outcome]int
	misses   chan struct{}
}

func newObserver() *observer {
	return &observer{outcomes: map[platform.Outcome]int{}, misses: make(chan struct{}, 1000)}
}

func (o *observer) CacheLookup(cache string, hit bool) {
	if cache != platform.TokenCacheName {
		panic("cache " + cache)
	}
	if !hit {
		o.misses <- struct{}{}
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hits++
}

func (o *observer) PlatformTokenRequest(outcome platform.Outcome, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[outcome]++
}

// lookups returns the hits and the misses not yet waited for.
func (o *observer) lookups() (hits, misses int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits, len(o.misses)
}

func (o *observer) outcome(out platform.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[out]
}

// waitMisses waits for n cache misses, failing the test after a while.
func (o *observer) waitMisses(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-o.misses:
		case <-timeout:
			t.Fatalf("fewer than %d cache misses", n)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fixture is a fake platform and a TokenClient that reaches it.
type fixture struct {
	p     *platformtest.Platform
	tool  *platformtest.Client
	clock *clock
	obs   *observer
	logs  *syncBuffer
	tc    *platform.TokenClient
}

type fixtureOptions struct {
	// host is the fake's host name, resolved to 127.0.0.1; "" means the
	// literal 127.0.0.1.
	host string
	http platform.HTTPOptions
	tc   platform.TokenClientOptions
}

func newFixture(t *testing.T, fo fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{tool: tool(t), clock: newClock(), obs: newObserver(), logs: &syncBuffer{}}
	f.p = platformtest.New(t, platformtest.Options{ClientID: f.tool.ID, Keys: f.tool.KeySet(), Host: fo.host})
	ho := fo.http
	ho.Version = testVersion
	ho.RootCAs = f.p.CA.Pool
	ho.Proxy = noProxy
	if ho.Resolver == nil {
		loopback := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		ho.Resolver = platformtest.Resolver{"localhost": loopback}
		if fo.host != "" {
			ho.Resolver.(platformtest.Resolver)[fo.host] = loopback
		}
	}
	hc, err := platform.NewHTTPClient(ho)
	if err != nil {
		t.Fatal(err)
	}
	to := fo.tc
	to.HTTPClient = hc
	to.Now = f.clock.Now
	to.Observer = f.obs
	to.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if f.tc, err = platform.NewTokenClient(to); err != nil {
		t.Fatal(err)
	}
	return f
}

// noProxy keeps the tests from the proxy the environment may name.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// request asks for scopes for registrationID at the fake's token URL,
// signing a new assertion each time.
func (f *fixture) request(scopes ...string) platform.TokenRequest {
	return platform.TokenRequest{
		RegistrationID: registrationID,
		TokenEndpoint:  f.p.TokenURL,
		Scopes:         scopes,
		Assertion:      f.tool.AssertionFunc(f.p.TokenURL),
	}
}

func (f *fixture) token(t *testing.T, scopes ...string) *platform.Token {
	t.Helper()
	tok, err := f.tc.Token(t.Context(), f.request(scopes...))
	if err != nil {
		t.Fatalf("Token(%q): %v", scopes, err)
	}
	return tok
}

// secrets returns every access token the fake issued and every assertion
// it received.
func (f *fixture) secrets() []string {
	var out []string
	for _, r := range f.p.Requests() {
		for _, s := range []string{r.AccessToken, r.Assertion} {
			if s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// checkNoSecrets fails if any of the texts holds a secret, or a
// recognisable part of one (its first or last 24 bytes, or its
// signature).
func checkNoSecrets(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		parts := []string{s}
		if len(s) > 48 {
			parts = append(parts, s[:24], s[len(s)-24:])
		}
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i > 24 {
			parts = append(parts, s[i+1:])
		}
		for _, text := range texts {
			for _, p := range parts {
				if strings.Contains(text, p) {
					t.Errorf("a secret (%d bytes) appears in %q", len(s), text)
				}
			}
		}
	}
}

// describe renders err every way a caller might print it.
func describe(err error) []string {
	return []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
}
