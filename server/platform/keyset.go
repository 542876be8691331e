package platform

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Defaults and limits of a KeySetCache.
const (
	// DefaultMinFreshness and DefaultMaxFreshness bound how long a fetched
	// key set is fresh, whatever its Cache-Control says; DefaultFreshness
	// is how long when it says nothing.
	DefaultMinFreshness = 5 * time.Minute
	DefaultMaxFreshness = 24 * time.Hour
	DefaultFreshness    = time.Hour
	// DefaultCooldown is the shortest time between two fetches of one key
	// set that tokens' unknown kids cause, and between a failed fetch and
	// the next attempt.
	DefaultCooldown = 30 * time.Second
	// DefaultMaxStale is how long after its expiry the last good set of a
	// platform keeps serving while fetches of a new one fail.
	DefaultMaxStale = 24 * time.Hour
	// DefaultMaxKeySets bounds the number of jwks_uris cached.
	DefaultMaxKeySets = 1000
	// DefaultMaxKeys bounds the keys (usable or not) a set may list; a
	// set with more is malformed.
	DefaultMaxKeys = 100
	// MinRSABits and MaxRSABits bound the modulus of a usable RSA key
	// (1EdTech Security Framework 1.1, section 6.1: at least 2048 bits).
	MinRSABits = 2048
	MaxRSABits = 8192
)

// refreshFraction is the part of a set's freshness after which an access
// that it answers starts a refresh in the background.
const refreshFraction = 0.75

// ErrUnknownKey: the platform's key set has no usable key with the kid
// asked for, even after the refetch the kid was allowed to cause.
// VerifyToken reports it as ReasonKIDUnknown.
var ErrUnknownKey = errors.New("no platform key with that kid")

// FetchReason says why a KeySetCache fetched a key set.
type FetchReason string

// The reasons, every one of them in FetchReasons.
const (
	// FetchCold: no set was cached (never fetched, evicted, or dropped
	// after MaxStale); the caller waited.
	FetchCold FetchReason = "cold"
	// FetchExpired: the cached set had expired; the caller waited.
	FetchExpired FetchReason = "expired"
	// FetchRefresh: a refresh in the background, ahead of expiry or
	// retrying after a failure while the last good set serves.
	FetchRefresh FetchReason = "refresh"
	// FetchUnknownKID: a token named a kid the cached set lacks; the
	// caller waited.
	FetchUnknownKID FetchReason = "unknown_kid"
)

// FetchReasons lists every FetchReason, for series created at zero.
var FetchReasons = []FetchReason{FetchCold, FetchExpired, FetchRefresh, FetchUnknownKID}

// KeySetOutcomes lists the outcomes a key set fetch can have:
// OutcomeOK, OutcomeUnavailable (no answer, a timeout, a status other
// than 200), OutcomeMalformed (not a usable JWK Set, or too large) and
// OutcomeRefused (the address guard or the redirect rule stopped it).
var KeySetOutcomes = []Outcome{OutcomeOK, OutcomeUnavailable, OutcomeMalformed, OutcomeRefused}

// KeySetObserver receives the events a KeySetCache reports, for metrics.
// Like Observer, its arguments come from small fixed sets (or are
// durations) and never carry a URL or a kid; its methods are called from
// many goroutines at once and must not block.
type KeySetObserver interface {
	// KeySetFetch reports one fetch of a platform's key set: its outcome
	// (one of KeySetOutcomes), why it was made, and how long its HTTP
	// request took.
	KeySetFetch(outcome Outcome, reason FetchReason, d time.Duration)
	// KeySetServed reports one key handed out, with the age of the set it
	// came from (since the fetch that got it was sent); stale says the
	// set is past its expiry and serves only because fetches fail.
	KeySetServed(age time.Duration, stale bool)
}

// KeySetOptions configures NewKeySetCache. Zero fields take their
// defaults.
type KeySetOptions struct {
	// HTTPClient fetches the key sets: one NewHTTPClient made, whose
	// guarantees (address guard, no redirects, bodies bounded to 64 KiB)
	// the cache relies on. Required.
	HTTPClient *http.Client
	// Now is the clock of freshness and cooldowns; nil means time.Now.
	Now func() time.Time
	// MinFreshness, MaxFreshness bound the freshness read from a
	// response's Cache-Control max-age; Freshness applies when it has
	// none. MinFreshness <= Freshness <= MaxFreshness.
	MinFreshness, MaxFreshness, Freshness time.Duration
	// Cooldown is the shortest time between two fetches of one URI that
	// unknown kids cause, and between a failed fetch and the next attempt.
	Cooldown time.Duration
	// MaxStale is how long past its expiry the last good set serves while
	// fetches fail.
	MaxStale time.Duration
	// MaxKeySets bounds the URIs cached; past it, the one used least
	// recently is forgotten.
	MaxKeySets int
	// MaxKeys bounds the keys of one set.
	MaxKeys int
	// FetchTimeout bounds one fetch, which runs detached from the
	// caller's context; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Observer, if not nil, receives fetch outcomes and served keys.
	Observer KeySetObserver
	// Logger, if not nil, gets one warning when fetches of a URI start
	// failing (not one per failure, nor per request) and one debug line
	// per fetch, with the URI, the outcome, the reason, the duration and
	// this package's error message, and in the warning until when the
	// last good set serves: nothing of a token, a kid or a response body.
	Logger *slog.Logger
}

