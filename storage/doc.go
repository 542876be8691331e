// Package storage persists platform registrations and their key pairs.
//
// It owns the Store interface, the GORM models of the two tables
// (lti_jwks, platform_registrations), and two backends chosen by URL:
// PostgreSQL for production and an embedded, pure-Go SQLite for a
// zero-setup default. Both pass one conformance suite
// (storage/conformance).
//
// Storage never sees plaintext private keys: Key.PrivateJWK is sealed by the
// caller (see package crypto) and stored as opaque bytes. Nothing here knows
// about gRPC.
package storage
