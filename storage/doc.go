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
// # Transactions and lock order
//
// Every write runs in one transaction, and every transaction that locks
// rows (SELECT … FOR UPDATE, or an UPDATE, which locks the rows it changes)
// takes its locks in one order, so that the row locks of transactions in
// any number of processes sharing a PostgreSQL database never wait for
// each other in a cycle:
//
//  1. rows of platform_registrations, in ascending id;
//  2. then rows of lti_jwks, in ascending id;
//  3. last, the change counter's row (ltikeys_changes), after which the
//     transaction takes no other lock.
//
// A transaction that must find out which rows to lock reads them first
// without locking, locks them in this order, and checks again under the
// locks what it read. Rows a transaction inserts are not covered: no other
// transaction sees them before it commits. Pointing a registration at a
// key also locks the key's row (the foreign key's check), after the
// registration's, as the order has it. Plain reads lock nothing. On
// SQLite, which has no row locks, a write transaction holds the database's
// write lock from its start to its end, which serializes writers by
// itself.
//
// A transaction that conflicts with concurrent ones even so (a deadlock or
// serialization failure on PostgreSQL, a busy or locked database on SQLite)
// is rolled back by the database and run again from the start by the
// store, a few times, with a growing, randomized pause in between; when
// the store gives up, the method returns an error wrapping ErrConflict, and
// nothing was written. No other error is retried: in particular not a
// connection lost around a commit, which may have succeeded.
//
// Every transaction that inserts a key row or changes its active flag or
// schedule (what a JWK Set reader sees) also writes the counter's new value
// into that row's version column, right after the increment, at the end of
// the transaction. The counter's row lock serializes writers, so values
// commit in order, and a row's version is the value of the last
// transaction that changed it; re-sealing a private key changes neither.
// Store.KeysChangedSince selects by it, so a cache pays for the keys that
// changed, not for all of them. Rows written before the column existed
// have version 0.
//
// Storage never sees plaintext private keys: Key.PrivateJWK is sealed by the
// caller (see package crypto) and stored as opaque bytes. Nothing here knows
// about gRPC.
package storage
