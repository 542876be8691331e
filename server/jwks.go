package server

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/storage"
)

// ErrStale is what JWKSCache.Ready wraps while it serves a document but its
// latest check of the database failed: the keys may be out of date.
var ErrStale = errors.New("serving the last good key set: the database is unreachable")

// JWKSCache holds the serialized JWK Sets of the published keys and serves
// them from memory: a JWKS request never queries the database. It also
// tells other caches (the KeyService's signing key cache) which version of
// the data is current. Safe for concurrent use.
//
// What a change costs. The first Refresh loads every active key
// (Store.ActiveKeys). Every later one that finds the change counter moved
// reads only the keys changed since (Store.KeysChangedSince) and rebuilds
// the key lists of the registrations they belong to, so it costs in
// proportion to what changed, not to how many keys are published. Each
// registration's document is serialized on its first request after a
// change. The document of every published key (the global one) is built
// on the first request that needs it after a change: at most once per
// WithGlobalRebuildInterval, the requests in between being served the
// previous one.
//
// A key is published from its insertion until it is retired or its
// RetireAt passes, whichever is first: the cache drops a key at its
// RetireAt even before the background worker records the retirement, by a
// queue of scheduled retirements that costs nothing until one is due and
// then only the registrations it touches. The cache assumes its clock does
// not go back.
type JWKSCache struct {
	store storage.Store
	now   func() time.Time
	// globalInterval is the least time between two global rebuilds.
	globalInterval time.Duration

	// refreshMu serializes refreshes, so an older read can never replace a
	// newer one.
	refreshMu sync.Mutex

	// mu guards set. A refresh holds it to apply what it read, never while
	// it queries; a global rebuild holds it for reading while it gathers
	// the keys.
	mu  sync.RWMutex
	set *keySet // nil until the first successful Refresh

	// loaded turns true with the first successful Refresh. version is the
	// store version the set was read at; changes counts the changes of the
	// published set; nextRetire is the earliest RetireAt of a published key
	// (nil if none). Written under mu, read without it.
	loaded     atomic.Bool
	version    atomic.Int64
	changes    atomic.Uint64
	nextRetire atomic.Pointer[time.Time]

	// globalMu lets one global rebuild run at a time.
	globalMu sync.Mutex
	global   atomic.Pointer[globalDoc]

	// err is the error of the latest refresh, nil after a successful one;
	// refreshed is when the latest successful one ended.
	errMu     sync.RWMutex
	err       error
	refreshed time.Time
}

// keySet is the published keys, indexed for incremental updates.
type keySet struct {
	// keys holds every published key by kid.
	keys map[string]*publishedKey
	// regs holds the published keys of each registration that has one.
	regs map[string]*registrationKeys
	// retirements queues the published keys that have a RetireAt.
	retirements retirementQueue
	// order holds the published keys oldest first (the reverse of
	// newestFirst), so that the global document needs no sort, and the
	// dead keys among them, unpublished since, until there are as many
	// dead as live ones and they are dropped.
	order []*publishedKey
	dead  int
}

// publishedKey is what the cache keeps of a published key. It is never
// modified once in a keySet, but for its place in the retirement queue and
// its dead flag.
type publishedKey struct {
	kid, registration string
	createdAt         time.Time
	seq               int64
	// The schedule, for the counts by state (see keyStates).
	activatesAt, supersededAt, retireAt time.Time
	// member is the key as an element of a JWK Set's "keys" array, exactly
	// as crypto.JWKS writes it.
	member []byte
	// queued is the key's index in keySet.retirements; -1 when not there.
	queued int
	// dead marks a key unpublished from its keySet.
	dead bool
}

// registrationKeys is one registration's published keys, newest first, and
// their document, serialized on first use. Never modified once in a
// keySet: a change replaces it.
type registrationKeys struct {
	keys []*publishedKey
	once sync.Once
	doc  *jwksDoc
}

// globalDoc is the document of every published key, as of changes.
type globalDoc struct {
	doc     *jwksDoc
	changes uint64
	// builtAt is when it was built, by the cache's clock; expires is the
	// earliest RetireAt of its keys (zero if none), from which it must
	// never be served.
	builtAt, expires time.Time
}

