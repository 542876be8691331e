package server

import "sync/atomic"

// ValidateCreateRegistration is validateCreateRegistration, for the fuzz
// target in package server_test.
var ValidateCreateRegistration = validateCreateRegistration

// CountTokenHashes makes a count the presented tokens it hashes from now
// on, and returns the count. Call it before a serves.
func CountTokenHashes(a *Authenticator) *atomic.Int64 {
	a.hashed = &atomic.Int64{}
	return a.hashed
}
