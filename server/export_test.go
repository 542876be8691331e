package server

import (
	"maps"
	"slices"
	"sync/atomic"
)

// ValidateCreateRegistration is validateCreateRegistration, for the fuzz
// target in package server_test.
var ValidateCreateRegistration = validateCreateRegistration

// CheckKeyringBatch is CheckKeyring reading batch keys per query, so a
// test can span several batches with a few keys.
var CheckKeyringBatch = checkKeyring

// CountTokenHashes makes a count the presented tokens it hashes from now
// on, and returns the count. Call it before a serves.
func CountTokenHashes(a *Authenticator) *atomic.Int64 {
	a.hashed = &atomic.Int64{}
	return a.hashed
}

// RegistrationDocument returns the JWK Set c serves for registration id
// now, or nil if it serves none.
func RegistrationDocument(c *JWKSCache, id string) []byte {
	if d := c.registration(id); d != nil {
		return d.body
	}
	return nil
}

// ServedDocument returns the global JWK Set a request to c would be served
// now: unlike Document, possibly an earlier one, as
// WithGlobalRebuildInterval allows.
func ServedDocument(c *JWKSCache) []byte {
	if d := c.globalDocument(false); d != nil {
		return d.body
	}
	return nil
}

// ServedRegistrations returns the ids of the registrations c serves a
// document for now, sorted.
func ServedRegistrations(c *JWKSCache) []string {
	if !c.loaded.Load() {
		return nil
	}
	c.retireDue()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.set.regs))
}
