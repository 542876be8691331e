package server

import (
	"sync"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// DefaultKeyCacheSize is how many opened signing keys a KeyService keeps in
// memory unless configured otherwise.
const DefaultKeyCacheSize = 10_000

// keyCacheName is the signing-key cache's cache label in
// ltikeys_cache_lookups_total.
const keyCacheName = "keys"

// keyCache holds opened signing keys, so a warm GetToolKey (or signature)
// queries nothing, decrypts nothing and parses nothing. Entries are valid for
// one version of the store (JWKSCache.Version, which follows the store's
// change counter across replicas): once the version moves, every entry is
// dropped. It is bounded: when full, an arbitrary entry makes room. The
// plaintext private keys it holds live as long as their entries.
type keyCache struct {
	max int

	mu sync.RWMutex
	// version is the store version the entries were loaded at or after.
	version int64
	// gen counts purges; a load that began before a purge is not stored.
	gen     uint64
	entries map[keyCacheKey]*signingKey
}

// keyCacheKey names a lookup: by registration id, or by issuer and
// client_id (id empty).
type keyCacheKey struct {
	id, issuer, clientID string
}

// keyCacheEpoch is what a load saw when it began.
type keyCacheEpoch struct {
	version int64
	gen     uint64
	// ok is false when nothing may be cached (no cache, or no version yet).
	ok bool
}

// newKeyCache returns a cache of size entries, or nil (no caching) for a
// negative size.
func newKeyCache(size int) *keyCache {
	switch {
	case size < 0:
		return nil
	case size == 0:
		size = DefaultKeyCacheSize
	}
	return &keyCache{max: size, entries: make(map[keyCacheKey]*signingKey)}
}

func lookupKey(id string, ic *ltikeysv1.IssuerClient) keyCacheKey {
	if ic != nil {
		return keyCacheKey{issuer: ic.GetIssuer(), clientID: ic.GetClientId()}
	}
	return keyCacheKey{id: id}
}

// begin returns the epoch of a lookup starting now, with the store version
// from jwks; call it before reading the store.
func (c *keyCache) begin(jwks *JWKSCache) keyCacheEpoch {
	if c == nil || jwks == nil {
		return keyCacheEpoch{}
	}
	version, ok := jwks.Version()
	c.mu.RLock()
	gen := c.gen
	c.mu.RUnlock()
	return keyCacheEpoch{version: version, gen: gen, ok: ok}
}

// get returns the cached key for k if it is current at e.version.
func (c *keyCache) get(k keyCacheKey, e keyCacheEpoch) *signingKey {
	if !e.ok {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.version != e.version || c.gen != e.gen {
		return nil
	}
	return c.entries[k]
}

// put stores sk, loaded from the store after e began, unless the cache was
// purged or moved to a later version meanwhile.
func (c *keyCache) put(k keyCacheKey, e keyCacheEpoch, sk *signingKey) {
	if !e.ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e.gen != c.gen || e.version < c.version:
		return
	case e.version > c.version:
		clear(c.entries)
		c.version = e.version
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = sk
}

// purge drops every entry, and every load in flight, after a change made by
// this process.
func (c *keyCache) purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// len returns the number of entries.
func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
