package server

import "sync/atomic"

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