// jwksDoc is one serialized JWK Set and its gzip-compressed copy, each with
// a strong ETag: the quoted, base64url SHA-256 (first 128 bits) of its bytes,
// and the response metadata of each, built on first use.
type jwksDoc struct {
	body []byte
	etag string
	md   atomic.Pointer[jwksHeaders]

	gzipOnce sync.Once
	gz       []byte
	gzETag   string
	gzMD     atomic.Pointer[jwksHeaders]
}

// jwksHeaders is the response headers of one representation of a document
// under one Cache-Control value, for a 200 and for a 304: as gRPC metadata
// for gRPC callers and as HTTP headers for the in-process HTTP handler. It
// is built once and shared by every response, so it is never modified:
// grpc.SetHeader copies what it is given (both grpc-go's transport and the
// gateway join it into their own MD), and forwardJWKSHeaders puts the
// HTTP value slices, whose length is their capacity so that an Add copies
// them, into the response's header map without writing into them.
type jwksHeaders struct {
	cacheControl string
	ok           metadata.MD
	notModified  metadata.MD
	httpOK       []headerField
	httpNotMod   []headerField
}

func newJWKSHeaders(cacheControl, etag, contentEncoding string, contentLength int) *jwksHeaders {
	h := &jwksHeaders{
		cacheControl: cacheControl,
		ok: metadata.MD{
			mdETag:          {etag},
			mdCacheControl:  {cacheControl},
			mdVary:          {"Accept-Encoding"},
			mdContentLength: {strconv.Itoa(contentLength)},
		},
		notModified: metadata.MD{
			mdETag:         {etag},
			mdCacheControl: {cacheControl},
			mdVary:         {"Accept-Encoding"},
			mdStatus:       {"304"},
		},
	}
	if contentEncoding != "" {
		h.ok[mdContentEncoding] = []string{contentEncoding}
	}
	h.httpOK, h.httpNotMod = httpHeaderOf(h.ok), httpHeaderOf(h.notModified)
	return h
}

// headerField is one response header, its name in canonical form.
type headerField struct {
	name   string
	values []string
}

// httpHeaderOf maps response metadata to the HTTP headers the gateway would
// make of it (see outgoingJWKSHeader), sorted by name, each value slice
// full to capacity.
func httpHeaderOf(md metadata.MD) []headerField {
	var fields []headerField
	for k, vs := range md {
		if name, ok := outgoingJWKSHeader(k); ok {
			fields = append(fields, headerField{http.CanonicalHeaderKey(name), slices.Clip(slices.Clone(vs))})
		}
	}
	slices.SortFunc(fields, func(a, b headerField) int { return strings.Compare(a.name, b.name) })
	return fields
}

// representation returns the bytes of the plain or gzip representation of
// d and its response metadata under cacheControl. The metadata is kept for
// the next call; one JwksService (one Cache-Control) serves a cache, so it
// is rebuilt only if another service with another max-age shares it.
func (d *jwksDoc) representation(gz bool, cacheControl string) ([]byte, *jwksHeaders) {
	body, etag, enc, cached := d.body, d.etag, "", &d.md
	if gz {
		body, etag = d.gzipped()
		enc, cached = "gzip", &d.gzMD
	}
	if h := cached.Load(); h != nil && h.cacheControl == cacheControl {
		return body, h
	}
	h := newJWKSHeaders(cacheControl, etag, enc, len(body))
	cached.Store(h)
	return body, h
}

func newJWKSDoc(body []byte) *jwksDoc {
	return &jwksDoc{body: body, etag: etagOf(body)}
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}

// gzipped returns the compressed copy, made on first use.
func (d *jwksDoc) gzipped() ([]byte, string) {
	d.gzipOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(d.body)*4/5 + 64)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level never fails
		_, _ = zw.Write(d.body)                            // a bytes.Buffer never fails
		_ = zw.Close()
		d.gz = buf.Bytes()
		d.gzETag = etagOf(d.gz)
	})
	return d.gz, d.gzETag
}

// JWKSCacheOption configures a JWKSCache.
type JWKSCacheOption func(*JWKSCache)

// WithCacheClock sets the clock that decides which keys a scheduled
// retirement has unpublished, and times global rebuilds (default
// time.Now).
func WithCacheClock(now func() time.Time) JWKSCacheOption {
	return func(c *JWKSCache) { c.now = now }
}