// KeySetCache fetches platforms' JWK Sets and keeps them in memory, one
// per jwks_uri, shared by every registration that names the URI. It is
// safe for concurrent use. See the package documentation for when it
// fetches, what it keeps, and its errors.
type KeySetCache struct {
	http                      *http.Client
	now                       func() time.Time
	minFresh, maxFresh, fresh time.Duration
	cooldown, maxStale        time.Duration
	fetchTimeout              time.Duration
	maxSets, maxKeys          int
	obs                       KeySetObserver
	log                       *slog.Logger

	mu   sync.Mutex
	sets map[string]*keySetEntry
}

// keySetEntry is what the cache knows of one URI. Its fields are guarded
// by KeySetCache.mu.
type keySetEntry struct {
	// set is the last good set, nil if none (or dropped after MaxStale).
	set *keySet
	// attempted is when the last fetch started, and kidFetched when the
	// last one an unknown kid caused did; zero if none did.
	attempted, kidFetched time.Time
	// err is the error of the last fetch if it failed, nil if it
	// succeeded: a failure episode lasts while it is not nil.
	err error
	// call is the fetch in flight, nil if none.
	call *fetchCall
	// used is when a caller last asked for the URI.
	used time.Time
}

// keySet is one fetched JWK Set, reduced to its usable keys.
type keySet struct {
	keys map[string]jwk.Key
	// fetched is when the request that got it was sent; refreshAt and
	// expires follow from it and its freshness.
	fetched, refreshAt, expires time.Time
}

// fetchCall is one fetch in flight; every caller waiting on it shares its
// result.
type fetchCall struct {
	done chan struct{}
	// waiters counts the callers waiting, under KeySetCache.mu.
	waiters int
	// err is the fetch's error, set before done is closed.
	err error
}

