// Package storage persists platform registrations and their key pairs.
//
// It owns the Store interface, the GORM models of the two tables
// (lti_jwks, platform_registrations), and two backends chosen by URL:
// PostgreSQL for production and an embedded, pure-Go SQLite for a
// zero-setup default. Both pass one conformance suite
// (storage/conformance).
//
// Every write that changes what readers see also increments a change
// counter (the one-row table ltikeys_changes, read by Store.Version) in the
// same transaction, so caches in any process can tell cheaply whether they
// are current. On PostgreSQL the transaction also notifies ChangesChannel,
// and the store implements Notifier to listen for it.
//
// Storage never sees plaintext private keys: Key.PrivateJWK is sealed by the
// caller (see package crypto) and stored as opaque bytes. Nothing here knows
// about gRPC.
package storage
