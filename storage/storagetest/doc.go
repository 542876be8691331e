// Package storagetest gives tests a fresh, empty database of each backend.
//
// PostgresURL creates a uniquely named database on the server named by
// LTIKEYS_TEST_DATABASE_URL and drops it when the test ends; SQLiteURL
// points into the test's temporary directory. Tests in any package may use
// them to open a real storage.Store. Schema describes a database's schema
// in a form that compares equal for equal schemas, whichever statements
// made them.
//
// A test that needs PostgreSQL is skipped when the server is unreachable,
// unless LTIKEYS_TEST_REQUIRE_POSTGRES=1, as CI sets it: then it fails.
package storagetest