// NewKeySetCache returns an empty KeySetCache.
func NewKeySetCache(opts KeySetOptions) (*KeySetCache, error) {
	if opts.HTTPClient == nil {
		return nil, errors.New("platform: key set cache: HTTPClient is required (see NewHTTPClient)")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinFreshness", &opts.MinFreshness, DefaultMinFreshness},
		{"MaxFreshness", &opts.MaxFreshness, DefaultMaxFreshness},
		{"Freshness", &opts.Freshness, DefaultFreshness},
		{"Cooldown", &opts.Cooldown, DefaultCooldown},
		{"MaxStale", &opts.MaxStale, DefaultMaxStale},
		{"FetchTimeout", &opts.FetchTimeout, DefaultFetchTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("platform: key set cache: %s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case opts.MinFreshness > opts.Freshness || opts.Freshness > opts.MaxFreshness:
		return nil, errors.New("platform: key set cache: want MinFreshness <= Freshness <= MaxFreshness")
	case opts.MaxKeySets < 0:
		return nil, errors.New("platform: key set cache: MaxKeySets must not be negative")
	case opts.MaxKeys < 0:
		return nil, errors.New("platform: key set cache: MaxKeys must not be negative")
	}
	c := &KeySetCache{
		http:         opts.HTTPClient,
		now:          opts.Now,
		minFresh:     opts.MinFreshness,
		maxFresh:     opts.MaxFreshness,
		fresh:        opts.Freshness,
		cooldown:     opts.Cooldown,
		maxStale:     opts.MaxStale,
		fetchTimeout: opts.FetchTimeout,
		maxSets:      cmpOr(opts.MaxKeySets, DefaultMaxKeySets),
		maxKeys:      cmpOr(opts.MaxKeys, DefaultMaxKeys),
		obs:          opts.Observer,
		log:          opts.Logger,
		sets:         make(map[string]*keySetEntry),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.obs == nil {
		c.obs = nopKeySetObserver{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Key returns the key with kid from the JWK Set at jwksURI, for verifying
// a signature. The key is shared: callers must not change it.
//
// A fresh cached set answers without touching the network (and, past
// three quarters of its freshness, starts a refresh in the background).
// A URI with no set, or an expired one, is fetched while the caller
// waits; so is a kid the set lacks, at most once per cooldown. Callers
// waiting on one URI share one fetch, which runs detached from their
// contexts and bounded by the fetch timeout; each caller still returns
// when its own ctx ends, with ctx.Err(). While fetches fail, the last
// good set serves for up to MaxStale past its expiry.
//
// Errors: ErrUnknownKey when the set has no usable key with kid; an
// *UnavailableError when there is no set to serve (the fetch failed, or
// failed less than a cooldown ago, then with RetryAfter the time until
// the next attempt), or when a refetch for an unknown kid failed; an
// error matching ErrRefused for a jwksURI this client will not reach;
// ctx.Err() when ctx ends first.
func (c *KeySetCache) Key(ctx context.Context, jwksURI, kid string) (jwk.Key, error) {
	if err := checkJWKSURI(jwksURI); err != nil {
		return nil, err
	}
	if kid == "" {
		return nil, ErrUnknownKey
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := c.now()
	c.mu.Lock()
	e := c.entry(jwksURI, now)
	e.used = now
	var reason FetchReason
	switch set := e.live(now, c.maxStale); {
	case set != nil && (now.Before(set.expires) || e.err != nil):
		// Fresh, or stale while fetches fail: it answers if it can.
		if k, ok := set.keys[kid]; ok {
			if e.call == nil && !now.Before(set.refreshAt) && now.Sub(e.attempted) >= c.cooldown {
				c.start(ctx, jwksURI, e, FetchRefresh, now)
			}
			c.mu.Unlock()
			c.obs.KeySetServed(now.Sub(set.fetched), !now.Before(set.expires))
			return k, nil
		}
		if e.call == nil && (now.Sub(e.kidFetched) < c.cooldown || e.err != nil && now.Sub(e.attempted) < c.cooldown) {
			err := e.missError(now, c.cooldown)
			c.mu.Unlock()
			return nil, err
		}
		reason = FetchUnknownKID
	case set != nil:
		reason = FetchExpired
	default:
		if e.call == nil && !e.attempted.IsZero() && now.Sub(e.attempted) < c.cooldown {
			err := e.missError(now, c.cooldown)
			c.mu.Unlock()
			return nil, err
		}
		reason = FetchCold
	}
	cl := e.call
	if cl == nil {
		cl = c.start(ctx, jwksURI, e, reason, now)
	}
	cl.waiters++
	c.mu.Unlock()

	select {
	case <-cl.done:
	case <-ctx.Done():
		c.mu.Lock()
		cl.waiters--
		c.mu.Unlock()
		return nil, ctx.Err()
	}

	// The fetch is done: look once more, without fetching again.
	now = c.now()
	c.mu.Lock()
	set := e.live(now, c.maxStale)
	var k jwk.Key
	if set != nil {
		k = set.keys[kid]
	}
	c.mu.Unlock()
	switch {
	case k != nil:
		c.obs.KeySetServed(now.Sub(set.fetched), !now.Before(set.expires))
		return k, nil
	case cl.err != nil:
		return nil, cl.err
	case set == nil:
		return nil, &UnavailableError{Reason: "the platform's key set is no longer cached"}
	}
	return nil, ErrUnknownKey
}

// Source returns the key source of one registration: Key with jwksURI
// bound, for VerifyToken.
func (c *KeySetCache) Source(jwksURI string) KeySource {
	return KeySourceFunc(func(ctx context.Context, kid string) (jwk.Key, error) {
		return c.Key(ctx, jwksURI, kid)
	})
}

// entry returns the entry of uri, making one (and room for it) if there
// is none. Called with c.mu held.
func (c *KeySetCache) entry(uri string, now time.Time) *keySetEntry {
	if e, ok := c.sets[uri]; ok {
		return e
	}
	if len(c.sets) >= c.maxSets {
		// Forget the URI used least recently. A fetch in flight for it
		// still completes for the callers waiting on it.
		var oldest string
		var oldestAt time.Time
		first := true
		for u, e := range c.sets {
			if first || e.used.Before(oldestAt) {
				oldest, oldestAt, first = u, e.used, false
			}
		}
		delete(c.sets, oldest)
	}
	e := &keySetEntry{used: now}
	c.sets[uri] = e
	return e
}

// live returns the entry's set unless it is past MaxStale (then dropped).
// Called with KeySetCache.mu held.
func (e *keySetEntry) live(now time.Time, maxStale time.Duration) *keySet {
	if e.set != nil && !now.Before(e.set.expires.Add(maxStale)) {
		e.set = nil
	}
	return e.set
}

// missError is the error of a lookup that the set cannot answer and that
// may not fetch, being within a cooldown: the last attempt's error, if it
// failed, with RetryAfter the time until the next attempt may be made;
// ErrUnknownKey if it succeeded. Called with KeySetCache.mu held.
func (e *keySetEntry) missError(now time.Time, cooldown time.Duration) error {
	var ue *UnavailableError
	switch {
	case e.err == nil:
		return ErrUnknownKey
	case errors.As(e.err, &ue):
		c := *ue
		c.RetryAfter = max(cooldown-now.Sub(e.attempted), time.Second)
		return &c
	}
	return e.err
}

// start starts a fetch of uri for e. Called with c.mu held.
func (c *KeySetCache) start(ctx context.Context, uri string, e *keySetEntry, reason FetchReason, now time.Time) *fetchCall {
	cl := &fetchCall{done: make(chan struct{})}
	e.call = cl
	e.attempted = now
	if reason == FetchUnknownKID {
		e.kidFetched = now
	}
	go c.run(context.WithoutCancel(ctx), uri, e, cl, reason, now)
	return cl
}

// run fetches uri, records the result in e and hands it to the waiters.
func (c *KeySetCache) run(ctx context.Context, uri string, e *keySetEntry, cl *fetchCall, reason FetchReason, sent time.Time) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()
	start := time.Now()
	set, err := c.fetch(ctx, uri, sent)
	d := time.Since(start)

	c.mu.Lock()
	firstFailure := err != nil && e.err == nil
	if err == nil {
		e.set, e.err = set, nil
	} else {
		e.err = err
	}
	if e.call == cl {
		e.call = nil
	}
	cl.err = err
	stale := e.set
	c.mu.Unlock()
	// The fetch is reported before its waiters return, so that what they
	// do next comes after it.
	defer close(cl.done)

	outcome := outcomeOf(err)
	c.obs.KeySetFetch(outcome, reason, d)
	attrs := []any{"jwks_uri", uri, "outcome", string(outcome), "reason", string(reason), "duration", d}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	c.log.DebugContext(ctx, "platform key set fetch", attrs...)
	if firstFailure {
		if stale != nil {
			attrs = append(attrs, "serving_set_fetched_at", stale.fetched, "serving_until", stale.expires.Add(c.maxStale))
		}
		c.log.WarnContext(ctx, "platform key set fetches are failing", attrs...)
	}
}

// fetch gets the JWK Set at uri, sent being the time of the request for
// its freshness.
func (c *KeySetCache) fetch(ctx context.Context, uri string, sent time.Time) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks_uri: %w: not a valid URL", ErrRefused)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, keySetTransportError(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	status := resp.StatusCode
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		return nil, &UnavailableError{Reason: "the platform's key set is too large", StatusCode: status, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	case err != nil && isTimeout(err):
		return nil, &UnavailableError{Reason: "the jwks_uri did not finish its answer in time", StatusCode: status}
	case err != nil:
		return nil, &UnavailableError{Reason: "reading the platform's key set", StatusCode: status, Err: err}
	case status != http.StatusOK:
		return nil, &UnavailableError{Reason: "the jwks_uri answered " + statusText(status), StatusCode: status}
	}
	keys, err := parseKeySet(body, c.maxKeys)
	if err != nil {
		return nil, &UnavailableError{Reason: "the platform's key set is not usable", StatusCode: status, Err: err}
	}
	fresh := freshness(resp.Header, c.fresh, c.minFresh, c.maxFresh)
	return &keySet{
		keys:      keys,
		fetched:   sent,
		refreshAt: sent.Add(time.Duration(float64(fresh) * refreshFraction)),
		expires:   sent.Add(fresh),
	}, nil
}

// keySetTransportError classifies a failed fetch.
func keySetTransportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // the URL is the registration's own
	}
	switch {
	case errors.Is(err, ErrRefused):
		return fmt.Errorf("jwks_uri: %w", err)
	case errors.Is(err, ErrResponseTooLarge):
		return &UnavailableError{Reason: "the platform's key set is too large", Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	case isTimeout(err):
		return &UnavailableError{Reason: "the jwks_uri did not answer in time"}
	}
	return &UnavailableError{Reason: "no answer from the jwks_uri", Err: err}
}

// checkJWKSURI applies the client's scheme rule to uri before anything is
// cached for it.
func checkJWKSURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("jwks_uri: %w: not a valid URL", ErrRefused)
	}
	if err := checkEndpoint(u); err != nil {
		return fmt.Errorf("jwks_uri: %w", err)
	}
	return nil
}

// freshness reads how long a key set is fresh from the response's
// Cache-Control: its max-age, less the response's Age, within [min, max];
// no-store or no-cache mean min; def when it gives neither. The smallest
// max-age wins when there are several.
func freshness(h http.Header, def, minFresh, maxFresh time.Duration) time.Duration {
	var maxAge time.Duration
	found := false
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				maxAge, found = 0, true
			case "max-age":
				secs, ok := deltaSeconds(strings.Trim(strings.TrimSpace(arg), `"`))
				if ok && (!found || secs < maxAge) {
					maxAge, found = secs, true
				}
			}
		}
	}
	if !found {
		return def
	}
	if age, ok := deltaSeconds(strings.TrimSpace(h.Get("Age"))); ok {
		maxAge -= age
	}
	return min(max(maxAge, minFresh), maxFresh)
}

