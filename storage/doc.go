// Package storage persists platform registrations and their key pairs,
// and the launch nonces already accepted.
//
// It owns the Store interface, the GORM models of the tables (lti_jwks,
// platform_registrations, lti_launch_nonces), the schema migrations, and two
// backends chosen by URL: PostgreSQL for production and an embedded,
// pure-Go SQLite for a zero-setup default. Both pass one conformance suite
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
// Rows of lti_launch_nonces stand outside this order: a transaction of
// UseNonce or PruneNonces locks rows of that table and nothing else (not
// the change counter either: no reader's cache depends on nonces), and no
// other transaction touches that table, so its locks are never held
// together with the others' and never wait in a cycle with them.
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
// # Launch nonces
//
// UseNonce records an (issuer, nonce) pair until the expiry of the token
// that carried it, in lti_launch_nonces, whose primary key is the pair:
// one INSERT … ON CONFLICT DO UPDATE … WHERE, which overwrites a
// conflicting row only if it has expired. Of concurrent calls for one pair
// the database lets exactly one insert (or overwrite) the row; the others
// meet it as a conflict that has not expired, and fail with ErrNonceUsed.
// PruneNonces deletes expired rows, by the index on expires_at, in
// batches of a bounded size, one transaction each.
//
// Storage never sees plaintext private keys: Key.PrivateJWK is sealed by the
// caller (see package crypto) and stored as opaque bytes. Nothing here knows
// about gRPC.
//
// # Schema migrations
//
// The schema is the product of numbered SQL migrations, one directory per
// backend (migrations/postgres, migrations/sqlite), embedded in the binary
// and applied in order by goose (github.com/pressly/goose/v3), each in a
// transaction of its own together with its row in MigrationTable
// (ltikeys_schema_migrations). Open applies the pending ones before it
// returns a store, and Migrate does only that; MigrationStatus reports
// where a database stands. A change to a model needs a migration, in both
// directories, with the next number: the models must describe exactly the
// schema the migrations create, which a test checks.
//
// Migrating holds a lock from before it reads the schema's state until the
// last migration commits, so any number of processes may open one database
// at once: one applies each migration, and the others wait, then find
// nothing to do. On PostgreSQL the lock is a session-level advisory lock
// (key 0x6c74696b657973, "ltikeys" in ASCII) held by a connection of the
// store's pool; on an SQLite file it is an flock(2) on a file beside it,
// the database's path plus "-migrate.lock" (mode 0600, never removed).
// Both are released if their holder dies. On platforms without flock,
// SQLite migrations are serialized within one process only.
//
// The one-row table ltikeys_schema holds the schema version: every
// migration sets it to its own number, in its transaction. Releases before
// versioned migrations read it and refuse a version above 1, so they refuse
// a database that a later migration changed. Open refuses, before changing
// anything, a database whose ltikeys_schema or MigrationTable records a
// version above SchemaVersion: a later release wrote it (ErrSchemaTooNew).
//
// Migration 1 creates the schema that releases before versioned
// migrations, which managed it with GORM's AutoMigrate, left: the same
// tables, columns, indexes (among them the unique partial index
// idx_platform_registrations_live_issuer_client_id) and rows. A database
// with lti_jwks but no MigrationTable was written by such a release, and
// is adopted rather than migrated from scratch: in one transaction, under
// the lock, Open adds what older schemas of those releases lack (the key
// schedule's columns and indexes in place of the unique index over all
// registrations, ltikeys_changes, ltikeys_schema), fills in the schedules
// of keys written before schedules existed, and records migration 1 as
// applied (MigrationBaseline). On the last such release's schema this
// changes nothing but MigrationTable. The later migrations then run as on
// any database.
//
// The migrations so far only add (tables, columns with a default,
// indexes), so a release still running while its successor migrates keeps
// working until it restarts, and is then refused. A migration that drops or renames what
// an earlier release reads breaks that, and must say so.
package storage
