package platform_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

var (
	launchKeysOnce sync.Once
	launchKeys     []*rsa.PrivateKey
)

// launchKey returns the i-th of a few RSA keys the tests here share
// (generating keys is the slow part of a test).
func launchKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	launchKeysOnce.Do(func() {
		for range 3 {
			launchKeys = append(launchKeys, platformtest.NewRSAKey(t))
		}
	})
	if i >= len(launchKeys) {
		t.Fatalf("no launch key %d", i)
	}
	return launchKeys[i]
}

// keySetObserver records what a KeySetCache reports. Every fetch is also
// sent on fetched, so that a test can wait for one in the background.
type keySetObserver struct {
	mu       sync.Mutex
	outcomes map[platform.Outcome]int
	reasons  map[platform.FetchReason]int
	served   int
	stale    int
	lastAge  time.Duration
	fetched  chan platform.Outcome
}

func newKeySetObserver() *keySetObserver {
	return &keySetObserver{
		outcomes: map[platform.Outcome]int{},
		reasons:  map[platform.FetchReason]int{},
		fetched:  make(chan platform.Outcome, 10000),
	}
}

func (o *keySetObserver) KeySetFetch(outcome platform.Outcome, reason platform.FetchReason, _ time.Duration) {
	o.mu.Lock()
	o.outcomes[outcome]++
	o.reasons[reason]++
	o.mu.Unlock()
	o.fetched <- outcome
}

func (o *keySetObserver) KeySetServed(age time.Duration, stale bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.served++
	o.lastAge = age
	if stale {
		o.stale++
	}
}

func (o *keySetObserver) outcome(out platform.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[out]
}

func (o *keySetObserver) reason(r platform.FetchReason) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reasons[r]
}

// servedCounts returns the keys served and, of them, the stale ones.
func (o *keySetObserver) servedCounts() (served, stale int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.served, o.stale
}

// waitFetch waits for the next fetch to end and returns its outcome.
func (o *keySetObserver) waitFetch(t *testing.T) platform.Outcome {
	t.Helper()
	select {
	case out := <-o.fetched:
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("no key set fetch ended")
	}
	return ""
}

// drain forgets the fetches reported so far, for a later waitFetch.
func (o *keySetObserver) drain() {
	for {
		select {
		case <-o.fetched:
		default:
			return
		}
	}
}

// launchFixture is a fake platform that signs launches, and a
// KeySetCache that reaches its key set.
type launchFixture struct {
	l     *platformtest.Launcher
	clock *clock
	obs   *keySetObserver
	logs  *syncBuffer
	cache *platform.KeySetCache
	// want are the expectations its launches meet, with the fixture's
	// clock.
	want platform.Expectations
	// nonce is the nonce of want, and of launch's tokens.
	nonce string
}

type launchOptions struct {
	http  platform.HTTPOptions
	cache platform.KeySetOptions
}

func newLaunchFixture(t *testing.T, lo launchOptions) *launchFixture {
	t.Helper()
	f := &launchFixture{clock: newClock(), obs: newKeySetObserver(), logs: &syncBuffer{}, nonce: "nonce-" + randomText(t)}
	f.l = platformtest.NewLauncher(t, platformtest.LauncherOptions{
		ClientID:     "client-" + randomText(t),
		Issuer:       "https://lms.example/" + randomText(t),
		DeploymentID: "deployment-" + randomText(t),
		Key:          launchKey(t, 0),
		Now:          f.clock.Now,
	})
	ho := lo.http
	ho.Version = testVersion
	ho.RootCAs = f.l.CA.Pool
	ho.Proxy = noProxy
	hc, err := platform.NewHTTPClient(ho)
	if err != nil {
		t.Fatal(err)
	}
	co := lo.cache
	co.HTTPClient = hc
	co.Now = f.clock.Now
	co.Observer = f.obs
	co.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if f.cache, err = platform.NewKeySetCache(co); err != nil {
		t.Fatal(err)
	}
	f.want = platform.Expectations{Issuer: f.l.Issuer, ClientID: f.l.ClientID, Nonce: f.nonce, Now: f.clock.Now}
	return f
}

// launch signs a valid launch for the fixture's nonce, with edit applied
// to its claims.
func (f *launchFixture) launch(t *testing.T, edit func(platformtest.Claims) platformtest.Claims) string {
	t.Helper()
	c := f.l.LaunchClaims(f.nonce)
	if edit != nil {
		c = edit(c)
	}
	tok, err := f.l.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// verify verifies token against the fixture's key set and expectations.
func (f *launchFixture) verify(t *testing.T, token string) (*platform.Claims, error) {
	t.Helper()
	return platform.VerifyToken(t.Context(), token, f.cache.Source(f.l.JWKSURL), f.want)
}

// mustVerify verifies token and fails the test if it does not verify.
func (f *launchFixture) mustVerify(t *testing.T, token string) *platform.Claims {
	t.Helper()
	c, err := f.verify(t, token)
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	return c
}

// warnings returns how many warnings the cache logged.
func (f *launchFixture) warnings() int {
	return strings.Count(f.logs.String(), "level=WARN")
}

// reasonOf returns the reason of a *VerificationError, or "" for another
// error (or none).
func reasonOf(err error) string {
	var ve *platform.VerificationError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

// withKeyID returns token with its header's kid replaced, the payload and
// the signature left as they were: a token naming any kid, made without
// signing again.
func withKeyID(t *testing.T, token, kid string) string {
	t.Helper()
	return replaceHeader(t, token, "kid", kid)
}

// replaceHeader returns token with the header member name set to v, the
// rest as it was.
func replaceHeader(t *testing.T, token, name string, v any) string {
	t.Helper()
	parts := strings.SplitN(token, ".", 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	h[name] = v
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "." + parts[2]
}

// randomText returns 16 random base64url characters.
func randomText(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