// deltaSeconds reads an RFC 9111 delta-seconds: digits only, a value too
// large for a Duration being read as a year.
func deltaSeconds(s string) (time.Duration, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > uint64(365*24*time.Hour/time.Second) {
		return 365 * 24 * time.Hour, true
	}
	return time.Duration(n) * time.Second, true
}

// parseKeySet reads a JWK Set (RFC 7517, section 5) strictly and keeps
// the keys usable for verifying platform signatures: kty RSA, a public
// key (no private members), a kid, use absent or "sig", key_ops absent or
// listing "verify", alg absent or an RSA signature algorithm, a modulus of
// MinRSABits to MaxRSABits. A kid on more than one usable key is
// ambiguous, and those keys are dropped. Other keys are ignored. A body
// that is not a JSON object with a "keys" array, a set of more than
// maxKeys keys, and a set with no usable key are malformed. The errors
// never quote the body.
func parseKeySet(body []byte, maxKeys int) (map[string]jwk.Key, error) {
	members, err := objectMembers(body)
	if err != nil {
		return nil, malformed("the key set is not a JSON object")
	}
	raw, ok := members["keys"]
	if !ok {
		return nil, malformed("the key set has no keys member")
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, malformed("the key set's keys member is not an array")
	}
	if len(entries) > maxKeys {
		return nil, malformed("the key set lists %d keys, more than %d", len(entries), maxKeys)
	}
	keys := make(map[string]jwk.Key, len(entries))
	dup := map[string]bool{}
	for _, entry := range entries {
		k, err := jwk.ParseKey(entry)
		if err != nil || !usableKey(k) {
			continue
		}
		kid := k.KeyID()
		if _, seen := keys[kid]; seen || dup[kid] {
			delete(keys, kid)
			dup[kid] = true
			continue
		}
		keys[kid] = k
	}
	if len(keys) == 0 {
		return nil, malformed("the key set has no usable RSA signature key with a kid")
	}
	return keys, nil
}

