package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/storage"
)

// JWKSCache holds the serialized JWK Set of every published key. It is built
// from storage on Refresh and served from memory, so a JWKS request never
// queries the database. Safe for concurrent use.
type JWKSCache struct {
	store storage.Store

	// refreshMu serializes rebuilds so an older snapshot can never replace
	// a newer one.
	refreshMu sync.Mutex
	mu        sync.RWMutex
	doc       []byte
	// err is the error of the latest refresh, nil after a successful one.
	err error
}

// NewJWKSCache returns an empty cache over store; call Refresh before serving.
func NewJWKSCache(store storage.Store) *JWKSCache {
	return &JWKSCache{store: store}
}

// Refresh rebuilds the document from the active keys in storage. On error
// the previous document stays in place.
func (c *JWKSCache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	doc, err := c.build(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err != nil {
		return err
	}
	c.doc = doc
	return nil
}

func (c *JWKSCache) build(ctx context.Context) ([]byte, error) {
	keys, err := c.store.ActiveKeys(ctx)
	if err != nil {
		return nil, err
	}
	public := make([][]byte, len(keys))
	for i, k := range keys {
		public[i] = k.PublicJWK
	}
	return crypto.JWKS(public)
}

// Ready reports whether the cache serves a current document: nil once a
// refresh has succeeded and while the latest one did; otherwise the error of
// the latest refresh. It never queries the database, so it is cheap enough
// for a public readiness endpoint.
func (c *JWKSCache) Ready(context.Context) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case c.err != nil:
		return c.err
	case c.doc == nil:
		return errors.New("key set not loaded yet")
	}
	return nil
}

// Document returns the current serialized JWK Set, or nil before the first
// successful Refresh. The caller must not modify it.
func (c *JWKSCache) Document() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.doc
}

// Run refreshes the cache every interval until ctx is done, so changes made
// by other processes sharing the database are published too. Errors are
// logged and the last good document keeps being served.
func (c *JWKSCache) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.WarnContext(ctx, "jwks refresh failed; serving the last good document", "err", err)
			}
		}
	}
}

// JwksService implements ltikeysv1.JwksServiceServer from a JWKSCache.
type JwksService struct {
	ltikeysv1.UnimplementedJwksServiceServer

	cache *JWKSCache
}

// NewJwksService returns a JwksService serving cache.
func NewJwksService(cache *JWKSCache) *JwksService {
	return &JwksService{cache: cache}
}

// GetJwks implements ltikeysv1.JwksServiceServer.
func (s *JwksService) GetJwks(context.Context, *ltikeysv1.GetJwksRequest) (*httpbody.HttpBody, error) {
	doc := s.cache.Document()
	if doc == nil {
		return nil, status.Error(codes.Unavailable, "key set not loaded yet")
	}
	return &httpbody.HttpBody{ContentType: "application/json", Data: doc}, nil
}
