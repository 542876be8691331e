package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
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

// JWKSCache holds the serialized JWK Sets of the published keys, built from
// storage once per change and served from memory: a JWKS request never
// queries the database. It also tells other caches (the KeyService's signing
// key cache) which version of the data is current. Safe for concurrent use.
type JWKSCache struct {
	store storage.Store
	now   func() time.Time

	// refreshMu serializes refreshes so an older snapshot can never replace
	// a newer one.
	refreshMu sync.Mutex
	snap      atomic.Pointer[jwksSnapshot]
	// err is the error of the latest refresh, nil after a successful one.
	mu  sync.RWMutex
	err error
	// refreshed is when the latest successful refresh ended.
	refreshed time.Time
}

// jwksSnapshot is the key set at one version of the database, as published
// from one instant until next.
type jwksSnapshot struct {
	version int64
	// keys are the active keys as stored, newest first: with next, what a
	// scheduled retirement needs to rebuild the documents without a query.
	keys []storage.Key
	// next is the first scheduled retirement after the snapshot was built;
	// zero if none.
	next time.Time
	all  *jwksDoc
	// byRegistration holds each registration's active public JWKs, newest
	// first. Every registration has at least one (its current key), so a
	// registration is known exactly when it has an entry.
	byRegistration map[string][][]byte
	// regDocs caches per-registration documents (string → *jwksDoc), each
	// built on its first request.
	regDocs sync.Map
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
// retirement has unpublished (default time.Now).
func WithCacheClock(now func() time.Time) JWKSCacheOption {
	return func(c *JWKSCache) { c.now = now }
}

// NewJWKSCache returns an empty cache over store; call Refresh before serving.
func NewJWKSCache(store storage.Store, opts ...JWKSCacheOption) *JWKSCache {
	c := &JWKSCache{store: store, now: time.Now}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// load returns the snapshot to serve now. A key whose scheduled retirement
// has passed is never served, even before the background worker records
// the retirement: once now reaches the snapshot's next retirement, the
// documents are rebuilt from the keys it holds, without a query.
func (c *JWKSCache) load() *jwksSnapshot {
	snap := c.snap.Load()
	if snap == nil || snap.next.IsZero() {
		return snap
	}
	now := c.now()
	if now.Before(snap.next) {
		return snap
	}
	rebuilt, err := buildSnapshot(snap.version, snap.keys, now)
	if err != nil {
		return snap // as after a failed refresh; the next one retries
	}
	if !c.snap.CompareAndSwap(snap, rebuilt) {
		return c.snap.Load() // a refresh or another rebuild got there first
	}
	return rebuilt
}

// Refresh brings the cache up to date: it reads the store's change counter
// and, only if it moved since the last build (or nothing is built yet),
// rebuilds the documents from the active keys; that rebuild reads public
// halves only and decrypts nothing. On error the previous documents stay in
// place and Ready reports the error.
func (c *JWKSCache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.refresh(ctx)
	c.mu.Lock()
	c.err = err
	if err == nil {
		c.refreshed = c.now()
	}
	c.mu.Unlock()
	return err
}

func (c *JWKSCache) refresh(ctx context.Context) error {
	// The version is read before the keys: if a change lands in between,
	// the snapshot is newer than its label and the next check rebuilds
	// again, which is harmless; the reverse order could miss the change.
	version, err := c.store.Version(ctx)
	if err != nil {
		return err
	}
	if old := c.snap.Load(); old != nil && old.version == version {
		return nil
	}
	keys, err := c.store.ActiveKeys(ctx)
	if err != nil {
		return err
	}
	snap, err := buildSnapshot(version, keys, c.now())
	if err != nil {
		return err
	}
	c.snap.Store(snap)
	return nil
}

// buildSnapshot serializes the key set of the keys (newest first) that are
// published at now.
func buildSnapshot(version int64, keys []storage.Key, now time.Time) (*jwksSnapshot, error) {
	public := make([][]byte, 0, len(keys))
	byRegistration := make(map[string][][]byte)
	var next time.Time
	for _, k := range keys {
		if k.State(now) == storage.KeyRetired {
			continue
		}
		if t := k.RetireAt; t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
		public = append(public, k.PublicJWK)
		byRegistration[k.RegistrationID] = append(byRegistration[k.RegistrationID], k.PublicJWK)
	}
	doc, err := crypto.JWKS(public)
	if err != nil {
		return nil, err
	}
	return &jwksSnapshot{version: version, keys: keys, next: next, all: newJWKSDoc(doc), byRegistration: byRegistration}, nil
}

// registration returns the document of one registration's keys, or nil for
// an unknown registration.
func (s *jwksSnapshot) registration(id string) (*jwksDoc, error) {
	if d, ok := s.regDocs.Load(id); ok {
		return d.(*jwksDoc), nil
	}
	keys, ok := s.byRegistration[id]
	if !ok {
		return nil, nil
	}
	body, err := crypto.JWKS(keys)
	if err != nil {
		return nil, err
	}
	d, _ := s.regDocs.LoadOrStore(id, newJWKSDoc(body))
	return d.(*jwksDoc), nil
}

// Version returns the store version the served documents were built at;
// ok is false before the first successful Refresh.
func (c *JWKSCache) Version() (version int64, ok bool) {
	if s := c.snap.Load(); s != nil {
		return s.version, true
	}
	return 0, false
}

// Ready reports whether the cache serves a current document: nil once a
// refresh has succeeded and while the latest one did. While a document is
// served but the latest refresh failed, the error wraps ErrStale. It never
// queries the database, so it is cheap enough for a public readiness
// endpoint.
func (c *JWKSCache) Ready(context.Context) error {
	c.mu.RLock()
	err := c.err
	c.mu.RUnlock()
	loaded := c.snap.Load() != nil
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
// or nil before the first successful Refresh. The caller must not modify it.
func (c *JWKSCache) Document() []byte {
	if s := c.load(); s != nil {
		return s.all.body
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
	snap := s.cache.load()
	if snap == nil {
		return nil, errNotLoaded
	}
	return s.respond(ctx, snap.all)
}

// GetRegistrationJwks implements ltikeysv1.JwksServiceServer.
func (s *JwksService) GetRegistrationJwks(ctx context.Context, req *ltikeysv1.GetRegistrationJwksRequest) (*httpbody.HttpBody, error) {
	id := req.GetRegistrationId()
	if err := uuid.Validate(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, "registration_id: must be a UUID")
	}
	snap := s.cache.load()
	if snap == nil {
		return nil, errNotLoaded
	}
	doc, err := snap.registration(id)
	switch {
	case err != nil:
		return nil, status.Error(codes.Internal, "internal error")
	case doc == nil:
		return nil, status.Errorf(codes.NotFound, "registration %q not found", id)
	}
	return s.respond(ctx, doc)
}

// ServeNotModified answers a GET or HEAD of a JWKS path (JWKSPath, or a
// registration's as routed by NewHTTPHandler) with 304 Not Modified, from
// memory, when its If-None-Match names the document the path serves: with
// the headers of the representation the request would get, exactly as
// GetJwks and GetRegistrationJwks answer it. It reports whether it
// answered; otherwise (no If-None-Match, another tag, an unknown
// registration, a key set not loaded yet, another path) it writes nothing,
// and the request is for the gateway.
func (s *JwksService) ServeNotModified(w http.ResponseWriter, r *http.Request) bool {
	inm := r.Header["If-None-Match"]
	if len(inm) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.RawPath != "" {
		return false
	}
	snap := s.cache.load()
	if snap == nil {
		return false
	}
	doc := snap.all
	if r.URL.Path != JWKSPath {
		id, ok := registrationOfJWKSPath(r.URL.Path)
		if !ok || uuid.Validate(id) != nil {
			return false
		}
		if doc, _ = snap.registration(id); doc == nil {
			return false
		}
	}
	if !notModified(inm, doc) {
		return false
	}
	_, h := doc.representation(acceptsGzip(r.Header["Accept-Encoding"]), s.cacheControl)
	setHeaderFields(w.Header(), h.httpNotMod)
	w.WriteHeader(http.StatusNotModified)
	return true
}

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
	return &httpbody.HttpBody{ContentType: "application/json", Data: body}, nil
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
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.refreshed
}