// usableKey reports whether k may verify a platform's signature.
func usableKey(k jwk.Key) bool {
	pub, ok := k.(jwk.RSAPublicKey)
	if !ok || k.KeyID() == "" {
		return false
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return false
	}
	if ops := k.KeyOps(); len(ops) > 0 {
		verify := false
		for _, op := range ops {
			verify = verify || op == jwk.KeyOpVerify
		}
		if !verify {
			return false
		}
	}
	if alg := k.Algorithm().String(); alg != "" && !rsaAlgorithms[jwa.SignatureAlgorithm(alg)] {
		return false
	}
	var raw rsa.PublicKey
	if err := pub.Raw(&raw); err != nil || raw.N == nil {
		return false
	}
	bits := raw.N.BitLen()
	return bits >= MinRSABits && bits <= MaxRSABits && raw.E >= 3 && raw.E%2 == 1
}

// rsaAlgorithms are the signature algorithms a platform's RSA key may
// sign with.
var rsaAlgorithms = map[jwa.SignatureAlgorithm]bool{
	jwa.RS256: true, jwa.RS384: true, jwa.RS512: true,
	jwa.PS256: true, jwa.PS384: true, jwa.PS512: true,
}

// objectMembers decodes b, which must be exactly one JSON object whose
// member names are all distinct, into its members.
func objectMembers(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		name, _ := tok.(string)
		if _, dup := out[name]; dup {
			return nil, errors.New("a member name appears twice")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("not a JSON object")
		}
		out[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// nopKeySetObserver is the KeySetObserver of a cache given none.
type nopKeySetObserver struct{}

func (nopKeySetObserver) KeySetFetch(Outcome, FetchReason, time.Duration) {}
func (nopKeySetObserver) KeySetServed(time.Duration, bool)                {}