// WithGlobalRebuildInterval sets the least time between two builds of the
// global document (every published key; default 0). With 0 or less, the
// first request after a change rebuilds it, and concurrent requests wait
// for that one build. With d > 0, a request within d of the last build is
// served that build, and, once d has passed, one request rebuilds while
// the others are still served the last build: after a change the global
// document lags by at most d (and the time a build takes), and a stream of
// changes costs one rebuild per d however many requests arrive.
// Per-registration documents are never delayed, nor is a scheduled
// retirement: a global document is not served once a RetireAt of one of
// its keys has passed.
func WithGlobalRebuildInterval(d time.Duration) JWKSCacheOption {
	return func(c *JWKSCache) { c.globalInterval = d }
}

// NewJWKSCache returns an empty cache over store; call Refresh before serving.
func NewJWKSCache(store storage.Store, opts ...JWKSCacheOption) *JWKSCache {
	c := &JWKSCache{store: store, now: time.Now}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// Refresh brings the cache up to date: it reads the store's change counter
// and, only if it moved since the last refresh (or nothing is loaded yet),
// applies what changed: on the first refresh, or when the counter went
// back (another database), every active key; otherwise the keys changed
// since. It reads public halves only and decrypts nothing. On error
// nothing changes: the previous documents stay in place and Ready reports
// the error.
func (c *JWKSCache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.refresh(ctx)
	c.errMu.Lock()
	c.err = err
	if err == nil {
		c.refreshed = c.now()
	}
	c.errMu.Unlock()
	return err
}

func (c *JWKSCache) refresh(ctx context.Context) error {
	version, err := c.store.Version(ctx)
	if err != nil {
		return err
	}
	since := c.version.Load()
	switch loaded := c.loaded.Load(); {
	case !loaded || version < since:
		return c.loadAll(ctx, version)
	case version == since:
		return nil
	}
	current, changed, err := c.store.KeysChangedSince(ctx, since)
	if err != nil {
		return err
	}
	if current < since {
		// The counter went back between the two reads: another database.
		return c.loadAll(ctx, current)
	}
	now := c.now()
	// Serialized before taking the lock; nil for a key that is not
	// published (any more).
	published := make([]*publishedKey, len(changed))
	for i, k := range changed {
		if published[i], err = newPublishedKey(k, now); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	touched := make(touchedRegistrations)
	for i, k := range changed {
		if published[i] != nil {
			c.set.put(published[i], touched)
		} else {
			c.set.remove(k.KID, touched)
		}
	}
	c.set.retireDue(now, touched)
	c.set.rebuild(touched)
	c.version.Store(current)
	c.updated(len(touched) > 0)
	return nil
}

// loadAll replaces the set with every active key, read after the counter
// was read at version: if a change lands in between, the set is newer than
// its label and the next refresh reads that change again, which is
// harmless; the reverse order could miss it.
func (c *JWKSCache) loadAll(ctx context.Context, version int64) error {
	keys, err := c.store.ActiveKeys(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	published := make([]*publishedKey, 0, len(keys))
	for _, k := range keys {
		pk, err := newPublishedKey(k, now)
		if err != nil {
			return err
		}
		if pk != nil {
			published = append(published, pk)
		}
	}
	set := newKeySet(published)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = set
	c.version.Store(version)
	c.loaded.Store(true)
	c.updated(true)
	return nil
}

// updated publishes, under mu, what a change of the set did: whether the
// published keys changed, and the next scheduled retirement.
func (c *JWKSCache) updated(changed bool) {
	if changed {
		c.changes.Add(1)
	}
	next, ok := c.set.retirements.next()
	switch old := c.nextRetire.Load(); {
	case !ok:
		c.nextRetire.Store(nil)
	case old == nil || !old.Equal(next):
		c.nextRetire.Store(&next)
	}
}

// retireDue unpublishes the keys whose RetireAt has passed, if any. While
// none is due it costs an atomic load (and a clock reading while one is
// scheduled).
func (c *JWKSCache) retireDue() {
	next := c.nextRetire.Load()
	if next == nil {
		return
	}
	now := c.now()
	if now.Before(*next) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	touched := make(touchedRegistrations)
	c.set.retireDue(now, touched)
	c.set.rebuild(touched)
	c.updated(len(touched) > 0)
}

// registration returns the document of one registration's published keys,
// or nil if it has none (or nothing is loaded yet).
func (c *JWKSCache) registration(id string) *jwksDoc {
	if !c.loaded.Load() {
		return nil
	}
	c.retireDue()
	c.mu.RLock()
	r := c.set.regs[id]
	c.mu.RUnlock()
	if r == nil {
		return nil
	}
	return r.document()
}

// globalDocument returns the document of every published key, or nil
// before the first successful Refresh. With current false it may be the
// previous document, as WithGlobalRebuildInterval allows; with current
// true it is built now if it is not current.
func (c *JWKSCache) globalDocument(current bool) *jwksDoc {
	if !c.loaded.Load() {
		return nil
	}
	c.retireDue()
	g := c.global.Load()
	switch c.judge(g, current) {
	case globalServe:
		return g.doc
	case globalLagging:
		// Another request is rebuilding: this one is served the previous
		// document rather than wait.
		if !c.globalMu.TryLock() {
			return g.doc
		}
	default:
		c.globalMu.Lock()
	}
	defer c.globalMu.Unlock()
	if g := c.global.Load(); c.judge(g, current) == globalServe {
		return g.doc // built while this request waited
	}
	g = c.buildGlobal()
	c.global.Store(g)
	return g.doc
}

// What a request may do with the global document it finds (see judge).
const (
	// globalRebuild: it must not be served; build another.
	globalRebuild = iota
	// globalLagging: it is out of date beyond the rebuild interval; build
	// another, or serve it while another request does.
	globalLagging
	// globalServe: serve it.
	globalServe
)

// judge says what a request may do with g: serve it if it is current, or,
// when current is not required, built within the rebuild interval; never
// once a RetireAt of one of its keys has passed.
func (c *JWKSCache) judge(g *globalDoc, current bool) int {
	if g == nil {
		return globalRebuild
	}
	upToDate := g.changes == c.changes.Load()
	if upToDate && g.expires.IsZero() {
		return globalServe
	}
	now := c.now()
	switch {
	case !g.expires.IsZero() && !now.Before(g.expires):
		return globalRebuild
	case upToDate:
		return globalServe
	case current || c.globalInterval <= 0:
		return globalRebuild
	case !now.Before(g.builtAt) && now.Sub(g.builtAt) < c.globalInterval:
		return globalServe
	}
	return globalLagging
}

// buildGlobal serializes every published key, newest first. It holds mu
// for reading only while it gathers them.
func (c *JWKSCache) buildGlobal() *globalDoc {
	c.mu.RLock()
	keys := make([]*publishedKey, 0, len(c.set.keys))
	for _, k := range slices.Backward(c.set.order) {
		if !k.dead {
			keys = append(keys, k)
		}
	}
	changes := c.changes.Load()
	expires, _ := c.set.retirements.next()
	c.mu.RUnlock()
	return &globalDoc{doc: newJWKSDoc(jwkSet(keys)), changes: changes, builtAt: c.now(), expires: expires}
}

// keyStates counts the published keys by their state at now (pending,
// current or previous; a key whose RetireAt has passed counts as none),
// from memory. ok is false before the first successful Refresh.
func (c *JWKSCache) keyStates(now time.Time) (counts map[storage.KeyState]int, ok bool) {
	if !c.loaded.Load() {
		return nil, false
	}
	counts = make(map[storage.KeyState]int, 3)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range c.set.keys {
		key := storage.Key{Active: true, ActivatesAt: k.activatesAt, SupersededAt: k.supersededAt, RetireAt: k.retireAt}
		if st := key.State(now); st != storage.KeyRetired {
			counts[st]++
		}
	}
	return counts, true
}

// touchedRegistrations collects, during one change of a keySet, the
// registrations whose published keys it changed, with the keys it added to
// each.
type touchedRegistrations map[string][]*publishedKey

func (t touchedRegistrations) touch(registration string) {
	if _, ok := t[registration]; !ok {
		t[registration] = nil
	}
}

// newKeySet returns the set of keys, which have distinct kids.
func newKeySet(keys []*publishedKey) *keySet {
	s := &keySet{
		keys:  make(map[string]*publishedKey, len(keys)),
		regs:  make(map[string]*registrationKeys),
		order: slices.Clone(keys),
	}
	byRegistration := make(map[string][]*publishedKey)
	for _, k := range keys {
		s.keys[k.kid] = k
		if !k.retireAt.IsZero() {
			k.queued = len(s.retirements)
			s.retirements = append(s.retirements, k)
		}
		byRegistration[k.registration] = append(byRegistration[k.registration], k)
	}
	heap.Init(&s.retirements)
	// Oldest first; in ActiveKeys order, keys come newest first.
	slices.Reverse(s.order)
	slices.SortFunc(s.order, func(a, b *publishedKey) int { return newestFirst(b, a) })
	for id, keys := range byRegistration {
		slices.SortFunc(keys, newestFirst)
		s.regs[id] = &registrationKeys{keys: keys}
	}
	return s
}

// put publishes k, replacing the key with its kid, if any. A key newer
// than every other (as a new one nearly always is) costs O(1) beyond the
// maps; another, a search and a move of the keys newer than it.
func (s *keySet) put(k *publishedKey, t touchedRegistrations) {
	s.remove(k.kid, t)
	s.keys[k.kid] = k
	if !k.retireAt.IsZero() {
		heap.Push(&s.retirements, k)
	}
	if n := len(s.order); n == 0 || newestFirst(k, s.order[n-1]) < 0 {
		s.order = append(s.order, k)
	} else {
		i, _ := slices.BinarySearchFunc(s.order, k, func(e, k *publishedKey) int { return newestFirst(k, e) })
		s.order = slices.Insert(s.order, i, k)
	}
	t[k.registration] = append(t[k.registration], k)
}

// remove unpublishes the key with kid, if it is published.
func (s *keySet) remove(kid string, t touchedRegistrations) {
	if k, ok := s.keys[kid]; ok {
		if k.queued >= 0 {
			heap.Remove(&s.retirements, k.queued)
		}
		s.unpublish(k, t)
	}
}

// retireDue unpublishes the keys whose RetireAt is not after now.
func (s *keySet) retireDue(now time.Time, t touchedRegistrations) {
	for {
		next, ok := s.retirements.next()
		if !ok || now.Before(next) {
			return
		}
		s.unpublish(heap.Pop(&s.retirements).(*publishedKey), t)
	}
}

// unpublish drops k, out of the retirement queue already, from the set.
// Once dead keys are as many as live ones in order, it compacts order:
// O(published keys), once per as many removals, so O(1) for each.
func (s *keySet) unpublish(k *publishedKey, t touchedRegistrations) {
	delete(s.keys, k.kid)
	k.dead = true
	t.touch(k.registration)
	if s.dead++; s.dead > len(s.keys) && s.dead > 64 {
		s.order = slices.DeleteFunc(s.order, func(k *publishedKey) bool { return k.dead })
		s.dead = 0
	}
}

// rebuild replaces the key lists of the touched registrations: their keys
// still published, and the ones added. A registration left with none is
// dropped. It costs in proportion to the touched registrations' keys.
func (s *keySet) rebuild(t touchedRegistrations) {
	for id, added := range t {
		var keys []*publishedKey
		if old := s.regs[id]; old != nil {
			keys = make([]*publishedKey, 0, len(old.keys)+len(added))
			for _, k := range old.keys {
				if !k.dead {
					keys = append(keys, k)
				}
			}
		}
		for _, k := range added {
			if !k.dead {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			delete(s.regs, id)
			continue
		}
		slices.SortFunc(keys, newestFirst)
		s.regs[id] = &registrationKeys{keys: keys}
	}
}

// document returns the registration's document, serialized on first use.
func (r *registrationKeys) document() *jwksDoc {
	r.once.Do(func() { r.doc = newJWKSDoc(jwkSet(r.keys)) })
	return r.doc
}

// newestFirst orders keys as Store.ActiveKeys does: by creation time, then
// the later insertion first (then by kid, which only keys not read from a
// store can need). It is a total order, so every document is a function of
// its key set alone, however the set was arrived at.
func newestFirst(a, b *publishedKey) int {
	if c := b.createdAt.Compare(a.createdAt); c != 0 {
		return c
	}
	if c := cmp.Compare(b.seq, a.seq); c != 0 {
		return c
	}
	return strings.Compare(a.kid, b.kid)
}

// jwkSetOpen and jwkSetClose frame the members of a JWK Set as crypto.JWKS
// writes it.
var jwkSetOpen, jwkSetClose = []byte(`{"keys":[`), []byte(`]}`)

// jwkSet joins the members of keys into a JWK Set: byte for byte what
// crypto.JWKS writes for their public JWKs in that order.
func jwkSet(keys []*publishedKey) []byte {
	size := len(jwkSetOpen) + len(jwkSetClose)
	for _, k := range keys {
		size += len(k.member) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, jwkSetOpen...)
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, k.member...)
	}
	return append(out, jwkSetClose...)
}

// newPublishedKey returns what the cache keeps of k, or nil if k is not
// published at now. Its public JWK is validated and serialized by
// crypto.JWKS, and its kid must be k.KID: keys are unique by KID, so a
// JWK Set never names one kid twice.
func newPublishedKey(k storage.Key, now time.Time) (*publishedKey, error) {
	if k.State(now) == storage.KeyRetired {
		return nil, nil
	}
	set, err := crypto.JWKS([][]byte{k.PublicJWK})
	if err != nil {
		return nil, fmt.Errorf("publish key %s: %w", k.KID, err)
	}
	member, ok := bytes.CutPrefix(set, jwkSetOpen)
	if ok {
		member, ok = bytes.CutSuffix(member, jwkSetClose)
	}
	if !ok {
		return nil, fmt.Errorf("publish key %s: crypto.JWKS wrote an unexpected frame", k.KID)
	}
	if !namesKID(member, k.KID) {
		return nil, fmt.Errorf("publish key %s: its public JWK names another kid", k.KID)
	}
	return &publishedKey{
		kid:          k.KID,
		registration: k.RegistrationID,
		createdAt:    k.CreatedAt,
		seq:          k.Seq,
		activatesAt:  k.ActivatesAt,
		supersededAt: k.SupersededAt,
		retireAt:     k.RetireAt,
		member:       member,
		queued:       -1,
	}, nil
}

// namesKID reports whether member, a JWK as crypto.JWKS writes it, has
// kid kid. A kid of base64url characters only (a thumbprint, as every key
// ltikeys makes has) is written verbatim by any JSON encoder, and n and e
// hold no quotes, so it is found as text; any other is decoded.
func namesKID(member []byte, kid string) bool {
	plain := kid != ""
	for i := 0; i < len(kid) && plain; i++ {
		c := kid[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	if plain {
		return bytes.Contains(member, []byte(`,"kid":"`+kid+`"`))
	}
	var named struct {
		KID string `json:"kid"`
	}
	return json.Unmarshal(member, &named) == nil && named.KID == kid
}

// retirementQueue is a min-heap of keys by RetireAt (container/heap), each
// key knowing its index.
type retirementQueue []*publishedKey

func (q retirementQueue) Len() int           { return len(q) }
func (q retirementQueue) Less(i, j int) bool { return q[i].retireAt.Before(q[j].retireAt) }
func (q retirementQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].queued, q[j].queued = i, j
}

func (q *retirementQueue) Push(x any) {
	k := x.(*publishedKey)
	k.queued = len(*q)
	*q = append(*q, k)
}

func (q *retirementQueue) Pop() any {
	old := *q
	k := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	k.queued = -1
	return k
}

// next returns the earliest RetireAt queued; ok is false if none is.
func (q retirementQueue) next() (t time.Time, ok bool) {
	if len(q) == 0 {
		return time.Time{}, false
	}
	return q[0].retireAt, true
}

// Version returns the store version the served documents were built at;
// ok is false before the first successful Refresh.
func (c *JWKSCache) Version() (version int64, ok bool) {
	if !c.loaded.Load() {
		return 0, false
	}
	return c.version.Load(), true
}

// Ready reports whether the cache serves a current document: nil once a
// refresh has succeeded and while the latest one did. While a document is
// served but the latest refresh failed, the error wraps ErrStale. It never
// queries the database, so it is cheap enough for a public readiness
// endpoint.
func (c *JWKSCache) Ready(context.Context) error {
	c.errMu.RLock()
	err := c.err
	c.errMu.RUnlock()
	loaded := c.loaded.Load()
	switch {
	case err != nil && loaded:
		return fmt.Errorf("%w: %w", ErrStale, err)
	case err != nil:
		return err
	case !loaded:
		return errors.New("key set not loaded yet")
	}
	return nil
}

// Document returns the current serialized JWK Set of every published key,
// built now if a change since the last build makes that one out of date
// (whatever WithGlobalRebuildInterval says), or nil before the first
// successful Refresh. The caller must not modify it.
func (c *JWKSCache) Document() []byte {
	if d := c.globalDocument(true); d != nil {
		return d.body
	}
	return nil
}

// Run keeps the cache current until ctx is done, so changes made by other
// processes sharing the database are published too: it checks the store's
// change counter every interval and, if the store is a storage.Notifier
// (PostgreSQL), also as soon as a change is announced. Each check is one
// single-row query; the documents are rebuilt only when something changed.
// While the database is unreachable the last good documents keep being
// served; the first failure and the recovery are logged.
func (c *JWKSCache) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	wake := make(chan struct{}, 1)
	var listening sync.WaitGroup
	if n, ok := c.store.(storage.Notifier); ok {
		listening.Go(func() {
			n.Listen(ctx, func() {
				select {
				case wake <- struct{}{}:
				default: // a check is already due
				}
			})
		})
	}
	defer listening.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		checkCtx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		err := c.Refresh(checkCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			log.WarnContext(ctx, "jwks refresh failed; serving the last good document until the database answers", "err", err)
			failing = true
		case err == nil && failing:
			log.InfoContext(ctx, "jwks refresh recovered")
			failing = false
		}
	}
}

// Metadata keys of JwksService. Over the gateway, the incoming ones come
// from the request headers of the same name without the prefix, and the
// outgoing ones become response headers (see NewHTTPHandler).
const (
	mdIfNoneMatch     = "http-if-none-match"
	mdAcceptEncoding  = "http-accept-encoding"
	mdETag            = "http-etag"
	mdCacheControl    = "http-cache-control"
	mdVary            = "http-vary"
	mdContentEncoding = "http-content-encoding"
	mdContentLength   = "http-content-length"
	// mdStatus carries an HTTP status other than 200 (only 304).
	mdStatus = "http-status"
)

// DefaultJWKSMaxAge is how long clients and shared caches may reuse a JWKS
// response unless WithMaxAge says otherwise.
const DefaultJWKSMaxAge = 5 * time.Minute

// JwksOption configures a JwksService.
type JwksOption func(*JwksService)

// WithMaxAge sets the max-age of the Cache-Control header (whole seconds).
func WithMaxAge(d time.Duration) JwksOption {
	return func(s *JwksService) { s.cacheControl = cacheControl(d) }
}

func cacheControl(d time.Duration) string {
	return "public, max-age=" + strconv.FormatInt(int64(max(d, 0)/time.Second), 10)
}

// JwksService implements ltikeysv1.JwksServiceServer from a JWKSCache.
type JwksService struct {
	ltikeysv1.UnimplementedJwksServiceServer

	cache        *JWKSCache
	cacheControl string
}

// NewJwksService returns a JwksService serving cache.
func NewJwksService(cache *JWKSCache, opts ...JwksOption) *JwksService {
	s := &JwksService{cache: cache, cacheControl: cacheControl(DefaultJWKSMaxAge)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

var errNotLoaded = status.Error(codes.Unavailable, "key set not loaded yet")

// GetJwks implements ltikeysv1.JwksServiceServer.
func (s *JwksService) GetJwks(ctx context.Context, _ *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	doc := s.cache.globalDocument(false)
	if doc == nil {
		return nil, errNotLoaded
	}
	return s.respond(ctx, doc)
}

// GetRegistrationJwks implements ltikeysv1.JwksServiceServer. The id is
// matched in any case, as ServeFromMemory matches it.
func (s *JwksService) GetRegistrationJwks(ctx context.Context, req *ltikeysv1.GetRegistrationJwksRequest) (*httpbody.HttpBody, error) {
	id := canonicalRegistrationID(req.GetRegistrationId())
	if err := uuid.Validate(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, "registration_id: must be a UUID")
	}
	if _, ok := s.cache.Version(); !ok {
		return nil, errNotLoaded
	}
	doc := s.cache.registration(id)
	if doc == nil {
		return nil, status.Errorf(codes.NotFound, "registration %q not found", id)
	}
	return s.respond(ctx, doc)
}

// ServeFromMemory answers a GET or HEAD of a JWKS path (JWKSPath, or a
// registration's as routed by NewHTTPHandler) from memory, exactly as
// GetJwks and GetRegistrationJwks answer it through the gateway: 304 Not
// Modified without a body when its If-None-Match names the document the
// path serves, else 200 with the representation its Accept-Encoding
// accepts, each with the same headers. A registration's id is matched in
// any case (see canonicalRegistrationID), so an upper-case id gets the
// document, and the ETag, of the lower-case one. It reports whether it
// answered; otherwise (a key set not loaded yet, an id
// that is not a UUID, an unknown registration, another method or path) it
// writes nothing, and the request is for the gateway, which refuses it.
func (s *JwksService) ServeFromMemory(w http.ResponseWriter, r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.RawPath != "" {
		return false
	}
	var doc *jwksDoc
	if r.URL.Path == JWKSPath {
		doc = s.cache.globalDocument(false)
	} else if id, ok := registrationOfJWKSPath(r.URL.Path); ok && uuid.Validate(id) == nil {
		doc = s.cache.registration(canonicalRegistrationID(id))
	}
	if doc == nil {
		return false
	}
	body, h := doc.representation(acceptsGzip(r.Header["Accept-Encoding"]), s.cacheControl)
	header := w.Header()
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && notModified(inm, doc) {
		setHeaderFields(header, h.httpNotMod)
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	setHeaderFields(header, h.httpOK)
	header["Content-Type"] = jwksContentTypeHeader
	_, _ = w.Write(body) // net/http sends no body in answer to a HEAD
	return true
}

// jwksContentType is the media type of every JWKS response body;
// jwksContentTypeHeader is the header value, shared by every response, so
// full to capacity (see setHeaderFields).
const jwksContentType = "application/json"

var jwksContentTypeHeader = []string{jwksContentType}

// respond picks the representation of doc the request accepts, answers a
// matching If-None-Match with an empty not-modified body, and sets the
// caching headers. The request and response headers are exchanged with
// the HTTP handler directly when it is the caller (see httpExchange), as
// metadata otherwise.
func (s *JwksService) respond(ctx context.Context, doc *jwksDoc) (*httpbody.HttpBody, error) {
	x := httpExchangeFrom(ctx)
	var inm, ae []string
	if x != nil {
		inm, ae = x.ifNoneMatch, x.acceptEncoding
	} else {
		inm, ae = metadata.ValueFromIncomingContext(ctx, mdIfNoneMatch), metadata.ValueFromIncomingContext(ctx, mdAcceptEncoding)
	}
	body, h := doc.representation(acceptsGzip(ae), s.cacheControl)
	unchanged := len(inm) > 0 && notModified(inm, doc)
	switch {
	case x != nil && unchanged:
		x.header, x.notModified = h.httpNotMod, true
	case x != nil:
		x.header = h.httpOK
	default:
		md := h.ok
		if unchanged {
			md = h.notModified
		}
		if err := grpc.SetHeader(ctx, md); err != nil {
			return nil, status.Error(codes.Internal, "internal error")
		}
	}
	if unchanged {
		body = nil
	}
	return &httpbody.HttpBody{ContentType: jwksContentType, Data: body}, nil
}

// notModified reports whether an If-None-Match header list names either
// representation of doc, or is "*". Comparison is weak (RFC 9110 13.1.2):
// a W/ prefix is ignored.
func notModified(values []string, doc *jwksDoc) bool {
	var gzETag string
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == "*" || tag == doc.etag {
				return true
			}
			if tag == "" {
				continue
			}
			if gzETag == "" {
				_, gzETag = doc.gzipped()
			}
			if tag == gzETag {
				return true
			}
		}
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding values accept gzip: a gzip
// (or x-gzip) or * coding whose q is not 0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for coding := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(coding, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" && name != "*" {
				continue
			}
			if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// LastRefresh returns when the latest successful Refresh ended, by the
// cache's clock (see WithCacheClock): the last time the served documents
// were known to match the database. It is zero before the first one.
func (c *JWKSCache) LastRefresh() time.Time {
	c.errMu.RLock()
	defer c.errMu.RUnlock()
	return c.refreshed
}
